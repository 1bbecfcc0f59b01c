"""A stepped wall clock neither re-admits a replayed command nor admits arm/engage until the
clock is synchronised again (issue 22 point 4)."""

from __future__ import annotations

import time

from edgenode.control.clockwatch import CLOCK_POLL_S
from edgenode.control.operator import encode
from tests.control.conftest import OPERATORS, RigFactory, SteppableClock, command, wait_for
from tests.control.test_rejections import code


def test_clock_steps_refuse_arm_until_resynced_and_never_readmit_a_replay(
        make_rig: RigFactory) -> None:
    wall = SteppableClock()
    rig = make_rig(wall=wall)
    captured = command(OPERATORS["alice"], "arm", {"ttl_s": 30}, now=wall())
    assert rig.send_raw(encode(captured))["status"] == "ok"
    assert rig.send("alice", "safe", now=wall())["status"] == "ok"

    wall.step(7200)  # forward: on this clock the replay cache would be pruned
    result = rig.send("alice", "arm", {"ttl_s": 30}, now=wall())
    assert code(result) == "clock_jumped", result
    wall.step(-7200)  # and back: the captured arm looks fresh again
    assert code(rig.send_raw(encode(captured))) == "replayed"
    assert code(rig.send("alice", "arm", {"ttl_s": 30}, now=wall())) == "clock_jumped"
    assert rig.send("alice", "safe", now=wall())["status"] == "ok"  # obeyed throughout
    assert rig.effector.state == "SAFE" and not rig.drive_went_high()

    rig.clock["synced"] = False  # the sync daemon notices the step, then resynchronises
    time.sleep(CLOCK_POLL_S + 0.3)  # the loop reads the sync source every CLOCK_POLL_S
    rig.clock["synced"] = True
    assert wait_for(lambda: rig.send("alice", "arm", {"ttl_s": 30},
                                     now=wall())["status"] == "ok", 3)
    rig.effector.flush()
    steps = [r["data"] for r in rig.audit if r["kind"] == "clock"]
    assert [s["resolved"] for s in steps] == [False, False, True], steps
