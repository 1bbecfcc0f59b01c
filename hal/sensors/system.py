"""System facts: CPU temperature, firmware throttling flags, whether the clock is synchronised.

Backends: `host` (this machine: sysfs thermal zone, `vcgencmd get_throttled` on a Pi, the
kernel's adjtimex status), `fake` (settable) and the twin's `sim`
(`hal.sensors.system_sim:SimSystemFacts`). Pick one with `open_system_facts`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from hal.backends import load_backend

log = logging.getLogger(__name__)

THERMAL_ZONE = "/sys/class/thermal/thermal_zone0/temp"
STA_UNSYNC = 0x0040
TIME_ERROR = 5

# get_throttled bits (Raspberry Pi firmware): now (0..3) and since boot (16..19).
UNDER_VOLTAGE = 0x1
FREQ_CAPPED = 0x2
THROTTLED = 0x4
SOFT_TEMP_LIMIT = 0x8


@dataclass(frozen=True)
class SystemFacts:
    cpu_temp_c: float | None
    # The firmware's get_throttled bit field; None where there is no vcgencmd (not a Pi).
    throttled: int | None
    clock_synced: bool


class SystemFactsSource(Protocol):
    def read(self) -> SystemFacts: ...


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """struct timex of <sys/timex.h> (glibc, native long)."""

    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long), ("time", _Timeval), ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long), ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int),
        ("_padding", ctypes.c_int * 11),
    ]


_libc: ctypes.CDLL | None = None


def clock_synced() -> bool:
    """True when the kernel says an NTP/PTP daemon disciplines the clock (STA_UNSYNC clear and
    the clock state is not TIME_ERROR). A read-only adjtimex (modes = 0) needs no privilege."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    tx = _Timex()
    state = _libc.adjtimex(ctypes.byref(tx))
    if state == -1:
        log.warning("system: adjtimex failed (errno %d); taking the clock as unsynchronised",
                    ctypes.get_errno())
        return False
    return state != TIME_ERROR and not tx.status & STA_UNSYNC


def read_throttled(vcgencmd: str | None = None) -> int | None:
    """The firmware's throttled bits via `vcgencmd get_throttled`; None without vcgencmd."""
    exe = vcgencmd or shutil.which("vcgencmd")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "get_throttled"], capture_output=True, text=True,
                             timeout=2.0, check=True).stdout.strip()
        # "throttled=0x50000"
        return int(out.partition("=")[2], 16)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        log.warning("system: vcgencmd get_throttled failed: %s", exc)
        return None


def read_cpu_temp_c(path: str = THERMAL_ZONE) -> float | None:
    """The thermal zone's temperature in degC (sysfs gives millidegrees); None if absent."""
    try:
        return int(Path(path).read_text().strip()) / 1000.0
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("system: cannot read %s: %s", path, exc)
        return None


class HostSystemFacts:
    """This machine's facts. `device`: another thermal zone file (default thermal_zone0)."""

    def __init__(self, device: str | None = None):
        self.thermal_path = device or THERMAL_ZONE

    def read(self) -> SystemFacts:
        return SystemFacts(read_cpu_temp_c(self.thermal_path), read_throttled(),
                           clock_synced())


class FakeSystemFacts:
    """Facts a test sets: `FakeSystemFacts().set(cpu_temp_c=85.0, throttled=0x4)`."""

    def __init__(self, cpu_temp_c: float | None = 45.0, throttled: int | None = 0,
                 clock_synced: bool = True, device: str | None = None):
        self.facts = SystemFacts(cpu_temp_c, throttled, clock_synced)

    def set(self, **changes: float | int | bool | None) -> None:
        self.facts = SystemFacts(**{**self.facts.__dict__, **changes})

    def read(self) -> SystemFacts:
        return self.facts


_BACKENDS = {
    "host": "hal.sensors.system:HostSystemFacts",
    "fake": "hal.sensors.system:FakeSystemFacts",
    "sim": "hal.sensors.system_sim:SimSystemFacts",
}


def open_system_facts(backend: str, device: str | None = None) -> SystemFactsSource:
    """Open the named backend; `device` is the backend's own (host: thermal zone file; sim:
    the twin's socket)."""
    return load_backend("system facts backend", _BACKENDS, backend)(device=device)
