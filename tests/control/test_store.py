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
