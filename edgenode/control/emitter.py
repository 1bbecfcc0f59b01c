"""The effector's emitter: audit records and state reports leave the effector through a queue
to one thread that writes them to the audit log, syncs once per batch, then publishes them, so a
slow SD card or broker never holds the effector's lock or its deadline loop."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from edgenode.control.audit import AuditLog

log = logging.getLogger(__name__)

Publish = Callable[[dict[str, Any]], None]


class Emitter:
    """Items are ("audit", (kind, data, wall_time)) or ("state", state dict)."""

    def __init__(self, audit: AuditLog, publish_audit: Publish, publish_state: Publish) -> None:
        self._audit = audit
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

    def stop(self) -> None:
        """Write and publish what is queued, then end the thread."""
        if self._thread.is_alive():
            self._q.put(("stop", None))
            self._thread.join(timeout=5)

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
                        try:
                            out.append(("audit", self._audit.append(*value, sync=False)))
                        except Exception:
                            log.exception("effector: audit append failed")
                    else:
                        out.append((what, value))
                try:
                    self._audit.sync()
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
