"""A TCP relay between a client and a real broker that reads the MQTT packets passing through
it: how many QoS 1 publishes the client has on the wire without a PUBACK, now and at most.
It only counts; every byte is passed on unchanged."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

from tests.conftest import free_port

PUBLISH, PUBACK = 3, 4


def _packets(buffer: bytearray) -> list[int]:
    """Take the complete MQTT packets off the front of `buffer`; their first bytes."""
    firsts = []
    while len(buffer) >= 2:
        length, shift, i = 0, 0, 1
        while True:
            if i >= len(buffer):
                return firsts  # the remaining length is not all here yet
            byte = buffer[i]
            length |= (byte & 0x7F) << shift
            shift += 7
            i += 1
            if not byte & 0x80:
                break
        if len(buffer) < i + length:
            return firsts
        firsts.append(buffer[0])
        del buffer[:i + length]
    return firsts


class WireCount:
    """Listens on `port`; each connection is relayed to 127.0.0.1:`upstream_port`."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port = free_port()
        self._lock = threading.Lock()
        self.unacked = 0  # client publishes (QoS > 0) sent and not acknowledged
        self.max_unacked = 0
        self.publishes = 0
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = [self._server]
        threading.Thread(target=self._accept, name="wire-accept", daemon=True).start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            with self._lock:
                self.unacked = 0  # a new connection: paho sends what it had again
            for src, dst, seen in ((client, upstream, self._from_client),
                                   (upstream, client, self._from_broker)):
                threading.Thread(target=self._copy, args=(src, dst, seen), name="wire-copy",
                                 daemon=True).start()

    def _copy(self, src: socket.socket, dst: socket.socket,
              seen: Callable[[int], None]) -> None:
        buffer = bytearray()
        try:
            while data := src.recv(65536):
                buffer += data
                for first in _packets(buffer):
                    seen(first)
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _from_client(self, first: int) -> None:
        if first >> 4 == PUBLISH and (first >> 1) & 3:
            with self._lock:
                self.publishes += 1
                self.unacked += 1
                self.max_unacked = max(self.max_unacked, self.unacked)

    def _from_broker(self, first: int) -> None:
        if first >> 4 == PUBACK:
            with self._lock:
                self.unacked -= 1

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()
