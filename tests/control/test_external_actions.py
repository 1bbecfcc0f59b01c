"""selftest and rebirth: served by the daemon through handlers the effector calls outside its
lock (edgenode/daemon/node.py sets them); and records made outside the command path."""

from __future__ import annotations

from typing import Any

import pytest

from tests.control.conftest import Rig


def test_a_served_action_answers_with_its_handlers_summary(rig: Rig) -> None:
    asked: list[dict[str, Any]] = []

    def selftest(params: dict[str, Any]) -> str:
        asked.append(params)
        return "radar pass, audio pass"

    rig.effector.set_action_handler("selftest", selftest)
    result = rig.send("tech", "selftest")
    assert (result["status"], result["reason"]) == ("ok", "radar pass, audio pass")
    assert asked == [{}]  # the command's params (selftest takes none)
    # Each action has its own handler: rebirth is not served by the self-test's.
    result = rig.send("tech", "rebirth")
    assert (result["status"], result["reason"]) == (
        "error", "not_available: rebirth is not served on this node")


def test_a_failing_handler_is_an_error_naming_the_failure_and_moves_nothing(rig: Rig) -> None:
    def rebirth(params: dict[str, Any]) -> str:
        raise RuntimeError("broker gone")

    rig.effector.set_action_handler("rebirth", rebirth)
    rig.arm_and_engage(duration_s=30)
    result = rig.send("alice", "rebirth")
    assert (result["status"], result["reason"], result["state"]) == (
        "error", "rebirth_failed: RuntimeError: broker gone", "ENGAGED")
    assert rig.drive()  # a failed rebirth is no reason to stop an authorised engagement


@pytest.mark.parametrize("action", ["engage", "safe", "keys-update", "selftests"])
def test_only_selftest_and_rebirth_take_a_handler(rig: Rig, action: str) -> None:
    with pytest.raises(ValueError, match=f"effector: no external handler for '{action}'"):
        rig.effector.set_action_handler(action, lambda params: None)


def test_records_made_outside_the_command_path_join_the_audit_chain(rig: Rig) -> None:
    rig.effector.record("login", {"user": "tech", "from": "192.0.2.7"})
    assert rig.effector.flush()
    logins = [r for r in rig.audit if r["kind"] == "login"]
    assert [r["data"] for r in logins] == [{"user": "tech", "from": "192.0.2.7"}]
