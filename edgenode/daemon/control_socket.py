"""The daemon's local control socket: one JSON request per line, one JSON answer per line.

It lives in the state directory, mode 0660, so only the daemon's user and group can use it.
Each client is served in a thread of its own with a deadline for its whole request, so one
slow or silent client never holds up another (`edgenode ctl`, the self-test, systemd's
checks); at most MAX_CLIENTS are served at once and the next ones are told `busy`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any]], dict[str, Any]]
MAX_CLIENTS = 8
REQUEST_TIMEOUT_S = 2.0  # for the whole request line, however slowly it trickles in
ANSWER_TIMEOUT_S = 2.0
MAX_REQUEST_BYTES = 65536


class ControlSocket:
    def __init__(self, path: Path, handler: Handler, *,
                 request_timeout_s: float = REQUEST_TIMEOUT_S, max_clients: int = MAX_CLIENTS):
        self.path = path
        self._handler = handler
        self._request_timeout_s = request_timeout_s
        self._max_clients = max_clients
        self._slots = threading.BoundedSemaphore(max_clients)
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, name="control-socket", daemon=True)

    def start(self) -> None:
        self.path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o117)
        try:
            sock.bind(str(self.path))
        finally:
            os.umask(old)
        os.chmod(self.path, 0o660)
        sock.listen(16)
        sock.settimeout(0.5)
        self._sock = sock
        self._thread.start()

    def _serve(self) -> None:
        while self._sock is not None:
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self._slots.acquire(blocking=False):
                log.warning("control socket: more than %d clients at once; answering busy",
                            self._max_clients)
                _answer(conn, {"ok": False, "error": "busy: too many local clients"})
                conn.close()
                continue
            threading.Thread(target=self._client, args=(conn,), name="control-client",
                             daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        try:
            with conn:
                try:
                    request = json.loads(self._read_line(conn))
                    if not isinstance(request, dict):
                        raise ValueError("request must be a JSON object")
                except TimeoutError:
                    log.warning("control socket: a client sent no whole request within %.1f s;"
                                " closed", self._request_timeout_s)
                    _answer(conn, {"ok": False, "error": "timeout: no request line within "
                                   f"{self._request_timeout_s:g} s"})
                    return
                except (OSError, ValueError) as exc:
                    _answer(conn, {"ok": False, "error": f"{type(exc).__name__}: {exc}"})
                    return
                try:
                    answer = self._handler(request)
                except Exception as exc:  # the loop boundary: a bad request never kills us
                    log.exception("control socket: request %r failed", request.get("cmd"))
                    answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                _answer(conn, answer)
        finally:
            self._slots.release()

    def _read_line(self, conn: socket.socket) -> bytes:
        """One line, within the request deadline as a whole (a trickle cannot extend it)."""
        deadline = time.monotonic() + self._request_timeout_s
        data = b""
        while b"\n" not in data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            conn.settimeout(left)
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
            if len(data) > MAX_REQUEST_BYTES:
                raise ValueError(f"request longer than {MAX_REQUEST_BYTES} bytes")
        return data.split(b"\n", 1)[0]

    def stop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
            self._thread.join(timeout=2)
        self.path.unlink(missing_ok=True)


def _answer(conn: socket.socket, answer: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        conn.settimeout(ANSWER_TIMEOUT_S)
        conn.sendall(json.dumps(answer).encode() + b"\n")


def request(path: Path, message: dict[str, Any], timeout_s: float = 5) -> dict[str, Any]:
    """Send one request to a running daemon and return its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
        # A daemon that is busy answers at once and closes, maybe before this is sent.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(json.dumps(message).encode() + b"\n")
        line = sock.makefile("rb").readline()
        if not line:
            raise ConnectionError(f"{path}: the daemon closed the connection without answer")
        return json.loads(line)
