"""The Remote ID stage: one reader thread per configured receiver (hal.remoteid), frames onto
a bounded queue the detection stage drains (edgenode.daemon.tracking owns the identity store).

A flood must not slow the radar path: the queue drops its oldest frame when full (counted),
and the detection stage takes at most MAX_DRAIN frames per loop. A receiver that cannot be
opened or fails is reported in health with its message and retried with backoff; it never
stops the daemon, and the watchdog needs no Remote ID progress (the readers beat anyway).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from edgenode.config.models import RemoteIdReceiverConfig, RemoteIdSection
from edgenode.health import Health, LoopThread
from edgenode.identify.identity_guard import RemoteIdGuard
from edgenode.identify.remoteid_allowlist import AllowEntry
from hal.remoteid import ReceiverError, RemoteIdFrame, RemoteIdReceiver, open_receiver

log = logging.getLogger(__name__)
READ_S = 0.5
RETRY_MIN_S, RETRY_MAX_S = 1.0, 30.0
MAX_DRAIN = 128  # frames the detection stage files per loop at most (a flood waits, then drops)


class FrameQueue:
    """Bounded, drop-oldest; many readers put, the detection stage drains."""

    def __init__(self, maxlen: int):
        self._frames: collections.deque[RemoteIdFrame] = collections.deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.dropped = 0

    def put_many(self, frames: list[RemoteIdFrame]) -> None:
        with self._lock:
            room = self._frames.maxlen or 0
            self.dropped += max(0, len(self._frames) + len(frames) - room)
            self._frames.extend(frames)

    def drain(self, limit: int = MAX_DRAIN) -> list[RemoteIdFrame]:
        with self._lock:
            n = min(limit, len(self._frames))
            return [self._frames.popleft() for _ in range(n)]

    def depth(self) -> int:
        return len(self._frames)


class _Reader:
    """One receiver's thread: open (with backoff), read, put."""

    def __init__(self, index: int, cfg: RemoteIdReceiverConfig, queue: FrameQueue,
                 health: Health):
        self.cfg, self.queue = cfg, queue
        self.label = f"remoteid.receivers[{index}] {cfg.backend} '{cfg.device}'"
        self.name = f"remoteid-{index}"
        self.health = health.register(self.name, deadline_s=5.0)
        self._stop = threading.Event()
        self._thread = LoopThread(self.health, self._step, self._stop)
        self._rx: RemoteIdReceiver | None = None
        self._retry_s = RETRY_MIN_S
        self.errors = 0

    def _open(self) -> RemoteIdReceiver:
        options: dict[str, Any] = {}
        if self.cfg.linktype is not None:
            options["linktype"] = self.cfg.linktype
        return open_receiver(self.cfg.backend, device=self.cfg.device, **options)

    def _step(self) -> None:
        if self._rx is None:
            try:
                self._rx = self._open()
            except (ReceiverError, OSError) as exc:
                self._failed(exc)
                return
            self._retry_s = RETRY_MIN_S
            log.info("%s: receiving", self.label)
        try:
            frames = self._rx.read(READ_S)
        except (ReceiverError, OSError) as exc:
            self._close()
            self._failed(exc)
            return
        if frames:
            self.queue.put_many(frames)
        self.health.set("ok")

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        self.health.set("failed", f"{self.label}: {exc}; retry in {self._retry_s:g} s")
        # Beat while waiting, so a long backoff is not mistaken for a hung thread.
        waited = 0.0
        while waited < self._retry_s and not self._stop.wait(0.5):
            self.health.beat()
            waited += 0.5
        self._retry_s = min(RETRY_MAX_S, self._retry_s * 2)

    def _close(self) -> None:
        rx, self._rx = self._rx, None
        if rx is not None:
            try:
                rx.close()
            except OSError:
                log.debug("%s: close failed", self.label, exc_info=True)

    def counters(self) -> dict[str, int]:
        rx = self._rx
        return {"frames": rx.frames if rx else 0, "records": rx.records if rx else 0,
                "errors": self.errors}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)
        self._close()


class RemoteIdStage:
    name = "remoteid"

    def __init__(self, section: RemoteIdSection, health: Health):
        self.queue = FrameQueue(section.queue_frames)
        self.readers = [_Reader(i, r, self.queue, health)
                        for i, r in enumerate(section.receivers)]

    def counters(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dropped": self.queue.dropped, "queued": self.queue.depth()}
        for reader in self.readers:
            for key, value in reader.counters().items():
                out[f"{reader.name}_{key}"] = value
        return out

    def start(self) -> None:
        for reader in self.readers:
            reader.start()

    def stop(self) -> None:
        for reader in self.readers:
            reader.stop()


class AllowListKeeper:
    """Allow-list changes made by admin-signed commands (allow-add, allow-remove), kept in
    STATE/remoteid-allow.json so a restart keeps them: on top of the config's entries, the IDs
    added (with expiry and approver) and the IDs removed. The effector audits each change."""

    def __init__(self, guard: RemoteIdGuard, path: Path):
        self.guard, self.path = guard, path
        self.added: dict[str, dict[str, Any]] = {}
        self.removed: set[str] = set()
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                self.added, self.removed = dict(data["added"]), set(data["removed"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                # The config's list still stands; the changes are lost, and said so.
                log.error("remoteid: %s unreadable (%s); allow-list changes made by command "
                          "are not applied", path, exc)
        now = time.time()
        for uas_id in self.removed:
            guard.allow_remove(uas_id)
        for uas_id, e in self.added.items():
            try:
                guard.allow_add(AllowEntry(uas_id, float(e["expires_at"]),
                                           str(e["approved_by"]), str(e.get("note", ""))), now)
            except (ValueError, KeyError, TypeError) as exc:
                log.warning("remoteid: allow-list entry %s from %s not applied: %s", uas_id,
                            path, exc)

    def change(self, action: str, params: dict[str, Any], by: str) -> str | None:
        """edgenode.control.effector.AllowListChange."""
        uas_id = str(params["uas_id"])
        if action == "allow-add":
            entry = AllowEntry(uas_id, float(params["expires_at"]), by,
                               str(params.get("note", "")))
            self.guard.allow_add(entry, time.time())  # ValueError: expiry in the past
            self.added[uas_id] = {"expires_at": entry.expires_unix_s, "approved_by": by,
                                  "note": entry.note}
            self.removed.discard(uas_id)
            note = f"{uas_id} allow-listed until {entry.to_dict()['expires']}"
        else:
            present = self.guard.allow_remove(uas_id)
            self.added.pop(uas_id, None)
            self.removed.add(uas_id)
            note = None if present else f"{uas_id} was not on the allow-list"
        self._save()
        return note

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"added": self.added, "removed": sorted(self.removed)},
                                  indent=1), encoding="utf-8")
        os.replace(tmp, self.path)
