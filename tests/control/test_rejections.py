"""Every refusal names its reason, and the relay's drive line never goes high."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgenode.control import Effector
from edgenode.control.admission import Admission, Rejection
from edgenode.control.keys import KeyRing, OperatorIdentity
from edgenode.control.operator import encode
from edgenode.link.mqtt import InboundMessage
from edgenode.ulid import new_ulid
from tests.control.conftest import (
    NODE,
    OPERATORS,
    SITE,
    Rig,
    RigFactory,
    command,
    key_entry,
    make_config,
    wait_for,
)


def code(result: dict[str, Any]) -> str:
    return (result["reason"] or "").split(":")[0]


def assert_refused(rig: Rig, result: dict[str, Any], reason: str) -> None:
    assert result["status"] == "rejected", result
    assert code(result) == reason, result
    assert not rig.drive_went_high(), "the relay moved on a refused command"


def signed_engage(rig: Rig) -> dict[str, Any]:
    assert rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    return command(OPERATORS["alice"], "engage", {"duration_s": 5, "bearing_deg": 10})


def test_tampered_params_fail_the_signature(rig: Rig) -> None:
    env = signed_engage(rig)
    env["params"]["duration_s"] = 6
    result = rig.send_raw(encode(env))
    assert_refused(rig, result, "bad_signature")
    assert result["id"] == env["id"]


def test_signature_by_another_key_is_refused(rig: Rig) -> None:
    env = signed_engage(rig)
    forged = command(OperatorIdentity("alice", "operator", Ed25519PrivateKey.generate()),
                     "engage", {"duration_s": 5, "bearing_deg": 10})
    env["signature"] = forged["signature"]
    assert_refused(rig, rig.send_raw(encode(env)), "bad_signature")


def test_garbage_signature_is_refused(rig: Rig) -> None:
    env = signed_engage(rig)
    env["signature"] = "not base64!"
    assert_refused(rig, rig.send_raw(encode(env)), "bad_signature")
    env["signature"] = base64.b64encode(b"x" * 63).decode()
    assert_refused(rig, rig.send_raw(encode(env)), "bad_signature")


def test_missing_signature_is_refused(rig: Rig) -> None:
    env = signed_engage(rig)
    del env["signature"]
    assert_refused(rig, rig.send_raw(encode(env)), "missing_signature")


def test_unknown_key_is_refused(rig: Rig) -> None:
    signed_engage(rig)
    mallory = OperatorIdentity("mallory", "admin", Ed25519PrivateKey.generate())
    assert_refused(rig, rig.send(mallory, "engage", {"duration_s": 5, "bearing_deg": 1}),
                   "unknown_key")


def test_revoked_key_is_refused_after_keys_update(rig: Rig) -> None:
    keep = [key_entry(OPERATORS[k]) for k in ("root", "bob")]
    result = rig.send("root", "keys-update", {"version": 1, "keys": keep})
    assert result["status"] == "ok", result
    assert_refused(rig, rig.send("alice", "arm", {"ttl_s": 10}), "revoked_key")
    assert rig.send("bob", "arm", {"ttl_s": 10})["status"] == "ok"


@pytest.mark.parametrize(("who", "action", "params"), [
    ("obs", "arm", {"ttl_s": 10}),
    ("obs", "selftest", {}),
    ("tech", "arm", {"ttl_s": 10}),
    ("tech", "engage", {"duration_s": 1, "bearing_deg": 0}),
    ("alice", "reset", {}),
    ("alice", "keys-update", {"version": 9, "keys": [key_entry(OPERATORS["alice"])]}),
])
def test_role_not_allowed(rig: Rig, who: str, action: str, params: dict[str, Any]) -> None:
    if action == "engage":
        rig.send("alice", "arm", {"ttl_s": 30})
    assert_refused(rig, rig.send(who, action, params), "role_not_allowed")


def test_wrong_site_is_refused(rig: Rig) -> None:
    assert_refused(rig, rig.send("alice", "arm", {"ttl_s": 10}, site="other"), "wrong_site")


def test_wrong_node_is_refused(rig: Rig) -> None:
    assert_refused(rig, rig.send("alice", "arm", {"ttl_s": 10}, node="mast-99"), "wrong_node")


def test_arm_and_engage_must_name_exactly_one_node(rig: Rig) -> None:
    result = rig.send("alice", "arm", {"ttl_s": 10}, node=[NODE, "mast-02"])
    assert_refused(rig, result, "wrong_node")
    assert result["reason"] == "wrong_node: arm must name exactly one node, not a list"
    assert rig.effector.state == "SAFE"


def test_safe_may_name_a_list_of_nodes(rig: Rig) -> None:
    assert rig.send("obs", "safe", {}, node=["mast-02", NODE])["status"] == "ok"


def test_expired_command_is_refused(rig: Rig) -> None:
    result = rig.send("alice", "arm", {"ttl_s": 10}, now=time.time() - 20, lifetime_s=10)
    assert_refused(rig, result, "expired")


def test_command_from_the_future_is_refused(rig: Rig) -> None:
    result = rig.send("alice", "arm", {"ttl_s": 10}, now=time.time() + 5, lifetime_s=10)
    assert_refused(rig, result, "issued_in_future")


def test_small_clock_skew_is_tolerated(rig: Rig) -> None:
    result = rig.send("alice", "arm", {"ttl_s": 10}, now=time.time() + 1.5, lifetime_s=10)
    assert result["status"] == "ok", result


def test_overlong_lifetime_is_refused(rig: Rig) -> None:
    assert_refused(rig, rig.send("alice", "arm", {"ttl_s": 10}, lifetime_s=31),
                   "lifetime_too_long")


def test_replayed_command_is_refused_even_after_a_restart(make_rig: RigFactory,
                                                          tmp_path: Any) -> None:
    state = tmp_path / "node-state"
    first = make_rig(state_dir=state)
    arm = encode(command(OPERATORS["alice"], "arm", {"ttl_s": 10}))
    assert first.send_raw(arm)["status"] == "ok"
    assert_refused(first, first.send_raw(arm), "replayed")
    first.effector.stop()
    second = make_rig(state_dir=state)
    assert_refused(second, second.send_raw(arm), "replayed")
    assert second.effector.state == "SAFE"


def test_an_engage_replayed_after_its_engagement_ended_is_refused_and_the_relay_stays_off(
        rig: Rig) -> None:
    """A recorded engage sent again while the node is still armed must not fire the jammer a
    second time."""
    assert rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    engage = encode(command(OPERATORS["alice"], "engage", {"duration_s": 0.2,
                                                           "bearing_deg": 90}))
    assert rig.send_raw(engage)["status"] == "ok"
    assert wait_for(lambda: rig.effector.state == "ARMED", 5)
    assert not rig.drive()
    highs = sum(level for _, level in rig.drive_history())
    again = rig.send_raw(engage)
    assert (again["status"], again["reason"]) == (
        "rejected", "replayed: this command id was already received")
    time.sleep(0.05)
    assert rig.effector.state == "ARMED" and not rig.drive()
    assert sum(level for _, level in rig.drive_history()) == highs


def test_every_authentic_command_is_audited_with_its_signed_envelope_done_or_refused(
        rig: Rig) -> None:
    """The trail of who did what: the signed command as it came (what the signature covers,
    so anyone can check it later), with its topic, whether it was then done or refused."""
    arm = command(OPERATORS["alice"], "arm", {"ttl_s": 30})
    elsewhere = command(OPERATORS["bob"], "arm", {"ttl_s": 30}, site="elsewhere")
    assert rig.send_raw(encode(arm))["status"] == "ok"
    assert rig.send_raw(encode(elsewhere))["status"] == "rejected"
    assert rig.effector.flush(5)
    audited = [r["data"] for r in rig.audit if r["kind"] == "command"]
    topic = f"edgenode/{SITE}/{NODE}/cmd"
    assert audited == [{"topic": topic, "retained": False, "envelope": arm},
                       {"topic": topic, "retained": False, "envelope": elsewhere}]


def test_retained_command_is_never_acted_on(rig: Rig) -> None:
    result = rig.send("alice", "arm", {"ttl_s": 10}, retain=True)
    assert_refused(rig, result, "retained")
    assert result["reason"] == "retained: a retained command is never acted on"
    assert rig.effector.state == "SAFE"


@pytest.mark.parametrize("payload", [
    b"", b"{", b"\xff\xfe", b"[]", b"null", b'"arm"', b'{"id": 5}',
    b'{"id":"01ARZ3NDEKTSV4RRFFQ69G5FAV","id":"01ARZ3NDEKTSV4RRFFQ69G5FAW"}',
    b'{"v":1,"issued_at":NaN}', b"[" * 4000 + b"]" * 4000,
])
def test_malformed_payload_is_answered_with_a_null_id(rig: Rig, payload: bytes) -> None:
    result = rig.send_raw(payload)
    assert_refused(rig, result, "malformed")
    assert result["id"] is None


def test_malformed_envelope_with_an_id_is_answered_with_that_id(rig: Rig) -> None:
    env = command(OPERATORS["alice"], "arm", {"ttl_s": 10})
    env["issued_at"] = "yesterday"
    result = rig.send_raw(encode(env))
    assert_refused(rig, result, "malformed")
    assert result["id"] == env["id"]


def test_oversized_payload_is_refused_unread(rig: Rig) -> None:
    env = command(OPERATORS["alice"], "arm", {"ttl_s": 10})
    payload = encode(env) + b" " * 9000
    assert_refused(rig, rig.send_raw(payload), "oversized")


def test_unknown_action_is_refused(rig: Rig) -> None:
    result = rig.send("root", "launch", {})
    assert_refused(rig, result, "unknown_action")
    assert result["reason"] == ("unknown_action: 'launch' is not one of ['arm', 'engage', "
                                "'disengage', 'safe', 'reset', 'selftest', 'rebirth', "
                                "'keys-update', 'allow-add', 'allow-remove']")


@pytest.mark.parametrize(("action", "params"), [
    ("arm", {}),
    ("arm", {"ttl_s": "10"}),
    ("arm", {"ttl_s": 0}),
    ("arm", {"ttl_s": 301}),
    ("arm", {"ttl_s": 10, "extra": 1}),
    ("engage", {"duration_s": 5}),
    ("engage", {"duration_s": 5, "bearing_deg": 10, "track": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
    ("engage", {"duration_s": 31, "bearing_deg": 10}),
    ("engage", {"duration_s": -1, "bearing_deg": 10}),
    ("engage", {"duration_s": True, "bearing_deg": 10}),
    ("engage", {"duration_s": 5, "bearing_deg": 360}),
    ("engage", {"duration_s": 5, "track": "drone-1"}),
    ("disengage", {"now": True}),
    ("keys-update", {"version": 0, "keys": []}),
    ("keys-update", {"version": 2, "keys": [{"id": "x", "role": "god", "public_key": "A"}]}),
])
def test_bad_params_are_refused(rig: Rig, action: str, params: dict[str, Any]) -> None:
    rig.send("alice", "arm", {"ttl_s": 30})
    result = rig.send("root", action, params)
    assert_refused(rig, result, "bad_params")


def test_unsynchronised_clock_refuses_arm_and_engage(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.send("alice", "arm", {"ttl_s": 30})
    rig.clock["synced"] = False
    assert_refused(rig, rig.send("alice", "engage", {"duration_s": 5, "bearing_deg": 1}),
                   "clock_not_synced")
    assert_refused(rig, rig.send("alice", "arm", {"ttl_s": 30}), "clock_not_synced")


def test_unsynchronised_clock_still_obeys_safe_and_disengage(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.arm_and_engage()
    rig.clock["synced"] = False
    # The node's clock is an hour out: safe and disengage are obeyed anyway.
    skewed = time.time() + 3600
    assert rig.send("bob", "disengage", {}, now=skewed)["status"] == "ok"
    assert not rig.drive()
    assert rig.send("obs", "safe", {}, now=skewed)["status"] == "ok"
    assert rig.effector.state == "SAFE"


def test_disabled_effector_refuses_arm_and_engage(make_rig: RigFactory) -> None:
    rig = make_rig(enabled=False)
    assert_refused(rig, rig.send("alice", "arm", {"ttl_s": 10}), "effector_disabled")
    assert_refused(rig, rig.send("alice", "engage", {"duration_s": 5, "bearing_deg": 1}),
                   "effector_disabled")


def test_effector_is_disabled_by_default() -> None:
    from edgenode.config import EffectorSection

    assert EffectorSection().enabled is False


def test_engage_needs_arm_first(rig: Rig) -> None:
    assert_refused(rig, rig.send("alice", "engage", {"duration_s": 5, "bearing_deg": 1}),
                   "not_armed")


@pytest.mark.parametrize("position", ["off", "test", "invalid"])
def test_engage_needs_the_key_switch_at_operate(make_rig: RigFactory, position: str) -> None:
    rig = make_rig(key=position)
    if position == "invalid":
        rig.gpio.drive_input(5, True)
        rig.gpio.drive_input(6, True)
    assert rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    result = rig.send("alice", "engage", {"duration_s": 5, "bearing_deg": 1})
    assert_refused(rig, result, "key_switch_not_operate")


def test_engage_is_refused_while_a_fault_is_latched(rig: Rig) -> None:
    rig.coil.stuck = True  # aux closes with the drive off: stuck_on FAULT
    assert rig.effector.state != "FAULT"
    from tests.control.conftest import wait_for

    assert wait_for(lambda: rig.effector.state == "FAULT")
    assert_refused(rig, rig.send("alice", "arm", {"ttl_s": 30}), "fault")
    assert_refused(rig, rig.send("alice", "engage", {"duration_s": 5, "bearing_deg": 1}),
                   "fault")


def test_two_person_rule_needs_a_second_operator(make_rig: RigFactory) -> None:
    rig = make_rig(two_person=True)
    assert rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    assert_refused(rig, rig.send("alice", "engage", {"duration_s": 5, "bearing_deg": 1}),
                   "two_person_rule")
    assert rig.send("bob", "engage", {"duration_s": 5, "bearing_deg": 1})["status"] == "ok"


def test_spent_duty_budget_refuses_engage(make_rig: RigFactory) -> None:
    rig = make_rig(duty_max_on_s=1, duty_window_s=60)
    rig.arm_and_engage(duration_s=1)
    from tests.control.conftest import wait_for

    assert wait_for(lambda: rig.effector.state == "ARMED")
    history = len(rig.drive_history())
    result = rig.send("alice", "engage", {"duration_s": 1, "bearing_deg": 1})
    assert result["status"] == "rejected" and code(result) == "duty_budget_spent", result
    assert len(rig.drive_history()) == history


def test_stale_keys_update_version_is_refused(rig: Rig) -> None:
    keys = [key_entry(OperatorIdentity("root", "admin", OPERATORS["root"].private_key))]
    assert rig.send("root", "keys-update", {"version": 3, "keys": keys})["status"] == "ok"
    assert_refused(rig, rig.send("root", "keys-update", {"version": 3, "keys": keys}),
                   "stale_key_version")


def test_every_refusal_is_audited_once_and_junk_is_summarised(rig: Rig) -> None:
    signed = rig.send("alice", "arm", {"ttl_s": 10}, site="elsewhere")
    for _ in range(500):
        rig.send_raw(b"junk")
    rig.effector.stop()
    kinds = [r["kind"] for r in rig.audit]
    results = [r for r in rig.audit if r["kind"] == "result"]
    assert [r["data"]["id"] for r in results] == [signed["id"]]
    junk = [r for r in rig.audit if r["kind"] == "junk"]
    assert 1 <= len(junk) <= 2, kinds
    assert sum(r["data"]["count"] for r in junk) == 500
    assert set(junk[0]["data"]["reasons"]) == {"malformed"}


def test_commands_signed_by_no_known_key_are_junk_summarised_not_audited_one_by_one(
        rig: Rig) -> None:
    """Anyone can sign with a key of their own or forge a signature: such a flood must cost
    the audit log a summary, as unsigned junk does, not a record each."""
    mallory = OperatorIdentity("mallory", "admin", Ed25519PrivateKey.generate())
    forged = command(OPERATORS["alice"], "safe", {})
    forged["signature"] = base64.b64encode(b"x" * 64).decode()
    for _ in range(200):
        assert code(rig.send(mallory, "safe", {})) == "unknown_key"
        assert code(rig.send_raw(encode(forged | {"id": new_ulid()}))) == "bad_signature"
    rig.effector.stop()
    assert not [r for r in rig.audit if r["kind"] in ("command", "result")]
    junk = [r["data"] for r in rig.audit if r["kind"] == "junk"]
    assert sum(j["count"] for j in junk) == 400
    assert set().union(*(j["reasons"] for j in junk)) == {"unknown_key", "bad_signature"}


def test_arm_issued_before_the_node_started_is_refused(make_rig: RigFactory) -> None:
    # Queued for the node while it was down, or replayed after a power cut took its id from
    # the replay cache: either way meant for a node that has since restarted.
    arm = encode(command(OPERATORS["alice"], "arm", {"ttl_s": 10}, now=time.time() - 5))
    rig = make_rig()
    assert_refused(rig, rig.send_raw(arm), "issued_before_start")
    assert rig.send("alice", "safe", {}, now=time.time() - 5)["status"] == "ok"


def test_only_selftest_and_rebirth_take_the_slow_command_path() -> None:
    # Link answers the others on its network thread (an engage must not wait for a thread
    # hand-over); a self-test takes seconds and must not hold up keepalives.
    def slow(action: str) -> bool:
        payload = encode(command(OPERATORS["alice"], action, {}))
        return Effector.may_be_slow(InboundMessage("cmd", payload, False))

    assert slow("selftest") and slow("rebirth")
    assert not any(slow(a) for a in ("arm", "engage", "disengage", "safe", "reset"))


@pytest.mark.parametrize("action", ["safe", "disengage"])
def test_expired_safe_and_disengage_are_refused_when_the_clock_is_synced(
        rig: Rig, action: str) -> None:
    # Obeyed whatever their age only while the node cannot judge freshness (unsynchronised
    # clock, test above); with a synchronised clock an expired one is refused like any other.
    rig.arm_and_engage()
    stale = rig.send("alice", action, now=time.time() - 20)  # lifetime 10 s: expired
    assert stale["status"] == "rejected" and code(stale) == "expired", stale
    assert rig.drive() and rig.effector.state == "ENGAGED"


def test_a_payload_the_checks_cannot_judge_is_refused_as_junk_never_an_error() -> None:
    # Whatever fails while reading an unsigned message (here the key ring itself) makes it
    # junk: it must not reach the effector's internal-error path, which goes SAFE.
    def broken_ring() -> KeyRing:
        raise RuntimeError("key ring unavailable")

    admission = Admission(make_config(), broken_ring, lambda: True)
    env = command(OPERATORS["alice"], "arm", {"ttl_s": 10})
    outcome = admission.admit(encode(env), False)
    assert isinstance(outcome, Rejection)
    assert (outcome.code, outcome.detail, outcome.command_id, outcome.authentic) == (
        "malformed", "unprocessable envelope (RuntimeError)", None, False)
