"""sd_notify: systemd-python where installed, a datagram to $NOTIFY_SOCKET otherwise."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

try:
    from systemd import daemon as _sd_daemon
except ImportError:  # not on a board: the fallback speaks the same protocol
    _sd_daemon = None


def notify(message: str) -> bool:
    """Send one notification (e.g. "READY=1"); False when not under a notifying manager."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if _sd_daemon is not None:
        return bool(_sd_daemon.notify(message))
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode(), address)
    except OSError as exc:
        log.warning("notify: cannot reach NOTIFY_SOCKET %s: %s", address, exc)
        return False
    return True


def watchdog_interval_s() -> float | None:
    """Half of WatchdogSec, as systemd recommends; None when no watchdog is asked for."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6
