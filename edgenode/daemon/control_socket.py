"""The daemon's local control socket: one JSON request per line, one JSON answer per line.

It lives in the state directory, mode 0660, so only the daemon's user and group can use it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ControlSocket:
    def __init__(self, path: Path, handler: Handler):
        self.path = path
        self._handler = handler
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
        sock.listen(4)
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
            with conn:
                conn.settimeout(2)
                try:
                    line = conn.makefile("rb").readline(65536)
                    request = json.loads(line)
                    if not isinstance(request, dict):
                        raise ValueError("request must be a JSON object")
                    answer = self._handler(request)
                except Exception as exc:
                    answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                with contextlib.suppress(OSError):
                    conn.sendall(json.dumps(answer).encode() + b"\n")

    def stop(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
            self._thread.join(timeout=2)
        self.path.unlink(missing_ok=True)


def request(path: Path, message: dict[str, Any], timeout_s: float = 5) -> dict[str, Any]:
    """Send one request to a running daemon and return its answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        sock.connect(str(path))
        sock.sendall(json.dumps(message).encode() + b"\n")
        return json.loads(sock.makefile("rb").readline())
