"""The relay board through the real twin process, reached with SimGpio and JammerRelay."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from hal.ports.gpio import open_gpio
from hal.relay import JammerRelay, KeySwitch
from hal.sim.protocol import control
from tests.conftest import ROOT

DROPOUT_S = 0.200
# hardware/relay-board.md: K2 drops <= 200 ms after the last rising edge, + <= 20 ms release.
OFF_WITHIN_S = DROPOUT_S + 0.020
LINES = {"drive_line": 17, "heartbeat_line": 27, "aux_line": 22, "key_test_line": 5,
         "key_operate_line": 6}


@contextmanager
def relay_on(socket_path: str) -> Iterator[JammerRelay]:
    relay = JammerRelay(open_gpio("sim", device=socket_path), **LINES)
    try:
        yield relay
    finally:
        relay.close()


def beat(relay: JammerRelay, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        relay.toggle_heartbeat()
        time.sleep(0.02)


def test_relay_radiates_only_with_drive_heartbeat_and_operate(twin_factory) -> None:
    twin = twin_factory()
    with relay_on(twin.socket) as relay:
        assert relay.read().key is KeySwitch.OPERATE
        beat(relay, 0.3)
        assert not control(twin.socket, "status")["radiating"], "drive is still off"
        relay.drive(True)
        beat(relay, 0.3)
        status = control(twin.socket, "status")
        assert status["radiating"] and status["contactor_closed"]
        assert relay.read().aux_agrees
        relay.drive(False)
        twin.wait_truth(lambda r: r.get("radiating") is False)
    changes = twin.radiating_changes()
    assert [c["radiating"] for c in changes] == [True, False]
    assert set(changes[0]) == {"t", "radiating"}


def test_heartbeat_stop_drops_the_jammer_within_the_dropout(twin_factory) -> None:
    twin = twin_factory()
    with relay_on(twin.socket) as relay:
        relay.drive(True)
        beat(relay, 0.3)
        twin.wait_truth(lambda r: r.get("radiating") is True)
        stopped = time.time()
        time.sleep(0.5)  # drive stays ON, heartbeat still
        assert relay.drive_level()
        off = twin.wait_truth(lambda r: r.get("radiating") is False)
        assert 0.0 < off["t"] - stopped <= OFF_WITHIN_S


def test_drive_without_heartbeat_never_radiates(twin_factory) -> None:
    twin = twin_factory()
    with relay_on(twin.socket) as relay:
        relay.drive(True)
        time.sleep(0.5)
        assert relay.read().aux_closed
        assert not control(twin.socket, "status")["radiating"]
    assert twin.radiating_changes() == []


def test_key_at_test_exercises_the_relay_without_radiating(twin_factory) -> None:
    twin = twin_factory()
    control(twin.socket, "key", position="test")
    with relay_on(twin.socket) as relay:
        assert relay.read().key is KeySwitch.TEST
        relay.drive(True)
        beat(relay, 0.4)
        assert relay.read().aux_closed
        assert not control(twin.socket, "status")["radiating"]
    assert twin.radiating_changes() == []


def test_relay_stuck_fault_makes_aux_disagree(twin_factory) -> None:
    twin = twin_factory("empty-sky", "--fault", "relay-stuck")
    with relay_on(twin.socket) as relay:
        inputs = relay.read()
        assert inputs.drive is False and inputs.aux_closed and not inputs.aux_agrees


def test_interlock_open_fault_reads_key_off_and_stops_radiating(twin_factory) -> None:
    twin = twin_factory()
    with relay_on(twin.socket) as relay:
        relay.drive(True)
        beat(relay, 0.2)
        control(twin.socket, "fault.start", name="interlock-open")
        assert relay.read().key is KeySwitch.OFF
        assert not control(twin.socket, "status")["radiating"]
        control(twin.socket, "fault.stop", name="interlock-open")
        assert relay.read().key is KeySwitch.OPERATE
    faults = [(r["fault"], r["active"]) for r in twin.truth() if "fault" in r]
    assert faults == [("interlock-open", True), ("interlock-open", False)]


def test_a_second_client_cannot_take_held_lines(twin_factory) -> None:
    twin = twin_factory()
    with relay_on(twin.socket), pytest.raises(Exception, match="already held"):
        JammerRelay(open_gpio("sim", device=twin.socket), **LINES)


DRIVER = """
import sys, time
from hal.ports.gpio import open_gpio
from hal.relay import JammerRelay
relay = JammerRelay(open_gpio("sim", device=sys.argv[1]), drive_line=17, heartbeat_line=27,
                    aux_line=22, key_test_line=5, key_operate_line=6)
relay.drive(True)
print("on", flush=True)
while True:
    relay.toggle_heartbeat()
    time.sleep(0.02)
"""


def test_relay_drops_when_daemon_is_killed(twin_factory) -> None:
    twin = twin_factory()
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, twin.socket], cwd=ROOT,
                              stdout=subprocess.PIPE)
    try:
        assert driver.stdout is not None and driver.stdout.readline() == b"on\n"
        twin.wait_truth(lambda r: r.get("radiating") is True)
        time.sleep(0.3)
        killed = time.time()
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(5)
        off = twin.wait_truth(lambda r: r.get("radiating") is False)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert 0.0 < off["t"] - killed <= OFF_WITHIN_S + 0.01
    status = control(twin.socket, "status")
    assert status["drive"], "the killed process left its drive line high, as a Pi does"
    assert not status["radiating"] and not status["contactor_closed"]
    twin.wait_truth(lambda r: r.get("client") == "gpio" and r.get("connected") is False)
