"""One check's result and the report around them (docs/selftest.md, schema `selftest`).

A check names its part (`radar`, `acoustic`, `relay`, `i2c:compass`, `system`, `broker`), its
own name (`radar.framing`), a result (PASS, WARN, FAIL, SKIP), the measured value with its
unit, the expected range, and for anything not PASS a one-line hint: the likely cause and the
next step.
"""

from __future__ import annotations

from typing import Any, Literal

Result = Literal["PASS", "WARN", "FAIL", "SKIP"]
PASS: Result = "PASS"
WARN: Result = "WARN"
FAIL: Result = "FAIL"
SKIP: Result = "SKIP"
RESULTS: tuple[Result, ...] = (PASS, WARN, FAIL, SKIP)
# The report's own version (`report_version`); the MQTT envelope's `v` is the link's.
REPORT_VERSION = 2
_ORDER = {PASS: 0, SKIP: 0, WARN: 1, FAIL: 2}


def check(part: str, name: str, result: Result, *, value: Any = None, unit: str = "",
          expected: str = "", hint: str = "", **detail: Any) -> dict[str, Any]:
    if result != PASS and not hint:
        raise ValueError(f"selftest check {name}: a {result} needs a hint")
    out: dict[str, Any] = {"part": part, "name": name, "result": result,
                           "value": _plain(value), "unit": unit, "expected": expected,
                           "hint": hint}
    if detail:
        out["detail"] = {k: _plain(v) for k, v in detail.items()}
    return out


def skip(part: str, name: str, why: str) -> dict[str, Any]:
    return check(part, name, SKIP, hint=why)


def _plain(value: Any) -> Any:
    """JSON-friendly: numpy scalars to Python, floats rounded for people."""
    if hasattr(value, "item") and not isinstance(value, list | tuple | dict):
        value = value.item()
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def make_report(checks: list[dict[str, Any]], *, mode: str, window_s: float,
                duration_s: float, parts: list[str] | None = None) -> dict[str, Any]:
    counts = {r: sum(1 for c in checks if c["result"] == r) for r in RESULTS}
    worst = max((c["result"] for c in checks), key=lambda r: _ORDER[r], default=PASS)
    return {"report_version": REPORT_VERSION, "result": worst if worst != SKIP else PASS,
            "ok": counts[FAIL] == 0, "mode": mode, "parts": parts, "counts": counts,
            "window_s": round(window_s, 3), "duration_s": round(duration_s, 3),
            "checks": checks}


def exit_code(report: dict[str, Any]) -> int:
    """0 when nothing FAILs, 1 on any FAIL (2, could not run, is the caller's)."""
    return 0 if report["ok"] else 1


def summary(report: dict[str, Any]) -> str:
    """One line: the counts, then each FAIL and WARN with its hint."""
    c = report["counts"]
    head = f"{c[PASS]} passed, {c[WARN]} warned, {c[FAIL]} failed, {c[SKIP]} skipped"
    bad = [f"{x['result']} {x['name']}: {x['hint']}" for x in report["checks"]
           if x["result"] in (FAIL, WARN)]
    return head + (" | " + " | ".join(bad) if bad else "")
