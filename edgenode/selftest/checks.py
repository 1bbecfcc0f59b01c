"""The self-test: every configured part's checks, cheapest first, as one report.

On site: `edgenode selftest` asks the running daemon over its control socket. From afar: the
signed `selftest` command (technician role) runs the same checks; the report is published
retained on `.../selftest` and summarised in the command's result. The daemon also runs it
shortly after start-up and every few minutes (`Periodic`), into `health`.

Counters are read twice, `window_s` apart, so rates and shares describe now, not the whole
run since start-up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from edgenode.selftest.acoustic import acoustic_checks
from edgenode.selftest.broker import broker_checks
from edgenode.selftest.i2c import i2c_checks
from edgenode.selftest.pulse import pulse_check
from edgenode.selftest.radar import radar_checks
from edgenode.selftest.relay import relay_checks
from edgenode.selftest.result import FAIL, PASS, check, make_report
from edgenode.selftest.system import system_checks

log = logging.getLogger(__name__)
WINDOW_S = 2.0
PART_NAMES = ("radar", "acoustic", "relay", "i2c", "system", "broker")


class NodeView(Protocol):
    """What the checks read of the running daemon (edgenode.daemon.node.Node)."""

    config: Any
    state_dir: Path
    sensors: Sequence[Any]
    link: Any
    system: Any
    effector: Any
    effector_state: dict[str, Any] | None


class UnknownPart(ValueError):
    """`--part NAME` names no configured part; the message lists the ones there are."""


def configured_parts(node: NodeView) -> list[str]:
    stages = {s.name for s in node.sensors}
    out = [p for p in ("radar", "acoustic") if p in stages]
    out += ["relay"]
    if "i2c" in stages:
        out += ["i2c"] + [f"i2c:{d.name}" for d in node.config.sensors.i2c]
    airspace = getattr(node.config, "airspace", None)
    if airspace is not None and airspace.adsb_source is not None:
        out.append("adsb")
    return [*out, "system", "broker"]


def _wanted(node: NodeView, parts: Sequence[str] | None) -> set[str]:
    have = configured_parts(node)
    if not parts:
        return set(have)
    unknown = [p for p in parts if p not in have]
    if unknown:
        raise UnknownPart(f"part(s) {unknown} not configured on this node; choose from "
                          f"{have}")
    return set(parts)


def run_selftest(node: NodeView, parts: Sequence[str] | None = None, *,
                 window_s: float = WINDOW_S, mode: str = "daemon",
                 pulse_relay: bool = False, local: bool = False) -> dict[str, Any]:
    """Check the parts named (all configured parts when None). `pulse_relay` adds the relay
    pulse, given only when `local` (the unit's own control socket) and the key and the
    effector allow it (edgenode/selftest/pulse.py)."""
    started = time.monotonic()
    wanted = _wanted(node, parts)
    stages = {s.name: s for s in node.sensors}
    windowed = [stages[n] for n in ("radar", "acoustic") if n in wanted and n in stages]
    before = {s.name: s.selftest_facts() for s in windowed}
    if windowed:
        time.sleep(window_s)
    checks: list[dict[str, Any]] = []
    if "radar" in before:
        checks += radar_checks(before["radar"], stages["radar"].selftest_facts())
    if "acoustic" in before:
        stage = stages["acoustic"]
        checks += acoustic_checks(before["acoustic"], stage.selftest_facts(),
                                  stage.recent_samples(since=before["acoustic"]["t"]),
                                  stage.geometry.positions_m)
    if "relay" in wanted:
        checks += relay_checks(node.effector_state)
        if pulse_relay:
            checks.append(pulse_check(node.effector, node.effector_state, local=local))
    if "i2c" in stages and wanted & {p for p in configured_parts(node) if p.startswith("i2c")}:
        everything = "i2c" in wanted
        checks += [c for c in i2c_checks(stages["i2c"].selftest_facts())
                   if everything or c["part"] in wanted]
    if "system" in wanted:
        checks += _system(node)
    if "adsb" in wanted:
        checks.append(_adsb(node))
    if "broker" in wanted:
        broker = node.config.broker
        files = [p for p in (broker.ca_file, broker.cert_file) if p is not None]
        counters = None if node.link is None else node.link.counters()
        checks += broker_checks(broker.url, counters, files)
    return make_report(checks, mode=mode, window_s=window_s if windowed else 0.0,
                       duration_s=time.monotonic() - started,
                       parts=sorted(wanted) if parts else None)


def _system(node: NodeView) -> list[dict[str, Any]]:
    try:
        facts = node.system.read()
    except Exception as exc:  # unknown facts are reported, not raised
        return system_checks(None, node.state_dir, read_error=str(exc))
    return system_checks({"cpu_temp_c": facts.cpu_temp_c, "throttled": facts.throttled,
                          "clock_synced": facts.clock_synced}, node.state_dir)


def _adsb(node: NodeView) -> dict[str, Any]:
    """The ADS-B receiver: without its picture the node refuses engagements (fail safe)."""
    extra = getattr(node, "health_extra", dict)()  # the stopped-daemon view has no picture
    airspace = extra.get("airspace") or {}
    aircraft = airspace.get("tracked", 0)
    if airspace.get("feed_ok"):
        return check("adsb", "adsb.feed", PASS, value=aircraft, unit="aircraft",
                     expected="a live feed")
    return check("adsb", "adsb.feed", FAIL, value=aircraft, unit="aircraft",
                 expected="a live feed",
                 hint=f"{airspace.get('feed_reason', 'no ADS-B picture')}: engagements are "
                 "refused; check the receiver (readsb / dump1090 running, antenna, "
                 "airspace.adsb_source)")
