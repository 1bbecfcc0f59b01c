"""A capture file as a receiver: the frames of a pcap/pcapng, in file order, for replay through
the daemon and for tests. `realtime=True` paces them by their capture time stamps; otherwise
they come as fast as they are read."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from hal.remoteid import ReceiverError, RemoteIdFrame
from hal.remoteid.capture import CaptureError, CaptureReader
from hal.remoteid.linktypes import Extractor, capture_frames

BATCH = 64


class CaptureReceiver:
    def __init__(self, device: str, *, realtime: bool = False) -> None:
        try:
            self._reader = CaptureReader.open(Path(device))
        except (OSError, CaptureError) as exc:
            raise ReceiverError(f"remote id capture '{device}': {exc}") from exc
        self.name = f"capture '{device}'"
        self.extractor = Extractor()
        self.realtime = realtime
        self.frames = 0
        self.eof = False
        self._it: Iterator[RemoteIdFrame] | None = capture_frames(self._reader, self.extractor)
        self._pending: RemoteIdFrame | None = None
        self._start: tuple[float, float] | None = None  # (first capture t, monotonic then)

    @property
    def records(self) -> int:
        return self.extractor.records

    @property
    def error(self) -> str | None:
        """Why the file ended early, if it did."""
        return self._reader.error

    def read(self, timeout_s: float) -> list[RemoteIdFrame]:
        out: list[RemoteIdFrame] = []
        deadline = time.monotonic() + max(timeout_s, 0.0)
        while len(out) < BATCH:
            frame = self._pending or self._next()
            self._pending = None
            if frame is None:
                break
            if self.realtime:
                if self._start is None:
                    self._start = (frame.t, time.monotonic())
                due = self._start[1] + (frame.t - self._start[0])
                if due > time.monotonic():
                    if out or due > deadline:
                        self._pending = frame
                        if not out:
                            time.sleep(max(0.0, deadline - time.monotonic()))
                        break
                    time.sleep(due - time.monotonic())
            out.append(frame)
        self.frames += len(out)
        return out

    def _next(self) -> RemoteIdFrame | None:
        if self._it is None:
            return None
        frame = next(self._it, None)
        if frame is None:
            self._it = None
            self.eof = True
        return frame

    def close(self) -> None:
        self._it = None
