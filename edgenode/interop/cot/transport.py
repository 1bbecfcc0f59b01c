"""Where CoT events go: a TAK server over TCP or TLS (streaming, with the node's client
certificate), or UDP to a multicast group or one host. Sockets only: no encoding here."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import ssl
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 3.0
SEND_TIMEOUT_S = 2.0


class CotTransportError(OSError):
    """The destination cannot take events now (refused, reset, timed out)."""


class Transport:
    """One destination. `send` raises CotTransportError when the event did not go out; the
    caller reconnects with backoff."""

    def __init__(self, url: str, *, ca_file: Path | None = None, cert_file: Path | None = None,
                 key_file: Path | None = None, multicast_ttl: int = 1,
                 multicast_interface: str | None = None) -> None:
        parts = urlsplit(url)
        self.scheme, self.host, self.port = parts.scheme, parts.hostname or "", parts.port or 0
        self.url = url
        self.streaming = self.scheme in ("tcp", "tls")
        self._ca, self._cert, self._key = ca_file, cert_file, key_file
        self._ttl, self._interface = multicast_ttl, multicast_interface
        self._sock: socket.socket | None = None

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> None:
        try:
            self._sock = self._tcp() if self.streaming else self._udp()
        except (OSError, ssl.SSLError) as exc:
            raise CotTransportError(f"cot {self.url}: {exc}") from exc
        log.info("cot: connected to %s", self.url)

    def _tcp(self) -> socket.socket:
        raw = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT_S)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.scheme == "tcp":
            sock = raw
        else:
            context = ssl.create_default_context(cafile=str(self._ca) if self._ca else None)
            context.load_cert_chain(str(self._cert), str(self._key))
            try:
                sock = context.wrap_socket(raw, server_hostname=self.host)
            except BaseException:
                raw.close()
                raise
        sock.settimeout(SEND_TIMEOUT_S)
        return sock

    def _udp(self) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if ipaddress.ip_address(socket.gethostbyname(self.host)).is_multicast:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, self._ttl)
            if self._interface:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                                socket.inet_aton(self._interface))
        sock.connect((self.host, self.port))
        return sock

    def send(self, data: bytes) -> None:
        if self._sock is None:
            raise CotTransportError(f"cot {self.url}: not connected")
        try:
            self._sock.sendall(data)
            if self.streaming:
                self._discard_incoming()
        except (OSError, ssl.SSLError) as exc:
            self.close()
            raise CotTransportError(f"cot {self.url}: {exc}") from exc

    def _discard_incoming(self) -> None:
        """A TAK server sends other clients' events to us too; we only talk, so read and drop
        them, or its buffers and ours fill. An orderly close by the server shows here."""
        sock = self._sock
        if sock is None:
            return
        sock.settimeout(0.0)  # a TLS record that is no data (a session ticket) must not block
        try:
            while True:
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    return
                if not data:
                    raise CotTransportError(f"cot {self.url}: the server closed the connection")
        finally:
            sock.settimeout(SEND_TIMEOUT_S)

    def close(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
