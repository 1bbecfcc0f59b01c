"""The relay pulse: given only on the unit, with --pulse-relay, the key switch at TEST and the
effector SAFE; at most 200 ms; the aux contact must follow; audited. Refused otherwise."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from edgenode.selftest.pulse import pulse_refusal
from tests.conftest import Mosquitto
from tests.selftest.conftest import wait_first_selftest
from tests.simdaemon import SimDaemon, ctl, radiating_changes

SAFE_AT_TEST = {"state": "SAFE", "key_switch": "test"}


@pytest.mark.parametrize(("local", "asked", "state", "why"), [
    (False, True, SAFE_AT_TEST, "a remote self-test never pulses the relay"),
    (True, False, SAFE_AT_TEST, "only with --pulse-relay"),
    (True, True, {"state": "ARMED", "key_switch": "test"}, "the effector is ARMED"),
    (True, True, {"state": "ENGAGED", "key_switch": "test"}, "the effector is ENGAGED"),
    (True, True, {"state": "FAULT", "key_switch": "test"}, "the effector is FAULT"),
    (True, True, {"state": "SAFE", "key_switch": "operate"}, "key switch at OPERATE"),
    (True, True, {"state": "SAFE", "key_switch": "off"}, "key switch at OFF"),
    (True, True, None, "has not reported"),
])
def test_pulse_is_refused_in_every_wrong_state(local: bool, asked: bool,
                                               state: dict[str, Any] | None, why: str) -> None:
    refusal = pulse_refusal(local=local, asked=asked, state=state)
    assert refusal is not None and why in refusal


def test_pulse_is_allowed_only_locally_asked_safe_at_test() -> None:
    assert pulse_refusal(local=True, asked=True, state=SAFE_AT_TEST) is None


def _pulse(daemon: SimDaemon) -> dict[str, Any]:
    answer = daemon.control({"cmd": "selftest", "parts": ["relay"], "pulse_relay": True})
    assert answer["ok"], answer
    return next(c for c in answer["report"]["checks"] if c["name"] == "relay.pulse")


def _audited_pulse(daemon: SimDaemon, timeout_s: float = 5) -> dict[str, Any]:
    """The last pulse's result record in the audit log (written by the emitter thread)."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = "".join(p.read_text() for p in sorted((daemon.state / "audit").glob(
            "audit-*.jsonl")))
        pulses = [json.loads(line) for line in text.splitlines() if "relay-pulse" in line]
        if pulses and pulses[-1]["kind"] == "result":
            assert pulses[-2]["kind"] == "command", pulses
            return pulses[-1]
        assert time.monotonic() < deadline, pulses
        time.sleep(0.1)


def _wait_key(daemon: SimDaemon, position: str) -> None:
    daemon.twin("key", position=position)
    deadline = time.monotonic() + 10
    while True:
        report = daemon.control({"cmd": "selftest", "parts": ["relay"]})["report"]
        key = next(c for c in report["checks"] if c["name"] == "relay.key")
        if key["value"] == position:
            return
        assert time.monotonic() < deadline, key
        time.sleep(0.2)


def test_pulse_on_the_twin_at_test_while_safe_and_refused_at_operate_or_armed(
        twin_daemon: SimDaemon, shared_broker: Mosquitto) -> None:
    wait_first_selftest(twin_daemon)
    refused = _pulse(twin_daemon)  # the key is at OPERATE
    assert refused["result"] == "SKIP" and "turn it to TEST" in refused["hint"], refused
    started = time.time()
    _wait_key(twin_daemon, "test")
    try:
        given = _pulse(twin_daemon)
        assert given["result"] == "PASS", given
        detail = given["detail"]
        assert detail["on_s"] <= 0.2 + 0.05  # the drive dropped within the pulse (+ a read)
        # The twin's K1 pulls in after 15 ms and releases 10 ms after the drive drops.
        assert 0.010 <= detail["aux_closed_after_s"] <= detail["settle_s"]
        assert detail["aux_opened_after_s"] <= detail["settle_s"]
        audited = _audited_pulse(twin_daemon)["data"]
        assert audited["aux_closed_after_s"] == pytest.approx(detail["aux_closed_after_s"],
                                                               abs=1e-3)
        # Armed: refused, and the relay is not touched.
        arm = ctl(twin_daemon, shared_broker, "arm", "--ttl", "2", discover=False)
        assert arm.returncode == 0, arm.stdout + arm.stderr
        refused = _pulse(twin_daemon)
        assert refused["result"] == "SKIP" and "the effector is ARMED" in refused["hint"]
    finally:
        _wait_key(twin_daemon, "operate")
    # The jammer never radiated: at TEST the board feeds the lamp, not the jammer.
    assert not [t for t, on in radiating_changes(twin_daemon) if on and t > started]
    deadline = time.monotonic() + 10  # the arm expires: SAFE again for the tests after
    while twin_daemon.status()["effector"] != "SAFE":
        assert time.monotonic() < deadline
        time.sleep(0.2)
