"""The effector store commits on the command's path and fsyncs its WAL right after, off it."""

from __future__ import annotations

import time
from pathlib import Path

from edgenode.control.store import EffectorStore
from tests.control.conftest import wait_for


def test_every_commit_is_fsynced_by_the_sync_thread(tmp_path: Path) -> None:
    store = EffectorStore(tmp_path / "control")
    assert store.syncs == 0, "nothing committed, nothing to sync"
    row = store.remember("01JCOMMAND0000000000000000", time.time() + 30,
                         duty=(time.time(), time.time() + 5))
    assert wait_for(lambda: store.syncs >= 1)
    synced = store.syncs
    assert row is not None
    store.duty_close(row, time.time())
    assert wait_for(lambda: store.syncs > synced)
    store.close()
    reopened = EffectorStore(tmp_path / "control")
    assert reopened.seen("01JCOMMAND0000000000000000")
    reopened.close()


def test_a_wall_clock_step_forward_does_not_prune_a_young_replay_entry(tmp_path: Path) -> None:
    # Issue 22 point 4: step the clock 2 h forward (prune), then back: the id must remain.
    store = EffectorStore(tmp_path / "control")
    store.remember("01JCOMMAND0000000000000001", time.time() + 10)
    store.prune(now=time.time() + 7200, every_s=0)
    assert store.seen("01JCOMMAND0000000000000001")
    store.close()
