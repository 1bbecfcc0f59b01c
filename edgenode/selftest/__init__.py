"""Self-test: checks per configured part, each PASS/WARN/FAIL/SKIP with the measured value,
the expected range and a hint (likely cause, next step), for technicians on site (`edgenode
selftest`) and from afar (the signed `selftest` command). docs/selftest.md.

May import `hal` and the libraries (config, control, link); never the daemon or a command
module: the daemon passes itself in (`NodeView`)."""

from edgenode.selftest.checks import (
    PART_NAMES,
    UnknownPart,
    configured_parts,
    run_selftest,
)
from edgenode.selftest.periodic import Periodic
from edgenode.selftest.result import FAIL, PASS, SKIP, WARN, check, exit_code, summary

__all__ = ["FAIL", "PART_NAMES", "PASS", "SKIP", "WARN", "Periodic", "UnknownPart", "check",
           "configured_parts", "exit_code", "run_selftest", "summary"]
