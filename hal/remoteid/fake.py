"""Fake Remote ID receiver, for tests of the consumers: frames are pushed in (`inject`, or raw
link-layer bytes with `inject_raw`) and come out of `read`. It records what it delivered and
when (`history`), like the fake GPIO line records its states."""

from __future__ import annotations

import threading
import time
from collections import deque

from hal.remoteid import ReceiverError, RemoteIdFrame
from hal.remoteid.linktypes import Extractor


class FakeReceiver:
    def __init__(self, device: str = "fake", *, max_queue: int = 10_000) -> None:
        self.name = f"fake '{device}'"
        self.frames = 0
        self.records = 0
        self.extractor = Extractor()
        self.history: list[tuple[float, RemoteIdFrame]] = []  # (monotonic time, frame)
        self.dropped = 0  # injected while the queue was full
        self._queue: deque[RemoteIdFrame] = deque()
        self._max = max_queue
        self._ready = threading.Condition()
        self._closed = False

    def inject(self, *frames: RemoteIdFrame) -> None:
        with self._ready:
            for frame in frames:
                if len(self._queue) >= self._max:
                    self.dropped += 1
                    continue
                self._queue.append(frame)
            self._ready.notify_all()

    def inject_raw(self, linktype: int, data: bytes, t: float | None = None) -> None:
        """A link-layer frame as a live socket would deliver it."""
        found = self.extractor.extract(linktype, data, time.time() if t is None else t,
                                       self.records)
        self.records += 1
        self.inject(*found)

    def read(self, timeout_s: float) -> list[RemoteIdFrame]:
        with self._ready:
            if self._closed:
                raise ReceiverError(f"{self.name}: read after close")
            if not self._queue:
                self._ready.wait(max(timeout_s, 0.0))
            out = list(self._queue)
            self._queue.clear()
        now = time.monotonic()
        self.history.extend((now, f) for f in out)
        self.frames += len(out)
        return out

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()
