"""The outbox's group commit: order kept, flush waits for the disk, a failing disk keeps the
batch and says so until it recovers."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from edgenode.link.outbox import Dropped, Outbox, Record
from edgenode.link.writer import OutboxWriter


def _record(seq: int) -> Record:
    return Record("t/events", b'{"seq":%d}' % seq, "events", 1, seq, 1, 0.0)


def test_records_commit_in_submission_order_and_flush_waits_for_them(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=10**8, max_age_s=3600)
    committed = threading.Event()
    writer = OutboxWriter(outbox, on_committed=committed.set, on_drops=lambda d: None,
                          on_error=lambda e: None)
    for seq in range(500):
        writer.submit([_record(seq)])
    assert writer.flush(5)
    assert writer.pending == 0 and committed.is_set()
    writer.close()
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
                          on_drops=lambda d: None, on_error=errors.append)
    writer.submit([_record(0), _record(1)])
    assert writer.flush(5)
    assert [r.seq for r in outbox.stored] == [0, 1]
    assert errors[:2] == ["outbox commit failed: OperationalError: disk I/O error"] * 2
    assert errors[-1] is None, "health clears once the disk works again"
    writer.close()
