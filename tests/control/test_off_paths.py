"""Every way the relay goes OFF, on the fake board with a relay coil that follows the drive."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from hal.ports.gpio import GpioError
from tests.control.conftest import AUX, HEARTBEAT, KEY_OPERATE, Rig, RigFactory, wait_for


def test_relay_goes_off_when_the_engagement_duration_ends(rig: Rig) -> None:
    rig.arm_and_engage(duration_s=0.3)
    assert rig.effector.state == "ENGAGED"
    assert wait_for(lambda: not rig.drive(), 2)
    # The drive drops first; the state follows once the duty record is closed.
    assert wait_for(lambda: rig.effector.state == "ARMED", 2)
    on = rig.gpio.high_time(17)
    assert 0.28 <= on <= 0.8, f"relay was on {on:.3f} s for a 0.3 s engagement"


def test_disengage_drops_the_relay_and_stays_armed(rig: Rig) -> None:
    rig.arm_and_engage()
    assert rig.send("bob", "disengage")["status"] == "ok"
    assert not rig.drive()
    assert rig.effector.state == "ARMED"


def test_safe_from_any_key_drops_the_relay_and_disarms(rig: Rig) -> None:
    rig.arm_and_engage()
    result = rig.send("obs", "safe")
    assert result["status"] == "ok" and result["state"] == "SAFE"
    assert not rig.drive()


def test_key_switch_leaving_operate_drops_the_relay(rig: Rig) -> None:
    rig.arm_and_engage()
    rig.key("test")
    assert wait_for(lambda: not rig.drive(), 3)
    # The drive drops first; the state follows on the effector's next loop turn.
    assert wait_for(lambda: rig.effector.state == "SAFE", 3)


def test_a_turn_of_the_key_is_published_at_once_while_safe(rig: Rig) -> None:
    """Operators see the key switch as it turns, not only with the next command: the
    effector state goes out on every change of the key (or of the aux contact)."""
    assert wait_for(lambda: bool(rig.states) and rig.states[-1]["key_switch"] == "operate")
    rig.key("test")
    assert wait_for(lambda: rig.states[-1]["key_switch"] == "test", 3), rig.states[-1]
    rig.key("off")
    assert wait_for(lambda: rig.states[-1]["key_switch"] == "off", 3), rig.states[-1]
    assert rig.effector.state == "SAFE"


def test_relay_that_does_not_pull_in_is_a_fault(rig: Rig) -> None:
    rig.coil.dead = True
    rig.arm_and_engage()
    assert wait_for(lambda: rig.effector.state == "FAULT", 3)
    assert not rig.drive()
    assert rig.effector.state == "FAULT"


def test_stuck_relay_stops_the_heartbeat_and_raises_a_retained_alarm(rig: Rig) -> None:
    rig.arm_and_engage()
    rig.coil.stuck = True
    assert rig.send("alice", "disengage")["status"] == "ok"
    assert not rig.drive()
    assert wait_for(lambda: rig.effector.state == "FAULT", 3)
    toggles = rig.heartbeat_toggles()
    time.sleep(0.3)
    assert rig.heartbeat_toggles() == toggles, "heartbeat kept toggling with the relay stuck on"
    rig.effector.flush()
    alarms = [s for s in rig.states if s["alarm"]]
    assert alarms and alarms[-1]["alarm"]["name"] == "stuck_on"
    assert alarms[-1]["state"] == "FAULT"


def test_stuck_on_alarm_repeats_every_5_s_until_reset(rig: Rig) -> None:
    rig.coil.stuck = True
    assert wait_for(lambda: rig.effector.state == "FAULT", 3)
    # The state changes a moment before its report is queued: wait for the first alarm.
    assert wait_for(lambda: any(s["alarm"] for s in rig.states), 3)
    rig.effector.flush()
    first = len([s for s in rig.states if s["alarm"]])
    time.sleep(5.3)
    rig.effector.flush()
    assert len([s for s in rig.states if s["alarm"]]) == first + 1
    # An admin reset is refused while the contact is still closed, accepted once it opens.
    assert rig.send("root", "reset")["reason"].startswith("aux_disagrees")
    rig.coil.stuck = False
    assert wait_for(lambda: not rig.gpio.level(AUX), 3)
    result = rig.send("root", "reset")
    assert result["status"] == "ok" and result["state"] == "SAFE", result
    rig.effector.flush()
    assert rig.states[-1]["alarm"] is None
    toggles = rig.heartbeat_toggles()
    assert wait_for(lambda: rig.heartbeat_toggles() > toggles + 3, 3)


def test_stuck_relay_at_start_up_is_a_fault_before_anything_else(make_rig: RigFactory) -> None:
    rig = make_rig(start=False)
    rig.gpio.drive_input(AUX, True)
    rig.coil.stuck = True
    rig.effector.start()
    assert rig.effector.state == "FAULT"
    assert rig.effector.flush(5)
    assert rig.states[-1]["fault"] == {
        "code": "stuck_on", "detail": "aux contact closed at start-up with the drive off"}
    time.sleep(0.1)
    assert rig.heartbeat_toggles() == 1, "heartbeat toggled with a stuck relay at start-up"


def test_link_loss_beyond_grace_drops_the_relay_and_disarms(make_rig: RigFactory) -> None:
    rig = make_rig(link_loss_grace_s=1.0)
    rig.arm_and_engage()
    lost = time.monotonic()
    rig.effector.link_changed(False)
    time.sleep(0.2)
    assert rig.drive(), "dropped inside the grace time"
    assert wait_for(lambda: not rig.drive(), 3)
    off_after = rig.drive_history()[-1][0] - lost
    assert 1.0 <= off_after < 1.5, f"relay off {off_after:.2f} s after the link went"
    assert wait_for(lambda: rig.effector.state == "SAFE", 3)  # state follows the drive


def test_link_loss_drops_armed_to_safe(rig: Rig) -> None:
    rig.send("alice", "arm", {"ttl_s": 30})
    rig.effector.link_changed(False)
    assert wait_for(lambda: rig.effector.state == "SAFE", 3)
    assert not rig.drive_went_high()


def test_link_back_within_grace_keeps_the_engagement(make_rig: RigFactory) -> None:
    rig = make_rig(link_loss_grace_s=2.0)
    rig.arm_and_engage()
    rig.effector.link_changed(False)
    time.sleep(0.1)
    rig.effector.link_changed(True)
    time.sleep(0.4)
    assert rig.drive() and rig.effector.state == "ENGAGED"


def test_arm_expires_to_safe(rig: Rig) -> None:
    assert rig.send("alice", "arm", {"ttl_s": 0.2})["status"] == "ok"
    assert wait_for(lambda: rig.effector.state == "SAFE", 3)


def test_stop_drops_the_relay_and_releases_the_lines(rig: Rig) -> None:
    rig.arm_and_engage()
    rig.effector.stop()
    assert not rig.drive()
    assert not rig.gpio.lines[17].held and not rig.gpio.lines[HEARTBEAT].held


def test_stop_with_a_wedged_loop_drops_the_drive_and_leaves_its_lines(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    rig.arm_and_engage()
    release = rig.gpio.wedge_reads(KEY_OPERATE)  # the loop blocks in its next input read
    time.sleep(0.1)
    rig.effector.stop()
    assert not rig.drive()
    assert "loop thread did not stop" in caplog.text
    # Lines a live thread reads are not pulled from under it: it ends cleanly when it wakes.
    assert rig.gpio.lines[KEY_OPERATE].held and rig.gpio.lines[HEARTBEAT].held
    release.set()
    time.sleep(0.3)
    assert "loop step failed" not in caplog.text and not rig.drive()


def test_a_read_that_wedges_after_a_drive_change_never_holds_up_safe(rig: Rig) -> None:
    """The loop reads again when a command changed the drive during its read; that second
    read once ran under the effector's lock, so a driver wedging there held `safe` (and
    stop) off with the drive high."""
    assert rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    first = rig.gpio.wedge_reads(AUX)  # the loop blocks in its next read of the contact
    time.sleep(0.1)
    result = rig.send("alice", "engage", {"duration_s": 5, "bearing_deg": 90})
    assert result["status"] == "ok", result
    second = threading.Event()
    rig.gpio.wedged[AUX] = second  # the loop's read again (the drive changed) wedges too
    first.set()
    time.sleep(0.1)
    safe = threading.Thread(target=rig.effector.make_safe, args=("operator safe",),
                            daemon=True)
    safe.start()
    safe.join(timeout=1.0)
    try:
        assert not safe.is_alive(), "safe waited for the loop's wedged read"
        assert not rig.drive() and rig.effector.state == "SAFE"
    finally:
        second.set()


def test_make_safe_on_reload_drops_the_relay(rig: Rig) -> None:
    rig.arm_and_engage()
    rig.effector.make_safe("config reload requested")
    assert not rig.drive() and rig.effector.state == "SAFE"


def test_keys_update_is_a_reload_safe_first(rig: Rig) -> None:
    from tests.control.conftest import OPERATORS, key_entry

    rig.arm_and_engage()
    keys = [key_entry(k) for k in OPERATORS.values()]
    assert rig.send("root", "keys-update", {"version": 5, "keys": keys})["status"] == "ok"
    assert not rig.drive() and rig.effector.state == "SAFE"


def test_stalled_effector_loop_stops_the_heartbeat(rig: Rig) -> None:
    assert wait_for(lambda: rig.heartbeat_toggles() > 5, 3)
    rig.arm_and_engage()
    rig.health.stall("effector", 2.0)
    # The step under way when the stall came still ends with its toggle: on a loaded machine
    # that can be well after the request. Wait for the heartbeat to fall still (0.1 s is five
    # of its periods), then watch it stay still.
    last = [rig.heartbeat_toggles(), time.monotonic()]

    def still() -> bool:
        now = rig.heartbeat_toggles()
        if now != last[0]:
            last[:] = [now, time.monotonic()]
        return time.monotonic() - last[1] >= 0.1

    assert wait_for(still, 1.0), "the heartbeat kept toggling after the stall"
    before = rig.heartbeat_toggles()
    time.sleep(0.5)
    assert rig.heartbeat_toggles() == before, "heartbeat toggled while the loop was stalled"
    # The stall also holds the deadlines; it is the board that drops the jammer here.
    assert wait_for(lambda: rig.heartbeat_toggles() > before, 3)
    # When the loop resumes it must not let the jammer come back on by itself: the board
    # dropped it during the stall, so the engagement is over.
    assert not rig.drive()
    assert wait_for(lambda: rig.effector.state == "SAFE", 3)


def test_heartbeat_toggles_while_healthy(rig: Rig) -> None:
    start = rig.heartbeat_toggles()
    time.sleep(0.3)
    toggles = rig.heartbeat_toggles() - start
    assert toggles >= 5, f"{toggles} heartbeat edges in 0.3 s (period 20 ms)"


def test_full_cycle_safe_armed_engaged_armed(rig: Rig) -> None:
    rig.arm_and_engage(duration_s=0.2)

    def transitions() -> list[tuple[str, str]]:
        return [(r["data"]["from"], r["data"]["to"]) for r in rig.audit if r["kind"] == "state"]

    # The state changes a moment before its audit record is queued: wait for the record.
    assert wait_for(lambda: len(transitions()) >= 3, 3)
    assert rig.effector.state == "ARMED"
    assert transitions() == [("SAFE", "ARMED"), ("ARMED", "ENGAGED"), ("ENGAGED", "ARMED")]


def test_engage_after_the_arm_expired_is_refused_while_the_loop_is_stalled(rig: Rig) -> None:
    # Issue 22 point 9: the deadline loop expires the arm, but a stalled loop must not
    # stretch it; the engage checks the arm's expiry itself.
    assert rig.send("alice", "arm", {"ttl_s": 0.3})["status"] == "ok"
    rig.health.stall("effector", 2.0)
    time.sleep(0.5)
    result = rig.send("bob", "engage", {"duration_s": 5, "bearing_deg": 90})
    assert result["status"] == "rejected" and result["reason"].startswith("arm_expired"), result
    assert not rig.drive_went_high()
    assert rig.effector.state == "SAFE"
    assert rig.effector.flush()
    expired = [r["data"] for r in rig.audit if r["kind"] == "state"][-1]
    assert (expired["from"], expired["to"], expired["reason"]) == ("ARMED", "SAFE",
                                                                   "arm expired")


def test_heartbeat_never_toggles_while_the_effector_is_disabled(make_rig: RigFactory) -> None:
    rig = make_rig(enabled=False)
    start = rig.heartbeat_toggles()
    time.sleep(0.3)
    assert rig.heartbeat_toggles() == start, "heartbeat toggled with effector.enabled false"
    assert rig.effector.state == "SAFE"


def test_stuck_relay_latches_fault_at_the_first_loop_step_past_the_settle_time(
        rig: Rig) -> None:
    # The documented bound is aux_settle_ms after the drive fell plus three loop periods
    # (the effector steps twice per heartbeat period). It is checked in loop steps, not
    # seconds, so a loaded machine that delays steps cannot fail it: every step toggles the
    # heartbeat until the FAULT latches, so the toggles after the fall are the steps that
    # did not latch. The first of them may still have read the contact before the fall; from
    # the second on they saw it disagree, and must all fall within the settle time of it.
    rig.arm_and_engage()
    rig.coil.stuck = True
    assert rig.send("alice", "disengage")["status"] == "ok"
    assert wait_for(lambda: rig.effector.state == "FAULT", 3)
    rig.effector.flush()
    fell = [t for t, level in rig.drive_history() if not level][-1]  # monotonic
    fault = next(s for s in rig.states if s["state"] == "FAULT")
    latched = fault["since"] + time.monotonic() - time.time()
    settle = rig.config.effector.aux_settle_ms / 1000
    waiting = [t for t, _ in rig.gpio.history(HEARTBEAT) if fell < t < latched - 0.002]
    assert len(waiting) >= 3, f"only {len(waiting)} loop steps between the fall and the FAULT"
    assert waiting[-1] - waiting[1] < settle + 0.002, (
        f"a step {waiting[-1] - waiting[1]:.3f} s after the disagreement was first seen "
        f"did not latch (settle {settle} s)")
    assert latched - fell >= settle - 0.002, f"FAULT {latched - fell:.3f} s after the fall"
    time.sleep(0.1)
    assert not [t for t, _ in rig.gpio.history(HEARTBEAT) if t > latched + 0.002], (
        "the heartbeat toggled after the FAULT latched")


def test_engage_is_refused_while_the_broker_link_is_down(rig: Rig) -> None:
    assert rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    rig.effector.link_changed(False)
    result = rig.send("bob", "engage", {"duration_s": 5, "bearing_deg": 90})
    assert result["status"] == "rejected" and result["reason"].startswith("link_lost"), result
    assert not rig.drive_went_high()
    rig.effector.link_changed(True)
    assert rig.send("bob", "engage", {"duration_s": 5, "bearing_deg": 90})["status"] == "ok"


def test_a_relay_read_that_fails_latches_a_fault_and_the_loop_goes_on_after_a_pause(
        rig: Rig) -> None:
    rig.arm_and_engage()
    rig.gpio.failing[AUX] = GpioError("gpio line 22: read failed (EIO)")
    assert wait_for(lambda: rig.effector.state == "FAULT", 3)
    assert not rig.drive()
    rig.effector.flush()
    fault = next(s for s in rig.states if s["state"] == "FAULT")
    assert fault["reason"].startswith("loop_error"), fault
    part = rig.health.snapshot()["effector"]
    assert (part["state"], part["reason"]) == ("failed", "GpioError: gpio line 22: read failed "
                                                         "(EIO)")
    # The loop backs off for a second, then steps again (a FAULT stays latched).
    steps = rig.health.stages["effector"].loops
    time.sleep(0.5)
    assert rig.health.stages["effector"].loops <= steps + 1, "no pause after the failed step"
    del rig.gpio.failing[AUX]
    assert wait_for(lambda: rig.health.stages["effector"].loops > steps + 5, 3)
    assert rig.effector.state == "FAULT" and not rig.drive()


def test_engage_reads_the_key_afresh_when_the_loops_reading_is_stale(rig: Rig) -> None:
    # The engage takes the key from the loop's last reading only while it is a few loop
    # periods old. With the loop stalled, the key turned to OFF since must be read now.
    assert rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    rig.health.stall("effector", 2.0)
    time.sleep(0.2)  # the loop's reading is older than three loop periods now
    rig.key("off")
    result = rig.send("bob", "engage", {"duration_s": 5, "bearing_deg": 90})
    assert (result["status"], result["reason"]) == (
        "rejected", "key_switch_not_operate: key switch at off"), result
    assert not rig.drive_went_high()


def test_flush_says_false_while_a_change_holds_the_effector(rig: Rig) -> None:
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with rig.effector._lock:
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        assert rig.effector.flush(0.1) is False
    finally:
        release.set()
        holder.join()
    assert rig.effector.flush(5) is True


def test_flush_gives_up_at_its_timeout_while_the_publisher_is_stuck(rig: Rig) -> None:
    """A stuck publisher (the link wedged on a dying broker connection) holds the emitter's
    queue: flush must give up when its time is up, not wait for the publisher. The daemon's
    stop relies on it."""
    unstuck = threading.Event()

    class StuckPublisher(list):
        def append(self, record: Any) -> None:
            unstuck.wait(10)
            super().append(record)

    rig.audit = StuckPublisher(rig.audit)
    try:
        assert rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
        started = time.monotonic()
        assert rig.effector.flush(0.2) is False
        assert time.monotonic() - started < 0.9, "flush waited well past its timeout"
    finally:
        unstuck.set()
    assert rig.effector.flush(5) is True
    assert any(r["kind"] == "command" for r in rig.audit)


@pytest.mark.parametrize(("dropout_ms", "deadline_s"), [(100, 1.0), (200, 1.0), (600, 3.0)])
def test_the_effector_loop_is_late_after_five_board_dropouts_and_never_under_a_second(
        make_rig: RigFactory, dropout_ms: int, deadline_s: float) -> None:
    """The watchdog calls the effector's loop late (and the daemon stops feeding systemd)
    after five of the relay board's dropout times: the board has long dropped the relay by
    then. Never under a second, so a loaded machine's scheduling hiccup is not a fault."""
    rig = make_rig(relay_settings={"board_dropout_ms": dropout_ms})
    assert rig.health.stages["effector"].deadline_s == pytest.approx(deadline_s)


def test_an_engage_takes_the_key_switch_from_the_loops_fresh_reading(
        make_rig: RigFactory) -> None:
    """A command does not read the relay board itself while the loop's reading is fresh
    (three loop periods): a read is a round trip on some boards, and one that wedges would
    hold the command, under the effector's lock, for as long as it wedges."""
    rig = make_rig(relay_settings={"heartbeat_period_ms": 150, "board_dropout_ms": 600})
    assert rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    time.sleep(0.2)
    release = rig.gpio.wedge_reads(KEY_OPERATE)  # from now on, the loop's next read too
    results: list[dict[str, Any]] = []
    engage = threading.Thread(target=lambda: results.append(
        rig.send("alice", "engage", {"duration_s": 1, "bearing_deg": 90})), daemon=True)
    engage.start()
    engage.join(timeout=2.0)
    try:
        assert not engage.is_alive(), "the engage waited for a read of the key switch"
        assert results[0]["status"] == "ok", results
    finally:
        release.set()
