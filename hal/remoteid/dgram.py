"""A receiver fed over a local datagram socket: each datagram one link-layer frame of the
configured link type. The twin's broadcasting drones send here (the "sim" path), and so can a
separate privileged capture helper that owns the radio while the daemon keeps no raw-socket
rights. The socket is a filesystem path: local only by construction."""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from pathlib import Path

from hal.remoteid import ReceiverError
from hal.remoteid.linktypes import SUPPORTED
from hal.remoteid.live import SocketReceiver


class DatagramReceiver(SocketReceiver):
    """Binds a UNIX datagram socket at `device` (a path; a stale socket file there is
    replaced, anything else is an error) and reads frames of `linktype` from it."""

    def __init__(self, device: str, *, linktype: int = 127) -> None:
        if linktype not in SUPPORTED:
            raise ReceiverError(f"remote id socket '{device}': link type {linktype} not read; "
                                f"choose one of {sorted(SUPPORTED)}")
        path = Path(device)
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise ReceiverError(f"remote id socket '{device}': the path exists and is not "
                                    "a socket; choose another path")
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sock.bind(str(path))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        except OSError as exc:
            sock.close()
            raise ReceiverError(f"remote id socket '{device}': cannot bind: {exc}") from exc
        self.path = path
        super().__init__(f"socket '{device}'", sock, linktype)

    def _before_close(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)
