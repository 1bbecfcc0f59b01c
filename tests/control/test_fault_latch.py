"""A latched FAULT outlives a restart until an admin resets it, and the reset does too; the
engagement a fault cut short counts as ended then; disengage never raises the drive."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edgenode.control.store import EffectorStore
from tests.control.conftest import AUX, Rig, RigFactory, wait_for


def last_state(rig: Rig) -> dict[str, Any]:
    assert rig.effector.flush()
    return [r["data"] for r in rig.audit if r["kind"] == "state"][-1]


def test_a_fault_stays_latched_across_a_restart_and_ends_its_engagement(
        make_rig: RigFactory, tmp_path: Path) -> None:
    state = tmp_path / "state"
    rig = make_rig(state_dir=state)
    rig.arm_and_engage(duration_s=30)
    rig.coil.dead = True  # drops out: aux_open once the settle time has passed
    assert wait_for(lambda: rig.effector.state == "FAULT", 3)
    reason = last_state(rig)["reason"]
    assert reason.startswith("aux_open: ")
    assert rig.states[-1]["alarm"] is None  # the relay is off: a fault, not a stuck-on alarm
    rig.effector.stop()
    again = make_rig(state_dir=state)
    assert again.effector.state == "FAULT"
    # The fault's own words come back with it.
    assert last_state(again)["reason"] == reason.replace(": ", ": latched before restart: ", 1)
    assert again.send("alice", "arm", {"ttl_s": 10})["status"] == "rejected"
    again.effector.stop()
    store = EffectorStore(state / "control")
    try:  # the duty ledger holds the engagement as it ended, not the 30 s it was given
        assert 0 < store.duty_used_s(3600) < 5
    finally:
        store.close()


def test_a_reset_is_recorded_by_whom_and_outlives_a_restart(make_rig: RigFactory,
                                                            tmp_path: Path) -> None:
    state = tmp_path / "state"
    rig = make_rig(state_dir=state)
    rig.coil.stuck = True
    assert wait_for(lambda: rig.effector.state == "FAULT", 3)
    refused = rig.send("root", "reset")
    assert (refused["status"], refused["reason"], refused["state"]) == (
        "rejected", "aux_disagrees: the aux contact is closed with the drive off; the relay "
        "is still stuck", "FAULT")
    rig.coil.stuck = False
    assert wait_for(lambda: not rig.gpio.level(AUX), 3)
    assert rig.send("root", "reset")["status"] == "ok"
    reset = last_state(rig)
    assert (reset["from"], reset["to"], reset["reason"]) == ("FAULT", "SAFE", "reset by root")
    results = [r["data"] for r in rig.audit if r["kind"] == "result"]
    assert reset["command"] == results[-1]["id"]
    rig.effector.stop()
    again = make_rig(state_dir=state)
    assert again.effector.state == "SAFE"
    assert again.send("alice", "arm", {"ttl_s": 10})["status"] == "ok"


def test_disengage_names_its_command_and_never_raises_the_drive(rig: Rig) -> None:
    assert rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    result = rig.send("bob", "disengage")
    assert (result["status"], result["reason"]) == ("ok", "not engaged (state ARMED)")
    assert not rig.drive_went_high()
    rig.arm_and_engage(duration_s=30)
    result = rig.send("bob", "disengage")
    assert result["status"] == "ok" and not rig.drive()
    ended = last_state(rig)
    assert (ended["to"], ended["reason"], ended["command"]) == ("ARMED", "disengaged by bob",
                                                                result["id"])


def test_safe_names_its_command_from_engaged_and_from_armed(rig: Rig) -> None:
    rig.arm_and_engage(duration_s=30)
    result = rig.send("obs", "safe")
    ended = last_state(rig)
    assert (ended["from"], ended["to"], ended["reason"], ended["command"]) == (
        "ENGAGED", "SAFE", "safe by obs", result["id"])
    assert rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    result = rig.send("obs", "safe")
    disarmed = last_state(rig)
    assert (disarmed["from"], disarmed["to"], disarmed["command"]) == ("ARMED", "SAFE",
                                                                       result["id"])


def test_disengage_after_the_arm_ran_out_ends_safe_not_armed(rig: Rig) -> None:
    rig.arm_and_engage(duration_s=30, ttl_s=1)
    time.sleep(1.2)  # the arm's time is up; the engagement's is not
    assert rig.effector.state == "ENGAGED" and rig.drive()
    result = rig.send("bob", "disengage")
    assert result["status"] == "ok" and not rig.drive()
    ended = last_state(rig)
    assert (ended["from"], ended["to"], ended["command"]) == ("ENGAGED", "SAFE", result["id"])


def test_each_way_an_engagement_ends_is_named_in_its_state_record(make_rig: RigFactory) -> None:
    rig = make_rig(relay_settings={"max_on_s": 1}, max_engage_s=1)
    rig.arm_and_engage(duration_s=1)  # the relay's dead-man limit comes due with it
    assert wait_for(lambda: rig.effector.state == "ARMED", 3)
    assert last_state(rig)["reason"] == "relay.max_on_s reached"
    rig.arm_and_engage(duration_s=1)
    rig.key("test")
    assert wait_for(lambda: rig.effector.state == "SAFE", 3)
    assert last_state(rig)["reason"] == "key switch left OPERATE (test)"


def test_a_welded_relay_latches_stuck_on_saying_so(rig: Rig) -> None:
    rig.arm_and_engage()
    rig.coil.stuck = True
    assert rig.send("bob", "disengage")["status"] == "ok"
    assert wait_for(lambda: rig.effector.state == "FAULT", 3)
    assert last_state(rig)["reason"] == ("stuck_on: the aux contact stayed closed after the "
                                         "drive dropped: relay stuck on")


def test_an_engagement_is_cut_to_what_is_left_of_the_duty_budget(make_rig: RigFactory) -> None:
    rig = make_rig(duty_max_on_s=2)
    rig.arm_and_engage(duration_s=5)
    assert last_state(rig)["reason"] == "engaged by alice for 2 s"
    assert wait_for(lambda: rig.effector.state == "ARMED", 4)
    assert 1.8 <= rig.gpio.high_time(17) <= 3.0


def test_a_relay_that_welds_again_right_after_a_reset_latches_fault_again(rig: Rig) -> None:
    """The reset is taken while the contact is open; the relay welds again before the loop's
    next look. That look must start the settle time afresh and latch FAULT again."""
    rig.coil.stuck = True
    assert wait_for(lambda: rig.effector.state == "FAULT", 3)
    rig.coil.stuck = False
    assert wait_for(lambda: not rig.gpio.level(AUX), 3)
    rig.health.stall("effector", 0.5)  # the loop holds still from its next step
    time.sleep(0.1)
    assert rig.send("root", "reset")["status"] == "ok"
    rig.coil.stuck = True
    assert wait_for(lambda: rig.gpio.level(AUX), 3)
    assert wait_for(lambda: rig.effector.state == "FAULT", 3)
    assert last_state(rig)["reason"].startswith("stuck_on: ")
