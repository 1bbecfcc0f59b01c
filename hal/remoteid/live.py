"""What the live receivers share: a datagram socket read with a timeout, each datagram one
link-layer frame of a known link type, handed to the Extractor."""

from __future__ import annotations

import logging
import select
import socket
import time
from collections.abc import Callable

from hal.remoteid import ReceiverError, RemoteIdFrame
from hal.remoteid.linktypes import Extractor

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65_535
DRAIN = 256  # datagrams taken per read at most, so one read cannot run for ever in a flood


class SocketReceiver:
    def __init__(self, name: str, sock: socket.socket, linktype: int, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.linktype = linktype
        self.extractor = Extractor()
        self.frames = 0
        self.records = 0
        self._sock: socket.socket | None = sock
        self._clock = clock

    def read(self, timeout_s: float) -> list[RemoteIdFrame]:
        sock = self._sock
        if sock is None:
            raise ReceiverError(f"{self.name}: read after close")
        ready, _, _ = select.select([sock], [], [], max(timeout_s, 0.0))
        if not ready:
            return []
        out: list[RemoteIdFrame] = []
        for _ in range(DRAIN):
            try:
                data = sock.recv(MAX_DATAGRAM, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except OSError as exc:
                raise ReceiverError(f"{self.name}: receive failed: {exc}") from exc
            if not data:
                break
            out.extend(self.extractor.extract(self.linktype, data, self._clock(), self.records))
            self.records += 1
        self.frames += len(out)
        return out

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            self._before_close(sock)
            sock.close()

    def _before_close(self, sock: socket.socket) -> None:
        """A backend's last words to its device (stop scanning); must not raise."""

    def __enter__(self) -> SocketReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
