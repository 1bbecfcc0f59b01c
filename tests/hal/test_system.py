"""System facts: this host's own, from real files and a real subprocess, and the fake."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

import pytest

from hal.sensors.system import (
    FakeSystemFacts,
    SystemFacts,
    clock_synced,
    open_system_facts,
    read_throttled,
)


def test_host_facts_read_on_this_machine_with_sane_types() -> None:
    facts = open_system_facts("host").read()
    assert isinstance(facts, SystemFacts)
    assert facts.cpu_temp_c is None or -40.0 < facts.cpu_temp_c < 150.0
    assert facts.throttled is None or facts.throttled >= 0
    assert isinstance(facts.clock_synced, bool)


def test_adjtimex_answers_without_privilege_and_agrees_with_ntp_gettime() -> None:
    # An independent reading of the same kernel state: ntp_gettime(3) returns TIME_ERROR (5)
    # exactly when the kernel's clock is unsynchronised (STA_UNSYNC or STA_CLOCKERR).
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    state = libc.ntp_gettime(ctypes.create_string_buffer(512))  # struct ntptimeval fits
    assert state != -1
    assert clock_synced() is (state != 5)


def test_cpu_temperature_comes_from_the_thermal_zone_in_millidegrees(tmp_path: Path) -> None:
    zone = tmp_path / "temp"
    zone.write_text("48312\n")
    assert open_system_facts("host", device=str(zone)).read().cpu_temp_c == 48.312


def test_missing_thermal_zone_gives_no_temperature(tmp_path: Path) -> None:
    facts = open_system_facts("host", device=str(tmp_path / "absent")).read()
    assert facts.cpu_temp_c is None


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "vcgencmd"
    path.write_text(f"#!/bin/sh\n{body}\n")
    os.chmod(path, 0o755)
    return str(path)


def test_throttled_bits_are_parsed_from_vcgencmd(tmp_path: Path) -> None:
    exe = _script(tmp_path, 'test "$1" = get_throttled && echo "throttled=0x50005"')
    assert read_throttled(exe) == 0x50005


def test_failing_vcgencmd_gives_no_throttle_facts(tmp_path: Path) -> None:
    exe = _script(tmp_path, 'echo "VCHI initialization failed" >&2; exit 255')
    assert read_throttled(exe) is None


def test_fake_facts_are_settable() -> None:
    facts = open_system_facts("fake")
    assert facts.read() == SystemFacts(45.0, 0, True)
    assert isinstance(facts, FakeSystemFacts)
    facts.set(cpu_temp_c=85.5, throttled=0x4, clock_synced=False)
    assert facts.read() == SystemFacts(85.5, 0x4, False)


def test_unknown_backend_is_an_error() -> None:
    with pytest.raises(ValueError, match="backend 'ntp' unknown"):
        open_system_facts("ntp")
