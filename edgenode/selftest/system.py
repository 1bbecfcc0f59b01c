"""System checks: free disk in the state directory, clock synchronised, CPU temperature,
under-voltage and throttling (a Raspberry Pi's firmware flags)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgenode.selftest.result import FAIL, PASS, WARN, check, skip

PART = "system"
# MB of 10**6 bytes, as `df -H` shows them: 1 GB is 1000 MB.
DISK_FAIL_MB = 100.0
DISK_WARN_MB = 1000.0
CPU_WARN_C, CPU_FAIL_C = 70.0, 80.0
# get_throttled bits: now (0..3), since boot (16..19).
UNDER_VOLTAGE, CAPPED, THROTTLED, SOFT_TEMP = 0x1, 0x2, 0x4, 0x8
FLAG_NAMES = {UNDER_VOLTAGE: "under-voltage", CAPPED: "frequency capped",
              THROTTLED: "throttled", SOFT_TEMP: "soft temperature limit"}


def free_bytes(path: Path) -> int:
    """Bytes free to this (unprivileged) user on the filesystem holding `path`."""
    return shutil.disk_usage(path).free


def system_checks(facts: dict[str, Any] | None, state_dir: Path,
                  read_error: str | None = None, *,
                  disk_free: Callable[[Path], int] = free_bytes) -> list[dict[str, Any]]:
    """`disk_free`: how free space is read (a test gives a full disk without filling one)."""
    out = [_disk(state_dir, disk_free)]
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


def _disk(state_dir: Path, disk_free: Callable[[Path], int]) -> dict[str, Any]:
    expected = f">= {DISK_WARN_MB:g} MB free"
    try:
        free_mb = disk_free(state_dir) / 1e6
    except OSError as exc:
        return check(PART, "system.disk", FAIL, value=None, unit="MB", expected=expected,
                     hint=f"cannot read the state directory {state_dir}: {exc}; check that "
                     "it exists and is mounted (--state-dir)")
    if free_mb < DISK_FAIL_MB:
        return check(PART, "system.disk", FAIL, value=free_mb, unit="MB", expected=expected,
                     hint=f"only {free_mb:.0f} MB free under {state_dir}: the outbox and the "
                     "audit log cannot grow; free space (journalctl --vacuum-size)")
    if free_mb < DISK_WARN_MB:
        return check(PART, "system.disk", WARN, value=free_mb, unit="MB", expected=expected,
                     hint=f"only {free_mb:.0f} MB free under {state_dir}: the outbox and the "
                     "audit log will soon have no room; free space (journalctl "
                     "--vacuum-size, old files on that filesystem)")
    return check(PART, "system.disk", PASS, value=free_mb, unit="MB", expected=expected)


def _flags(bits: int) -> str:
    return ", ".join(name for flag, name in FLAG_NAMES.items() if bits & flag)


def _power(bits: int | None) -> dict[str, Any]:
    if bits is None:
        return skip(PART, "system.power", "no throttling flags on this board (no vcgencmd)")
    value, expected = f"0x{bits:x}", "0x0"
    now, since_boot = bits & 0xF, (bits >> 16) & 0xF
    if now & UNDER_VOLTAGE:
        return check(PART, "system.power", FAIL, value=value, expected=expected,
                     hint="under-voltage now: the supply or its cable is too weak; use the "
                     "board's rated supply (5.1 V, 5 A on a Pi 5)")
    if now:
        return check(PART, "system.power", WARN, value=value, expected=expected,
                     hint=f"the CPU is held back now ({_flags(now)}): heat or the supply; "
                     "check the cooling and the power supply")
    if since_boot:
        return check(PART, "system.power", WARN, value=value, expected=expected,
                     hint=f"{_flags(since_boot)} happened since boot (not now): check the "
                     "supply and its cable, and the cooling")
    return check(PART, "system.power", PASS, value=value, expected=expected)
