"""The twin's socket protocol: JSON lines over a Unix stream socket.

A client connects, sends `{"op": "hello", "kind": "gpio"|"audio"|"i2c"|"system"|"control",
"name": ...}`, then requests `{"op": ..., ...}`; every request gets exactly one answer line,
`{"ok": true, ...}` or `{"ok": false, "error": "..."}`. An audio client, after `audio.open`,
receives a stream instead: per block one header line `{"index", "t", "frames", "channels",
"bytes"}` followed by `bytes` of float32 little-endian PCM (frames x channels, interleaved).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from typing import Any


class SimError(OSError):
    """The twin refused a request or is not reachable; the message names the socket."""


class LineSocket:
    """Buffered line/bytes reading over a connected socket."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._buf = bytearray()

    def send(self, obj: dict[str, Any], payload: bytes = b"") -> None:
        self.sock.sendall(json.dumps(obj, separators=(",", ":")).encode() + b"\n" + payload)

    def recv_line(self) -> dict[str, Any] | None:
        """One JSON object, or None when the peer closed."""
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[:nl + 1]
                return json.loads(line)
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self._buf += chunk

    def recv_exact(self, n: int) -> bytes | None:
        while len(self._buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                return None
            self._buf += chunk
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out


class SimClient:
    """One connection to the twin. `request` is thread-safe (one request in flight)."""

    def __init__(self, path: str, kind: str, name: str = "", timeout_s: float = 5.0):
        self.path = path
        self.kind = kind
        self._lock = threading.Lock()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout_s)
        try:
            sock.connect(path)
        except OSError as exc:
            sock.close()
            raise SimError(f"twin socket '{path}': cannot connect ({exc}); is "
                           f"`edgenode simulate` running?") from exc
        self.conn = LineSocket(sock)
        self.request("hello", kind=kind, name=name)

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            try:
                self.conn.send({"op": op, **fields})
                answer = self.conn.recv_line()
            except (OSError, ValueError) as exc:
                raise SimError(f"twin socket '{self.path}': {op}: {exc}") from exc
        if answer is None:
            raise SimError(f"twin socket '{self.path}': {op}: the twin closed the connection")
        if not answer.get("ok"):
            raise SimError(f"twin socket '{self.path}': {op}: {answer.get('error')}")
        return answer

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.sock.close()


def control(path: str, op: str, **fields: Any) -> dict[str, Any]:
    """One control request to a running twin (faults, key switch, status, stop)."""
    client = SimClient(path, "control")
    try:
        return client.request(op, **fields)
    finally:
        client.close()
