"""The effector store commits on the command's path and fsyncs its WAL right after, off it."""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest

from edgenode.control.store import EffectorStore, disk_full, read_meta
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


def test_read_meta_reads_one_value_beside_a_running_store(tmp_path: Path) -> None:
    store = EffectorStore(tmp_path / "control")
    store.put("audit_head", "7 abc")
    store.sync()
    try:
        # `edgenode audit` reads the file read-only while the daemon holds it open.
        assert read_meta(store.path, "audit_head") == "7 abc"
        assert read_meta(store.path, "audit_anchor") is None
        assert read_meta(tmp_path / "absent.db", "audit_head") is None
        assert not (tmp_path / "absent.db").exists()  # read-only: never created
    finally:
        store.close()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    assert read_meta(garbage, "audit_head") is None


def _real_full_error(tmp_path: Path) -> sqlite3.Error:
    """What SQLite raises when its file cannot grow (max_page_count stands in for the disk)."""
    db = sqlite3.connect(tmp_path / "full.db")
    db.execute("CREATE TABLE t (v BLOB)")
    db.execute("PRAGMA max_page_count = 2")
    try:
        db.execute("INSERT INTO t VALUES (?)", (b"x" * 100_000,))
    except sqlite3.Error as exc:
        return exc
    finally:
        db.close()
    raise AssertionError("SQLite took 100 kB into two pages")


def test_disk_full_tells_a_full_disk_from_other_errors(tmp_path: Path) -> None:
    full = _real_full_error(tmp_path)
    assert full.sqlite_errorcode == sqlite3.SQLITE_FULL
    assert disk_full(full)
    assert disk_full(sqlite3.OperationalError("database or disk is full"))  # no code: by text
    db = sqlite3.connect(":memory:")
    try:
        db.execute("SELEC 1")
    except sqlite3.Error as exc:
        assert not disk_full(exc)  # a real error with its own code
    assert not disk_full(sqlite3.OperationalError("database is locked"))
    assert disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert not disk_full(OSError(errno.EIO, "Input/output error"))
    assert not disk_full(ValueError("disk is full"))


def test_a_failed_transaction_is_rolled_back_and_the_store_goes_on(tmp_path: Path) -> None:
    store = EffectorStore(tmp_path / "control")
    try:
        with pytest.raises(sqlite3.ProgrammingError):  # a duty interval of one number
            store.remember("01HZZZZZZZZZZZZZZZZZZZZZZ1", time.time() + 60,
                           duty=(1.0,))  # type: ignore[arg-type]
        # Rolled back: the next transaction begins (not "within a transaction").
        assert store.remember("01HZZZZZZZZZZZZZZZZZZZZZZ2", time.time() + 60) is None
        store.put("k", "v")
        assert store.get("k") == "v"
    finally:
        store.close()
    again = EffectorStore(tmp_path / "control")
    try:  # the failed command's id was not committed; the next one was
        assert not again.seen("01HZZZZZZZZZZZZZZZZZZZZZZ1")
        assert again.seen("01HZZZZZZZZZZZZZZZZZZZZZZ2")
    finally:
        again.close()


def _open_files() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
    return found


def test_a_damaged_store_file_is_closed_before_it_is_moved_aside(tmp_path: Path) -> None:
    directory = tmp_path / "control"
    directory.mkdir()
    (directory / "effector.db").write_bytes(b"SQLite format 3\0" + b"\xff" * 4096)
    store = EffectorStore(directory)
    try:
        assert store.damaged is not None and "moved aside" in store.damaged
        aside = [p for p in directory.iterdir() if ".damaged-" in p.name]
        assert aside, list(directory.iterdir())
        assert not {str(p) for p in aside} & _open_files()  # no handle left on it
        # A new store in the old one's place, and what goes in it is there after a restart.
        store.remember("01HZZZZZZZZZZZZZZZZZZZZZZ4", time.time() + 60)
    finally:
        store.close()
    again = EffectorStore(directory)
    try:
        assert again.damaged is None and again.seen("01HZZZZZZZZZZZZZZZZZZZZZZ4")
    finally:
        again.close()


def test_a_store_path_that_cannot_be_opened_is_left_alone_and_memory_kept(tmp_path: Path) -> None:
    directory = tmp_path / "control"
    (directory / "effector.db").mkdir(parents=True)  # not a file: SQLite cannot open it
    store = EffectorStore(directory)
    try:
        assert store.damaged is not None
        assert "cannot be opened (unusable: unable to open database file)" in store.damaged
        assert (directory / "effector.db").is_dir()  # left in place
        store.remember("01HZZZZZZZZZZZZZZZZZZZZZZ3", time.time() + 60)
        assert store.seen("01HZZZZZZZZZZZZZZZZZZZZZZ3")  # this run's memory, in RAM
    finally:
        store.close()


def test_the_store_directory_is_the_nodes_and_its_groups_only(tmp_path: Path) -> None:
    old_umask = os.umask(0o022)  # the usual one, which would leave it world-readable
    try:
        store = EffectorStore(tmp_path / "state" / "control")
    finally:
        os.umask(old_umask)
    try:
        assert stat.S_IMODE((tmp_path / "state" / "control").stat().st_mode) == 0o750
    finally:
        store.close()
