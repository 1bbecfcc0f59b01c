"""A stepped wall clock neither re-admits a replayed command nor admits arm/engage until the
clock is synchronised again (issue 22 point 4)."""

from __future__ import annotations

import itertools
import logging
import time

import pytest

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


class SyncSource:
    """The clock's sync source (timedatectl's NTPSynchronized): counts and times its reads."""

    def __init__(self, synced: bool = True) -> None:
        self.synced = synced
        self.reads: list[float] = []

    def __call__(self) -> bool:
        self.reads.append(time.monotonic())
        return self.synced


STEP_S = 7200.5
REFUSAL = (f"clock_jumped: the wall clock was stepped by +{STEP_S:.1f} s; arm and engage are "
           "refused until it is synchronised again")


def test_the_loop_reads_the_sync_source_only_while_a_step_is_unresolved_and_paced(
        make_rig: RigFactory) -> None:
    wall, source = SteppableClock(), SyncSource()
    rig = make_rig(wall=wall, hooks={"clock_synced": source})
    toggles = rig.heartbeat_toggles()
    assert wait_for(lambda: rig.heartbeat_toggles() >= toggles + 10)  # ten loop steps
    assert source.reads == []  # no step: the (maybe slow) sync source is left alone
    wall.step(STEP_S)
    assert wait_for(lambda: len(source.reads) >= 2)
    gaps = [b - a for a, b in itertools.pairwise(source.reads)]
    # every CLOCK_POLL_S, not at every 10 ms step (a loaded machine only widens the gaps)
    assert min(gaps) >= CLOCK_POLL_S / 2, gaps


def test_a_step_stays_refused_while_the_source_says_synchronised_without_a_lapse(
        make_rig: RigFactory, caplog: pytest.LogCaptureFixture) -> None:
    wall, source = SteppableClock(), SyncSource(synced=True)
    rig = make_rig(wall=wall, hooks={"clock_synced": source})
    with caplog.at_level(logging.WARNING, logger="edgenode.control.effector"):
        wall.step(STEP_S)
        # the loop has looked at the source twice and heard "synchronised" both times: not
        # proof the clock is right again (CLOCK_RESYNC_S of that would be)
        assert wait_for(lambda: len(source.reads) >= 2)
        result = rig.send("alice", "arm", {"ttl_s": 30}, now=wall())
        assert (result["status"], result["reason"]) == ("rejected", REFUSAL)
        assert rig.effector.state == "SAFE"
    assert f"effector: the wall clock was stepped by +{STEP_S:.1f} s; arm and engage are " \
           "refused until it is synchronised again" in messages(caplog)
    assert rig.effector.flush()
    assert [r["data"] for r in rig.audit if r["kind"] == "clock"] == [
        {"step_s": STEP_S, "resolved": False}]


def test_a_step_is_resolved_by_the_source_lapsing_and_coming_back(
        make_rig: RigFactory, caplog: pytest.LogCaptureFixture) -> None:
    wall, source = SteppableClock(), SyncSource(synced=False)
    rig = make_rig(wall=wall, hooks={"clock_synced": source})
    with caplog.at_level(logging.WARNING, logger="edgenode.control.effector"):
        wall.step(STEP_S)
        assert wait_for(lambda: len(source.reads) >= 1)
        source.synced = True
        assert wait_for(lambda: rig.send("alice", "arm", {"ttl_s": 30},
                                         now=wall())["status"] == "ok")
    assert (f"effector: the clock is synchronised again after a +{STEP_S:.1f} s step"
            in messages(caplog))
    assert rig.effector.flush()
    assert [r["data"] for r in rig.audit if r["kind"] == "clock"] == [
        {"step_s": STEP_S, "resolved": False}, {"step_s": STEP_S, "resolved": True}]


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "edgenode.control.effector"]
