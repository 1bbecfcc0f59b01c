"""Self-test: checks per configured part with a verdict and a reason, for technicians on site
(`edgenode selftest`) and from afar (the signed `selftest` command). May import `hal` and the
libraries (config, control, link); never the daemon or a command module: the daemon passes
itself in."""

from edgenode.selftest.checks import check, run_selftest, summary

__all__ = ["check", "run_selftest", "summary"]
