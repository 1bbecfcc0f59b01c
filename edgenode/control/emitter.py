"""The effector's emitter: audit records and state reports leave the effector through a queue
to one thread that writes them to the audit log, syncs once per batch, then publishes them, so a
slow SD card or broker never holds the effector's lock or its deadline loop.

A record the audit log cannot take (disk full, I/O error) is counted, not retried: the next
record that can be written is preceded by a `gap` record naming how many were lost, of which
kinds, between which times and why (`disk_full` or `write_failed`), and the effector is told
(`on_trouble`) so health and command results can name the cause. The chain stays whole: a
failed record never took a seq.

Bounded, and never blocking the effector (it puts under its lock; the relay must never wait on
a disk): while the writer hangs (an fdatasync on a dying card), at most MAX_QUEUED items wait.
Beyond that an audit record is dropped and counted (one ERROR line), and written as a `gap`
record (`queue_full`) once the writer takes the queue again; a state report replaces the value
of the last one waiting (only the latest state matters), so at most one waits beyond the bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgenode.control.audit import AuditLog
from edgenode.control.store import disk_full

log = logging.getLogger(__name__)

Publish = Callable[[dict[str, Any]], None]
Trouble = Callable[[str | None], None]
# Items waiting for the writer thread (~1 kB each: a few MB). A burst of commands is a few
# dozen; more means the audit disk hangs.
MAX_QUEUED = 4096


@dataclass
class Lost:
    """Audit records not written for one reason since the last `gap` record."""

    kinds: Counter[str] = field(default_factory=Counter)
    from_t: float = float("inf")
    to_t: float = float("-inf")

    def add(self, kind: str, t: float, n: int = 1) -> None:
        self.kinds[kind] += n
        self.from_t, self.to_t = min(self.from_t, t), max(self.to_t, t)

    def merge(self, other: Lost) -> None:
        self.kinds.update(other.kinds)
        self.from_t, self.to_t = min(self.from_t, other.from_t), max(self.to_t, other.to_t)


def _say_dropping(first_drop: bool) -> None:
    if first_drop:  # outside the lock; once until the writer takes the queue again
        log.error("effector: %d audit records wait for the audit log (disk hanging?); "
                  "dropping more, counted, until it takes them", MAX_QUEUED)


class Emitter:
    """Items are ("audit", (kind, data, wall_time)) or ("state", state dict)."""

    def __init__(self, audit: AuditLog, publish_audit: Publish, publish_state: Publish,
                 on_trouble: Trouble | None = None,
                 on_head: Callable[[int, str], None] | None = None) -> None:
        self._audit = audit
        # Told the last record's seq and hash once they are synced (kept outside the log, so
        # a truncated log is noticed: edgenode.control.audit).
        self._on_head = on_head or (lambda _seq, _hash: None)
        self._on_trouble = on_trouble or (lambda _reason: None)
        # Records lost since the last gap record, by reason (emitter thread only).
        self._lost: dict[str, Lost] = {}
        self.lost_total = 0
        self._publish_audit, self._publish_state = publish_audit, publish_state
        # Items as [what, value] lists, so that a state report waiting can take a newer value.
        self._cond = threading.Condition()
        self._q: deque[list[Any]] = deque()
        self._last_state: list[Any] | None = None  # the last state report in _q
        self._dropped = Lost()  # audit records dropped at MAX_QUEUED, not yet taken
        self._unfinished = 0  # items queued or being written
        # While a command is being decided, audit records and state reports wait here and go
        # to the emitter after it (in order): waking the emitter mid-command would hand it the
        # GIL for its JSON, hashing and file writes while the relay waits to move.
        self._held: list[tuple[str, Any]] = []
        self._holds = 0
        self._thread = threading.Thread(target=self._loop, name="effector-emit", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, item: tuple[str, Any]) -> None:
        """Queue an item; never waits (see MAX_QUEUED for what happens when it is full)."""
        with self._cond:
            if self._holds:
                self._held.append(item)
                return
            first_drop = self._enqueue(item)
        _say_dropping(first_drop)

    def _enqueue(self, item: tuple[str, Any]) -> bool:
        """Under the lock; True for the first record dropped since the writer last took."""
        what, value = item
        if len(self._q) >= MAX_QUEUED and what != "stop":
            if what == "state":
                if self._last_state is not None:
                    self._last_state[1] = value  # latest wins
                    return False
            else:
                kind, _data, t = value
                first = not self._dropped.kinds
                self._dropped.add(kind, t)
                return first
        entry = [what, value]
        self._q.append(entry)
        if what == "state":
            self._last_state = entry
        self._unfinished += 1
        self._cond.notify()
        return False

    def hold(self) -> None:
        with self._cond:
            self._holds += 1

    def release(self) -> None:
        first_drop = False
        with self._cond:
            self._holds -= 1
            if not self._holds:
                for item in self._held:
                    first_drop = self._enqueue(item) or first_drop
                self._held.clear()
        _say_dropping(first_drop)

    def flush(self, timeout_s: float) -> bool:
        """Wait until what is queued is out; False on timeout or a dead thread."""
        deadline = time.monotonic() + timeout_s
        while self._unfinished:
            if time.monotonic() > deadline or not self._thread.is_alive():
                return False
            time.sleep(0.002)
        return True

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Write and publish what is queued, then end the thread."""
        if self._thread.is_alive():
            with self._cond:
                self._enqueue(("stop", None))
            self._thread.join(timeout=5)

    def _write_gaps(self, out: list[dict[str, Any]]) -> None:
        """Write a `gap` record for each reason records were lost, into `out` (to publish);
        raises if the log cannot take one (the rest wait for the next record)."""
        for reason, lost in list(self._lost.items()):
            gap = {"lost": sum(lost.kinds.values()), "kinds": dict(lost.kinds),
                   "from_t": lost.from_t, "to_t": lost.to_t, "reason": reason}
            gap_record = self._audit.append("gap", gap, sync=False)
            out += [*self._audit.take_notes(), gap_record]
            del self._lost[reason]
            log.warning("effector: audit log takes records again; %d record(s) lost (%s) %s",
                        gap["lost"], reason, gap["kinds"])
            self._on_trouble(None)

    def _append(self, kind: str, data: dict[str, Any], t: float) -> list[dict[str, Any]]:
        """Append one record, after `gap` records if some were lost; what was written is
        returned (to publish). A record that cannot be written is counted for the next gap."""
        out: list[dict[str, Any]] = []
        try:
            self._write_gaps(out)
            record = self._audit.append(kind, data, t, sync=False)
            out += [*self._audit.take_notes(), record]
        except Exception as exc:
            reason = "disk_full" if disk_full(exc) else "write_failed"
            if reason not in self._lost:
                log.error("effector: audit record not written (%s: %s); counting losses until "
                          "it can be written again", reason, exc)
            self._lost.setdefault(reason, Lost()).add(kind, t)
            self.lost_total += 1
            self._on_trouble(reason)
        return out

    def _take(self) -> tuple[list[list[Any]], Lost]:
        with self._cond:
            self._cond.wait_for(lambda: self._q)
            batch = list(self._q)
            self._q.clear()
            self._last_state = None
            dropped, self._dropped = self._dropped, Lost()
        return batch, dropped

    def _loop(self) -> None:
        while True:
            # Everything queued so far (one command's records usually come together): written
            # to the audit log, synced to disk once, then published.
            batch, dropped = self._take()
            try:
                out: list[tuple[str, Any]] = []
                for what, value in batch:
                    if what == "stop":
                        break
                    if what == "audit":
                        out.extend(("audit", record) for record in self._append(*value))
                    else:
                        out.append((what, value))
                if dropped.kinds:  # after what was queued before them: written now
                    self.lost_total += sum(dropped.kinds.values())
                    self._lost.setdefault("queue_full", Lost()).merge(dropped)
                    gaps: list[dict[str, Any]] = []
                    try:
                        self._write_gaps(gaps)
                    except Exception:
                        log.exception("effector: gap record not written; kept for the next")
                    out.extend(("audit", record) for record in gaps)
                try:
                    self._audit.sync()
                    written = [value for what, value in out if what == "audit"]
                    if written:
                        self._on_head(written[-1]["seq"], written[-1]["hash"])
                except Exception:
                    log.exception("effector: audit sync failed")
                for what, value in out:
                    try:
                        (self._publish_audit if what == "audit" else self._publish_state)(value)
                    except Exception:
                        log.exception("effector: audit/state publish failed")
            finally:
                with self._cond:
                    self._unfinished -= len(batch)
            if any(what == "stop" for what, _ in batch):
                return
