"""The outbox's group commit: order kept, flush waits for the disk, a failing disk keeps the
batch and says so until it recovers."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from edgenode.link.losses import Loss
from edgenode.link.outbox import Dropped, Outbox, Record
from edgenode.link.writer import OutboxWriter


def _record(seq: int) -> Record:
    return Record("t/events", b'{"seq":%d}' % seq, "events", 1, seq, 1, 0.0)


def _gap(loss: Loss) -> Record:
    """The gap record for a loss (the link's is the envelope's; the fields are the same)."""
    return Record("t/events", json.dumps(asdict(loss)).encode(), "gap", 1, None, 3, 0.0)


def test_records_commit_in_submission_order_and_flush_waits_for_them(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=10**8, max_age_s=3600)
    committed = threading.Event()
    writer = OutboxWriter(outbox, on_committed=committed.set, on_drops=lambda d: None,
                          on_error=lambda e: None, gap_record=_gap)
    for seq in range(500):
        writer.submit([_record(seq)])
    assert writer.flush(5)
    assert writer.pending == 0 and committed.is_set()
    writer.close()
    # A record handed over after the close (a stage still running while the daemon stops)
    # is refused, saying why, rather than left in a queue nobody writes.
    with pytest.raises(RuntimeError, match=r"^outbox writer is closed$"):
        writer.submit([_record(500)])
    outbox.close()
    # What another process finds in the file (a restart): every record, in order.
    db = sqlite3.connect(tmp_path / "o.sqlite3")
    assert [r[0] for r in db.execute("SELECT seq FROM outbox ORDER BY id")] == list(range(500))


class FlakyOutbox:
    """An outbox whose disk fails the first `failures` commits (I/O error, disk full)."""

    def __init__(self, failures: int):
        self.failures = failures
        self.stored: list[Record] = []

    def append_many(self, records: list[Record]) -> list[Dropped]:
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("disk I/O error")
        self.stored.extend(records)
        return []


def test_a_failed_commit_keeps_the_batch_reports_it_and_retries(tmp_path: Path) -> None:
    outbox = FlakyOutbox(failures=2)
    errors: list[str | None] = []
    writer = OutboxWriter(outbox, on_committed=lambda: None,  # type: ignore[arg-type]
                          on_drops=lambda d: None, on_error=errors.append, gap_record=_gap)
    writer.submit([_record(0), _record(1)])
    assert writer.flush(5)
    assert [r.seq for r in outbox.stored] == [0, 1]
    assert errors[:2] == ["outbox commit failed: OperationalError: disk I/O error"] * 2
    assert errors[-1] is None, "health clears once the disk works again"
    writer.close()


def test_a_record_sqlite_refuses_is_dropped_as_unpublishable_and_holds_nothing_up(
        tmp_path: Path) -> None:
    # Issue 21: any exception retried the batch for ever, so one record SQLite refuses
    # blocked every later event and audit record.
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=10**8, max_age_s=3600)
    drops: list[Dropped] = []
    writer = OutboxWriter(outbox, on_committed=lambda: None, on_drops=drops.extend,
                          on_error=lambda e: None, gap_record=_gap)
    bad = Record(None, b"{}", "events", 1, 2, 1, 0.0)  # type: ignore[arg-type]  # NOT NULL
    writer.submit([_record(0), _record(1), bad, _record(3)])
    writer.submit([_record(4)])
    assert writer.flush(5), "a refused record held the writer up"
    assert [(d.stream, d.session, d.reason, d.seqs) for d in drops] == [
        ("events", 1, "unpublishable", [2])]
    assert writer.unstorable == 1
    writer.close()
    outbox.close()
    db = sqlite3.connect(tmp_path / "o.sqlite3")
    assert [r[0] for r in db.execute("SELECT seq FROM outbox ORDER BY id")] == [0, 1, 3, 4]


def test_records_waiting_for_a_failing_disk_are_bounded_and_their_loss_counted(
        tmp_path: Path, monkeypatch) -> None:
    import edgenode.link.writer as writer_module
    monkeypatch.setattr(writer_module, "MAX_PENDING", 10)  # a bound, not behaviour
    outbox = FlakyOutbox(failures=10**9)
    drops: list[Dropped] = []

    def on_drops(dropped: list[Dropped]) -> None:  # as the link does: count, hand back
        drops.extend(dropped)
        writer.lost(dropped)

    failing = threading.Event()
    writer = OutboxWriter(outbox, on_committed=lambda: None,  # type: ignore[arg-type]
                          on_drops=on_drops, on_error=lambda e: failing.set(), gap_record=_gap)
    writer.submit([_record(0)])
    assert failing.wait(5)  # the writer retries its first batch: it takes nothing more
    for seq in range(1, 25):
        writer.submit([_record(seq)])
    assert writer.pending == 11  # the bound, and one gap record for all the drops beyond it
    for seq in range(25, 1000):
        writer.submit([_record(seq)])
    writer.lost([Dropped("audit", 1, "broker_refused", [7])])  # another stream and reason
    assert writer.pending == 12, "the loss accounting grew with the loss"
    assert writer.overflowed == sum(len(d.seqs) for d in drops) == 990
    outbox.failures = 0
    assert writer.flush(5)
    gaps = [json.loads(r.payload) for r in outbox.stored if r.stream == "gap"]
    assert gaps == [
        {"stream": "events", "session": 1, "reason": "outbox_size_cap",
         "ranges": [[10, 999]], "count": 990},
        {"stream": "audit", "session": 1, "reason": "broker_refused",
         "ranges": [[7, 7]], "count": 1}]
    writer.close()


class LockedOutbox(Outbox):
    """A real outbox whose deletes fail the first `failures` times (another process holds
    the file's lock)."""

    failures = 2

    def delete(self, ids: list[int]) -> None:  # type: ignore[override]
        if self.failures:
            self.failures -= 1
            raise sqlite3.OperationalError("database is locked")
        super().delete(ids)


def test_sent_rows_whose_delete_fails_are_deleted_on_a_later_try(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    outbox = LockedOutbox(tmp_path / "o.sqlite3", max_bytes=10**8, max_age_s=3600)
    writer = OutboxWriter(outbox, on_committed=lambda: None, on_drops=lambda d: None,
                          on_error=lambda e: None, gap_record=_gap)
    writer.submit([_record(seq) for seq in range(3)])
    assert writer.flush(5) and outbox.backlog == 3
    ids = [row.id for row in outbox.claim(0, limit=10)]
    writer.delete(ids)
    deadline = time.monotonic() + 5
    while outbox.backlog and time.monotonic() < deadline:
        time.sleep(0.01)
    assert outbox.backlog == 0 and outbox.failures == 0
    said = [r.getMessage() for r in caplog.records if "outbox delete" in r.getMessage()
            or "deletes work" in r.getMessage()]
    assert said == ["link: outbox delete of 3 sent row(s) failed; trying again until it works",
                    "link: outbox deletes work again"]  # once per failing spell, not per try
    writer.close()
    outbox.close()
