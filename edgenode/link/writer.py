"""Group commit for the outbox: callers hand records over and go on; one thread commits
everything that has queued up since its last commit in a single transaction. The same thread
deletes the rows the broker acknowledged, so the pump never waits on the file while a big
batch commits (it did, and its in-flight window ran dry).

Why: a commit per event costs a few hundred microseconds of the caller's time (the detection
loop's) and caps the outbox near a quarter of raw MQTT; a burst committed together costs about
one. The price is a window of about a millisecond between `submit` and the commit in which a
kill -9 loses the newest records: always a tail (records commit in submission order), never a
hole in a sequence. `flush` waits for the commit where a caller needs it (stop, tests).

Failures: only what may succeed later is retried (the disk: I/O error, disk full, a locked
file). A record SQLite refuses for what it is (a constraint, a value it cannot bind) is tried
alone, dropped, and reported as an `unpublishable` drop, so it can never hold up the records
behind it. While the disk fails, at most MAX_PENDING records wait; beyond that the newest are
dropped (`outbox_size_cap`) and counted, never silently. Drops are handed back with `lost`:
they merge into at most one gap record per stream, session and reason (edgenode/link/losses.py),
built and written with the next commit, so however long the disk fails, the loss accounting
beyond MAX_PENDING stays a few records.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence

from edgenode.link.losses import Loss, LossLedger
from edgenode.link.outbox import Dropped, Outbox, Record

log = logging.getLogger(__name__)

RETRY_S = 0.5  # after a failed commit (disk trouble); the batch is kept and tried again
MAX_PENDING = 5_000  # records (~1.5 kB) waiting for the disk: ~8 MB; more are dropped (counted)
# Errors the disk may get over; anything else means the record itself cannot be stored.
RETRYABLE = (OSError, sqlite3.OperationalError)


def _drop_of(records: Sequence[Record], reason: str) -> list[Dropped]:
    drops: dict[tuple[str, int], Dropped] = {}
    for r in records:
        if r.stream == "gap":
            continue
        drop = drops.setdefault((r.stream, r.session), Dropped(r.stream, r.session, reason))
        if r.seq is not None:
            drop.seqs.append(r.seq)
    return list(drops.values())


class OutboxWriter:
    def __init__(self, outbox: Outbox, *, on_committed: Callable[[], None],
                 on_drops: Callable[[list[Dropped]], None],
                 on_error: Callable[[str | None], None],
                 gap_record: Callable[[Loss], Record]):
        self._outbox = outbox
        self._on_committed, self._on_drops, self._on_error = on_committed, on_drops, on_error
        self._delete_failing = False  # (the writer's thread) said once per failing spell
        self._gap_record = gap_record
        self._cond = threading.Condition()
        self._pending: list[Record] = []
        self._losses = LossLedger()  # each one gap record at the next commit, counted pending
        self._acked: list[int] = []
        self._submitted = 0
        self._committed = 0
        self.overflowed = 0  # records dropped because MAX_PENDING were waiting
        self.unstorable = 0  # records SQLite refused for good
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="outbox-writer", daemon=True)
        self._thread.start()

    def submit(self, records: Sequence[Record]) -> None:
        """Queue records for the next commit (in this order, after everything queued before)."""
        overflow: list[Record] = []
        with self._cond:
            if self._closed:
                raise RuntimeError("outbox writer is closed")
            room = MAX_PENDING - (self._submitted - self._committed)  # incl. a batch
            kept, overflow = list(records[:max(room, 0)]), list(records[max(room, 0):])
            self._pending.extend(kept)
            self._submitted += len(kept)
            self.overflowed += len(overflow)
            self._cond.notify_all()
        if overflow:
            log.error("link: %d record(s) waiting for the outbox; %d more dropped",
                      MAX_PENDING, len(overflow))
            self._on_drops(_drop_of(overflow, "outbox_size_cap"))

    def lost(self, drops: list[Dropped]) -> None:
        """Queue the gap records for these drops: merged with drops of the same stream,
        session and reason not yet committed, written with the next commit."""
        with self._cond:
            if self._closed:
                raise RuntimeError("outbox writer is closed")
            self._submitted += self._losses.add(drops)
            self._cond.notify_all()

    def delete(self, ids: list[int]) -> None:
        """Queue acknowledged rows for deletion (they were committed before they were sent)."""
        with self._cond:
            if self._closed:
                self._outbox.delete(ids)  # stopping: nobody else writes now
                return
            self._acked.extend(ids)
            self._cond.notify_all()

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything submitted so far is committed; False on timeout."""
        with self._cond:
            target = self._submitted
            return self._cond.wait_for(lambda: self._committed >= target, timeout_s)

    @property
    def pending(self) -> int:
        with self._cond:
            return self._submitted - self._committed

    def close(self, timeout_s: float = 5.0) -> bool:
        """Commit what is queued, then stop the thread; False if it is still running (then
        it still uses the outbox: leave it open)."""
        self.flush(timeout_s)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _store(self, batch: list[Record]) -> list[Dropped]:
        """Commit the batch; if SQLite refuses it for a reason the disk cannot explain, store
        its records one by one and drop those it refuses (`unpublishable`)."""
        try:
            return self._outbox.append_many(batch)
        except RETRYABLE:
            raise
        except Exception as exc:
            log.error("link: outbox refused a batch of %d (%s: %s); storing one by one",
                      len(batch), type(exc).__name__, exc)
        drops: list[Dropped] = []
        refused: list[Record] = []
        while batch:
            record = batch[0]
            try:
                drops += self._outbox.append_many([record])
            except RETRYABLE:
                raise  # what is stored stays stored: only the rest (still in batch) is retried
            except Exception as exc:
                log.error("link: outbox refused a %s record (seq %s): %s: %s; dropped",
                          record.stream, record.seq, type(exc).__name__, exc)
                refused.append(record)
            del batch[0]
        self.unstorable += len(refused)
        return drops + _drop_of(refused, "unpublishable")

    def _delete_or_keep(self, ids: list[int]) -> bool:
        """Delete sent rows; False if that failed and they are kept for another try. Rows
        not deleted stay in the outbox and go out again: duplicates, not loss."""
        try:
            self._outbox.delete(ids)
        except Exception:
            with self._cond:
                closed = self._closed
                if not closed:
                    self._acked[:0] = ids
            if closed or not self._delete_failing:  # once, not every RETRY_S on a dead card
                log.exception("link: outbox delete of %d sent row(s) failed%s", len(ids),
                              " at close" if closed else "; trying again until it works")
            self._delete_failing = not closed
            return closed
        if self._delete_failing:
            log.warning("link: outbox deletes work again")
            self._delete_failing = False
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._acked or self._losses
                                    or self._closed)
                if not self._pending and not self._acked and not self._losses:
                    return
                batch, self._pending = self._pending, []
                acked, self._acked = self._acked, []
                losses = self._losses.take()
            batch += [self._gap_record(loss) for loss in losses]
            if acked and not self._delete_or_keep(acked) and not batch:
                with self._cond:  # the disk: try again after a pause, not in a spin
                    self._cond.wait_for(lambda: self._closed, RETRY_S)
                continue
            if not batch:
                continue
            total = len(batch)  # _store takes stored records out of the batch it retries
            while True:
                try:
                    drops = self._store(batch)
                except RETRYABLE as exc:  # disk full, I/O error: keep the batch, say so
                    log.exception("link: outbox commit of %d record(s) failed; retrying",
                                  len(batch))
                    self._on_error(f"outbox commit failed: {type(exc).__name__}: {exc}")
                    with self._cond:
                        if self._cond.wait_for(lambda: self._closed, RETRY_S):
                            log.error("link: %d record(s) not stored at close", len(batch))
                            return
                    continue
                self._on_error(None)
                break
            with self._cond:
                self._committed += total
                self._cond.notify_all()
            if drops:
                self._on_drops(drops)
            self._on_committed()
