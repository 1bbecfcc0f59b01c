"""Self-test: a pass/fail line per configured part, for technicians on site and from afar.

On site: `edgenode selftest` asks the running daemon over its control socket. From afar: the
signed `selftest` command (technician role) runs the same checks; the report is published
retained on `.../selftest` and summarised in the command's result.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Protocol


class NodeView(Protocol):
    """What the checks read of the running daemon (edgenode.daemon.node.Node)."""

    health: Any
    sensors: Sequence[Any]
    link: Any
    effector_state: dict[str, Any] | None

    def health_extra(self) -> dict[str, Any]: ...

CPU_HOT_C = 80.0


def check(name: str, state: str, reason: str = "", **detail: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "state": state, "reason": reason}
    if detail:
        out["detail"] = detail
    return out


def run_selftest(node: NodeView) -> dict[str, Any]:
    """Check every configured part from what the daemon's stages see now."""
    started = time.monotonic()
    stages = node.health.snapshot()
    extra = node.health_extra()
    checks = []
    for stage in node.sensors:
        info = stages[stage.name]
        state = "ok" if info["state"] == "ok" else info["state"]
        if stage.name == "i2c":
            checks += _i2c_checks(stage)
            continue
        checks.append(check(stage.name, "failed" if state == "starting" else state,
                            str(info["reason"]), **stage.counters()))
    if extra.get("airspace", {}).get("source"):
        checks.append(_adsb_check(extra["airspace"]))
    checks.append(_relay_check(node.effector_state))
    checks.append(_system_check(extra["system"]))
    link = node.link.counters()
    checks.append(check("link", "ok" if link.get("connected") else "failed",
                        "" if link.get("connected") else str(link.get("last_error", "")),
                        backlog=link.get("backlog", 0)))
    return {"ok": all(c["state"] == "ok" for c in checks), "checks": checks,
            "duration_s": round(time.monotonic() - started, 3)}


def _i2c_checks(stage: Any) -> list[dict[str, Any]]:
    out = [check(f"i2c:{name}", "ok", "", **reading)
           for name, reading in list(stage.readings.items())]
    out += [check(f"i2c:{name}", "failed", error) for name, error in list(stage.errors.items())]
    return out


def _adsb_check(airspace: dict[str, Any]) -> dict[str, Any]:
    """The ADS-B receiver: without its picture the node refuses engagements (fail safe)."""
    detail = {"aircraft": airspace["tracked"], "in_volume": len(airspace["in_volume"])}
    if airspace["feed_ok"]:
        return check("adsb", "ok", "", **detail)
    return check("adsb", "failed", f"{airspace['feed_reason']}; check the receiver (readsb / "
                 "dump1090 running, antenna, airspace.adsb_source)", **detail)


def _relay_check(state: dict[str, Any] | None) -> dict[str, Any]:
    if state is None:
        return check("relay", "failed", "the effector has not reported its inputs yet")
    key, aux, engaged = state.get("key_switch"), state.get("aux_closed"), (
        state.get("state") == "ENGAGED")
    if state.get("fault"):
        return check("relay", "failed", f"FAULT: {state['fault']}", key_switch=key)
    if key == "invalid":
        return check("relay", "failed", "key switch reads both TEST and OPERATE: wiring fault")
    if aux != engaged:
        return check("relay", "failed", f"aux contact {'closed' if aux else 'open'} while the "
                     f"relay is {'driven' if engaged else 'off'}", key_switch=key)
    return check("relay", "ok", "", key_switch=key, aux_closed=aux)


def _system_check(facts: dict[str, Any]) -> dict[str, Any]:
    problems = []
    if facts.get("error"):
        problems.append(f"cannot read system facts: {facts['error']}")
    if not facts.get("clock_synced"):
        problems.append("clock not synchronised (arm and engage are refused)")
    temp = facts.get("cpu_temp_c")
    if temp is not None and temp >= CPU_HOT_C:
        problems.append(f"CPU at {temp:.0f} C")
    if facts.get("throttled"):
        problems.append(f"throttled (0x{facts['throttled']:x}): check the power supply")
    return check("system", "failed" if problems else "ok", "; ".join(problems),
                 cpu_temp_c=temp, clock_synced=facts.get("clock_synced"))


def summary(report: dict[str, Any]) -> str:
    failed = [f"{c['name']} ({c['reason']})" for c in report["checks"] if c["state"] != "ok"]
    passed = len(report["checks"]) - len(failed)
    return f"{passed} passed, {len(failed)} failed" + (": " + "; ".join(failed) if failed else "")
