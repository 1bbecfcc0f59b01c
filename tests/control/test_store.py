"""The effector store commits on the command's path and fsyncs its WAL right after, off it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from edgenode.control.store import EffectorStore
from tests.control.conftest import wait_for


class FsyncSpy:
    """Stands in for os.fsync (the store's `fsync=`): records which file each call synced,
    then really syncs it."""

    def __init__(self) -> None:
        self.files: list[str] = []

    def __call__(self, fd: int) -> None:
        self.files.append(os.readlink(f"/proc/self/fd/{fd}"))
        os.fsync(fd)

    def wal_syncs(self, store: EffectorStore) -> int:
        return self.files.count(f"{store.path}-wal")


def test_every_commit_is_followed_by_an_fsync_of_the_wal(tmp_path: Path) -> None:
    spy = FsyncSpy()
    store = EffectorStore(tmp_path / "control", fsync=spy)
    time.sleep(0.05)
    assert spy.files == [], "nothing committed, nothing to sync"
    commits = [
        lambda: store.remember("01JCOMMAND0000000000000000", time.time() + 30,
                               duty=(time.time(), time.time() + 5)),
        lambda: store.duty_close(1, time.time()),
        lambda: store.put("fault", '{"code": "x"}'),
        lambda: store.remember("01JCOMMAND0000000000000002", time.time() + 30),
    ]
    for n, commit in enumerate(commits, start=1):
        commit()
        assert wait_for(lambda n=n: spy.wal_syncs(store) >= n), (n, spy.files)
    assert set(spy.files) == {f"{store.path}-wal"}, spy.files
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
