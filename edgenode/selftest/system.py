"""System checks: free disk in the state directory, clock synchronised, CPU temperature,
under-voltage and throttling (a Raspberry Pi's firmware flags)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from edgenode.selftest.result import FAIL, PASS, WARN, check, skip

PART = "system"
DISK_FAIL_MB = 100.0
DISK_WARN_MB = 1024.0
CPU_WARN_C, CPU_FAIL_C = 70.0, 80.0
# get_throttled bits: now (0..3), since boot (16..19).
UNDER_VOLTAGE, CAPPED, THROTTLED, SOFT_TEMP = 0x1, 0x2, 0x4, 0x8


def system_checks(facts: dict[str, Any] | None, state_dir: Path,
                  read_error: str | None = None) -> list[dict[str, Any]]:
    out = [_disk(state_dir)]
    if facts is None:
        why = f"cannot read the system facts ({read_error})"
        out.append(check(PART, "system.clock", FAIL, value=None, expected="synchronised",
                         hint=f"{why}: arm and engage are refused while the clock is "
                         "unknown; check chrony/systemd-timesyncd"))
        return [*out, skip(PART, "system.cpu_temp", why), skip(PART, "system.power", why)]
    if facts.get("clock_synced"):
        out.append(check(PART, "system.clock", PASS, value=True, expected="synchronised"))
    else:
        out.append(check(PART, "system.clock", FAIL, value=False, expected="synchronised",
                         hint="the clock is not synchronised: arm and engage are refused; "
                         "check NTP (timedatectl timesync-status) and the network"))
    temp = facts.get("cpu_temp_c")
    expected = f"< {CPU_WARN_C:g} C"
    if temp is None:
        out.append(skip(PART, "system.cpu_temp", "no CPU temperature sensor on this board"))
    elif temp >= CPU_FAIL_C:
        out.append(check(PART, "system.cpu_temp", FAIL, value=temp, unit="C",
                         expected=expected, hint=f"CPU at {temp:.0f} C: the board throttles; "
                         "check the enclosure's ventilation, sun shade and the heat sink"))
    elif temp >= CPU_WARN_C:
        out.append(check(PART, "system.cpu_temp", WARN, value=temp, unit="C",
                         expected=expected, hint=f"CPU at {temp:.0f} C, near throttling: "
                         "check the enclosure's ventilation and sun shade"))
    else:
        out.append(check(PART, "system.cpu_temp", PASS, value=temp, unit="C",
                         expected=expected))
    out.append(_power(facts.get("throttled")))
    return out


def _disk(state_dir: Path) -> dict[str, Any]:
    expected = f">= {DISK_WARN_MB:g} MB free"
    try:
        usage = shutil.disk_usage(state_dir)
    except OSError as exc:
        return check(PART, "system.disk", FAIL, value=None, unit="MB", expected=expected,
                     hint=f"cannot read the state directory {state_dir}: {exc}")
    free_mb = usage.free / 1e6
    if free_mb < DISK_FAIL_MB:
        return check(PART, "system.disk", FAIL, value=free_mb, unit="MB", expected=expected,
                     hint=f"only {free_mb:.0f} MB free under {state_dir}: the outbox and the "
                     "audit log cannot grow; free space (journalctl --vacuum-size)")
    if free_mb < DISK_WARN_MB:
        return check(PART, "system.disk", WARN, value=free_mb, unit="MB", expected=expected,
                     hint=f"{free_mb:.0f} MB free under {state_dir}: free space soon")
    return check(PART, "system.disk", PASS, value=free_mb, unit="MB", expected=expected)


def _power(bits: int | None) -> dict[str, Any]:
    if bits is None:
        return skip(PART, "system.power", "no throttling flags on this board (no vcgencmd)")
    value, expected = f"0x{bits:x}", "0x0"
    if bits & UNDER_VOLTAGE:
        return check(PART, "system.power", FAIL, value=value, expected=expected,
                     hint="under-voltage now: the supply or its cable is too weak; use the "
                     "board's rated supply (5.1 V, 5 A on a Pi 5)")
    if bits & (CAPPED | THROTTLED | SOFT_TEMP):
        return check(PART, "system.power", WARN, value=value, expected=expected,
                     hint="the CPU is throttled now (heat or supply): check cooling and power")
    if bits >> 16:
        return check(PART, "system.power", WARN, value=value, expected=expected,
                     hint="under-voltage or throttling happened since boot: check the "
                     "supply and cooling")
    return check(PART, "system.power", PASS, value=value, expected=expected)
