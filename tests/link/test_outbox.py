"""The outbox on a real SQLite file: sessions, caps, priorities, in-flight protection."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import pytest

from edgenode.link.outbox import FRESH_MAX, ROW_OVERHEAD_BYTES, Outbox, Record
from edgenode.link.payloads import PRIORITY_AUDIT, PRIORITY_GAP, PRIORITY_NEW_END, PRIORITY_UPDATE

PAYLOAD = b"{" + b"x" * 936 + b"}"  # 1000 bytes stored with the row overhead
ROW = len(PAYLOAD) + ROW_OVERHEAD_BYTES


def _fill(box: Outbox, kinds: list[int], created: float = 1000.0) -> list:
    drops = []
    for seq, priority in enumerate(kinds):
        stream = "audit" if priority == PRIORITY_AUDIT else "events"
        drops += box.append("t", PAYLOAD, stream=stream, session=1, seq=seq,
                            priority=priority, created=created + seq)
    return drops


def test_session_grows_on_every_open_and_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "link" / "outbox.sqlite3"  # its directories made as needed
    sessions = []
    for _ in range(3):
        box = Outbox(path, max_bytes=10**6, max_age_s=3600)
        sessions.append(box.next_session())
        box.close()
    assert sessions == [1, 2, 3]


def test_an_unreadable_stored_session_counts_on_from_the_floor(tmp_path: Path) -> None:
    """A session value that is no number (a damaged row) is logged and counted from the
    floor it is given (the session file's copy), never a crash of the link's start."""
    path = tmp_path / "outbox.sqlite3"
    box = Outbox(path, max_bytes=10**6, max_age_s=3600)
    assert box.next_session() == 1
    box.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = 'rot' WHERE key = 'session'")
    db.close()
    box = Outbox(path, max_bytes=10**6, max_age_s=3600)
    try:
        assert box.next_session(floor=41) == 42
        assert box.next_session() == 43
    finally:
        box.close()


def test_database_runs_in_wal_with_synchronous_normal(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_bytes=10**6, max_age_s=3600)
    db = box._db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_rows_survive_reopen_in_order(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path, max_bytes=10**6, max_age_s=3600)
    _fill(box, [PRIORITY_NEW_END, PRIORITY_UPDATE, PRIORITY_AUDIT])
    box.close()
    box = Outbox(path, max_bytes=10**6, max_age_s=3600)
    assert box.backlog == 3
    assert [r.seq for r in box.claim(0, limit=10)] == [0, 1, 2]


def test_size_cap_drops_oldest_updates_first_then_new_end_then_audit(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_bytes=10 * ROW, max_age_s=3600)
    kinds = [PRIORITY_AUDIT, PRIORITY_NEW_END, PRIORITY_UPDATE, PRIORITY_UPDATE,
             PRIORITY_NEW_END, PRIORITY_UPDATE, PRIORITY_UPDATE, PRIORITY_UPDATE,
             PRIORITY_AUDIT, PRIORITY_NEW_END]
    assert _fill(box, kinds) == []  # exactly at the cap
    drops = _fill(box, [PRIORITY_UPDATE], created=2000.0)  # one over: free down to 90 %
    assert [(d.stream, d.reason, d.seqs) for d in drops] == [
        ("events", "outbox_size_cap", [2, 3])]
    assert box.backlog_bytes <= 9 * ROW
    # Keep pushing new/end only: the updates go, then new/end, audit last.
    many = _fill(box, [PRIORITY_NEW_END] * 20, created=3000.0)
    dropped = [(d.stream, seq) for d in many for seq in d.seqs]
    remaining = {(r.stream, r.priority) for r in box.claim(0, limit=100)}
    assert (PRIORITY_UPDATE in {p for _, p in remaining}) is False
    assert ("audit", PRIORITY_AUDIT) in remaining
    assert all(stream == "events" for stream, _ in dropped)


def test_audit_goes_only_when_nothing_else_is_left(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_bytes=4 * ROW, max_age_s=3600)
    _fill(box, [PRIORITY_AUDIT] * 4)
    drops = _fill(box, [PRIORITY_AUDIT])
    assert [(d.stream, d.seqs) for d in drops] == [("audit", [0, 1])]  # oldest, to 90 %


def test_gap_records_are_never_dropped(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_bytes=3 * ROW, max_age_s=1)
    for _ in range(5):
        box.append("t", PAYLOAD, stream="gap", session=1, seq=None, priority=PRIORITY_GAP,
                   created=0.0)
    assert box.expire(now=10_000.0) == []
    assert box.backlog == 5


def test_age_cap_expires_old_records_and_reports_them(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_bytes=10**6, max_age_s=100)
    _fill(box, [PRIORITY_UPDATE, PRIORITY_NEW_END, PRIORITY_AUDIT], created=1000.0)
    _fill(box, [PRIORITY_UPDATE], created=1190.0)
    drops = box.expire(now=1150.0)
    assert sorted((d.stream, tuple(d.seqs), d.reason) for d in drops) == [
        ("audit", (2,), "outbox_age_cap"), ("events", (0, 1), "outbox_age_cap")]
    assert box.backlog == 1


def test_rows_in_flight_are_never_dropped(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_bytes=5 * ROW, max_age_s=100)
    _fill(box, [PRIORITY_UPDATE] * 5, created=1000.0)
    claimed = box.claim(0, limit=2)
    drops = _fill(box, [PRIORITY_UPDATE], created=2000.0)
    dropped = [seq for d in drops for seq in d.seqs]
    assert dropped, "over the size cap, yet nothing was dropped"
    assert not {0, 1} & set(dropped), "a row in flight was dropped"
    assert {r.id for r in claimed} <= {r[0] for r in box._db.execute("SELECT id FROM outbox")}
    assert box.expire(now=5000.0)  # expires the rest...
    assert {r.id for r in claimed} <= {r[0] for r in box._db.execute("SELECT id FROM outbox")}
    box.delete([r.id for r in claimed])
    assert box.backlog == 0


def test_a_corrupt_outbox_is_moved_aside_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    path.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    box = Outbox(path, max_bytes=10**6, max_age_s=100)
    assert box.reset_corrupt == 1
    assert list(tmp_path.glob("o.sqlite3.corrupt-*"))
    assert box.next_session() == 1
    sqlite3.connect(path).execute("SELECT COUNT(*) FROM outbox").fetchone()


def test_records_appended_together_commit_together_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path, max_bytes=10**6, max_age_s=3600)
    batch = [Record("t", PAYLOAD, "events", 1, seq, PRIORITY_UPDATE, 1000.0 + seq)
             for seq in range(3)]
    assert box.append_many(batch) == []
    broken = [*batch, Record("t", None, "events", 1, 3, PRIORITY_UPDATE, 1003.0)]  # type: ignore[arg-type]
    with pytest.raises(sqlite3.IntegrityError):
        box.append_many(broken)
    assert box.backlog == 3
    box.close()
    box = Outbox(path, max_bytes=10**6, max_age_s=3600)
    assert [r.seq for r in box.claim(0, limit=10)] == [0, 1, 2]


def test_fresh_rows_are_claimed_once_and_released_rows_come_back_from_the_file(
        tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    box = Outbox(path, max_bytes=10**6, max_age_s=3600)
    _fill(box, [PRIORITY_UPDATE] * 5)
    first = box.claim(0, limit=2)
    rest = box.claim(first[-1].id, limit=10)
    assert [r.seq for r in first + rest] == [0, 1, 2, 3, 4]
    assert box.claim(0, limit=10) == []  # all in flight
    box.release(r.id for r in rest)
    again = box.claim(0, limit=10)
    assert [(r.seq, r.payload) for r in again] == [(2, PAYLOAD), (3, PAYLOAD), (4, PAYLOAD)]
    box.delete(r.id for r in first + again)
    assert (box.backlog, box.backlog_bytes) == (0, 0)
    assert box._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0


def test_the_session_keeps_growing_after_the_outbox_is_reset(tmp_path: Path) -> None:
    # Issue 22.13: a corrupt outbox is moved aside and a new one starts; the session must not
    # start at 1 again, or (session, seq) pairs repeat.
    from edgenode.link.session import SESSION_FILE, next_session

    def start() -> int:
        box = Outbox(tmp_path / "outbox.sqlite3", max_bytes=10**6, max_age_s=3600)
        try:
            return next_session(tmp_path, box)
        finally:
            box.close()

    first = [start(), start()]
    assert first == [1, 2]
    (tmp_path / "outbox.sqlite3").write_bytes(b"not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"outbox.sqlite3{suffix}").unlink(missing_ok=True)
    assert start() == 3  # from the session file
    # Both copies lost or damaged: from the clock, above anything counted from 1.
    (tmp_path / SESSION_FILE).write_text("garbage")
    (tmp_path / "outbox.sqlite3").write_bytes(b"not a database" * 100)
    later = start()
    assert later > time.time() - 60
    assert start() == later + 1


@pytest.mark.parametrize(("stored", "kept"), [(1, True), (2**53 - 1, True), (0, False),
                                              (2**53, False), (-5, False)])
def test_a_session_file_outside_1_to_2_53_is_not_believed(tmp_path: Path, stored: int,
                                                         kept: bool) -> None:
    # Sessions are JSON numbers for consumers: exact only below 2^53. A value outside that
    # (a damaged or hand-edited file) is not continued from; the clock is the floor instead.
    from edgenode.link.session import SESSION_FILE, next_session

    (tmp_path / SESSION_FILE).write_text(f"{stored}\n")
    box = Outbox(tmp_path / "outbox.sqlite3", max_bytes=10**6, max_age_s=3600)
    try:
        session = next_session(tmp_path, box)
    finally:
        box.close()
    if kept:
        assert session == stored + 1
    else:
        assert time.time() - 60 < session < time.time() + 60


def test_rows_deleted_unclaimed_leave_the_file_and_the_byte_count(tmp_path: Path) -> None:
    # After a restart the rows a broker acknowledged may not have been claimed by this
    # process: their sizes come from the file.
    path = tmp_path / "o.sqlite3"
    box = Outbox(path, max_bytes=10**6, max_age_s=3600)
    _fill(box, [PRIORITY_UPDATE] * 4)
    box.close()
    box = Outbox(path, max_bytes=10**6, max_age_s=3600)
    ids = [r.id for r in box.claim(0, limit=10)]
    box.release(ids)
    box.delete(ids[:3])
    assert (box.backlog, box.backlog_bytes) == (1, ROW)
    assert [r.id for r in box.claim(0, limit=10)] == ids[3:]


def test_memory_keeps_at_most_the_newest_rows_and_the_rest_come_from_the_file(
        tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_bytes=10**8, max_age_s=3600)
    box.keep_fresh(True)
    count = FRESH_MAX + 25
    for seq in range(count):
        box.append("t", b"{}", stream="events", session=1, seq=seq,
                   priority=PRIORITY_UPDATE, created=1000.0 + seq)
    assert len(box._fresh) == FRESH_MAX
    assert min(box._fresh) == box._fresh_from  # the newest, from where the file ends
    rows = []
    while batch := box.claim(rows[-1].id if rows else 0, limit=256):
        rows += batch
    assert [r.seq for r in rows] == list(range(count))


def test_while_the_broker_is_away_appended_rows_wait_in_the_file_only(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_bytes=10**8, max_age_s=3600)
    box.keep_fresh(False)
    for seq in range(300):
        box.append("t", b"{}", stream="events", session=1, seq=seq,
                   priority=PRIORITY_UPDATE, created=1000.0 + seq)
    assert len(box._fresh) == 0, "memory grew with the outage"
    assert [r.seq for r in box.claim(0, limit=500)] == list(range(300))
