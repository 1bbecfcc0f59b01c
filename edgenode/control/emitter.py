"""The effector's emitter: audit records and state reports leave the effector through a queue
to one thread that writes them to the audit log, syncs once per batch, then publishes them, so a
slow SD card or broker never holds the effector's lock or its deadline loop.

A record the audit log cannot take (disk full, I/O error) is counted, not retried: the next
record that can be written is preceded by a `gap` record naming how many were lost, of which
kinds, between which times and why (`disk_full` or `write_failed`), and the effector is told
(`on_trouble`) so health and command results can name the cause. The chain stays whole: a
failed record never took a seq."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from edgenode.control.audit import AuditLog
from edgenode.control.store import disk_full

log = logging.getLogger(__name__)

Publish = Callable[[dict[str, Any]], None]
Trouble = Callable[[str | None], None]


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
        # Records lost since the last gap record (emitter thread only).
        self._lost: Counter[str] = Counter()
        self._lost_span: list[float] = []
        self._lost_reason = ""
        self.lost_total = 0
        self._publish_audit, self._publish_state = publish_audit, publish_state
        self._q: queue.Queue[tuple[str, Any]] = queue.Queue()
        # While a command is being decided, audit records and state reports wait here and go
        # to the emitter after it (in order): waking the emitter mid-command would hand it the
        # GIL for its JSON, hashing and file writes while the relay waits to move.
        self._lock = threading.Lock()
        self._held: list[tuple[str, Any]] = []
        self._holds = 0
        self._thread = threading.Thread(target=self._loop, name="effector-emit", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, item: tuple[str, Any]) -> None:
        with self._lock:
            if self._holds:
                self._held.append(item)
            else:
                self._q.put(item)

    def hold(self) -> None:
        with self._lock:
            self._holds += 1

    def release(self) -> None:
        with self._lock:
            self._holds -= 1
            if not self._holds:
                for item in self._held:
                    self._q.put(item)
                self._held.clear()

    def flush(self, timeout_s: float) -> bool:
        """Wait until what is queued is out; False on timeout or a dead thread."""
        deadline = time.monotonic() + timeout_s
        while self._q.unfinished_tasks:
            if time.monotonic() > deadline or not self._thread.is_alive():
                return False
            time.sleep(0.002)
        return True

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Write and publish what is queued, then end the thread."""
        if self._thread.is_alive():
            self._q.put(("stop", None))
            self._thread.join(timeout=5)

    def _append(self, kind: str, data: dict[str, Any], t: float) -> list[dict[str, Any]]:
        """Append one record, after a `gap` record if some were lost; what was written is
        returned (to publish). A record that cannot be written is counted for the next gap."""
        out = []
        try:
            if self._lost:
                gap = {"lost": sum(self._lost.values()), "kinds": dict(self._lost),
                       "from_t": min(self._lost_span), "to_t": max(self._lost_span),
                       "reason": self._lost_reason}
                gap_record = self._audit.append("gap", gap, sync=False)
                out += [*self._audit.take_notes(), gap_record]
                log.warning("effector: audit log writable again; %d record(s) lost %s",
                            gap["lost"], gap["kinds"])
                self._lost.clear()
                self._lost_span.clear()
                self._on_trouble(None)
            record = self._audit.append(kind, data, t, sync=False)
            out += [*self._audit.take_notes(), record]
        except Exception as exc:
            reason = "disk_full" if disk_full(exc) else "write_failed"
            if not self._lost:
                log.error("effector: audit record not written (%s: %s); counting losses until "
                          "it can be written again", reason, exc)
            self._lost[kind] += 1
            self._lost_span.append(t)
            del self._lost_span[1:-1]  # only the first and the last matter
            self._lost_reason = reason
            self.lost_total += 1
            self._on_trouble(reason)
        return out

    def _loop(self) -> None:
        while True:
            # Everything queued so far (one command's records usually come together): written
            # to the audit log, synced to disk once, then published.
            batch = [self._q.get()]
            while not self._q.empty():
                batch.append(self._q.get_nowait())
            try:
                out: list[tuple[str, Any]] = []
                for what, value in batch:
                    if what == "stop":
                        break
                    if what == "audit":
                        out.extend(("audit", record) for record in self._append(*value))
                    else:
                        out.append((what, value))
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
                for _ in batch:
                    self._q.task_done()
            if any(what == "stop" for what, _ in batch):
                return
