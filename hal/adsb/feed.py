"""An ADS-B feed: a receiver's Beast or SBS output over TCP (or the fake backend), decoded.

`AdsbFeed.poll()` connects when it has to (backing off after failures), reads what arrived
within its timeout and returns the aircraft updates in it. It never raises for the network: a
refused or dropped connection is logged once, counted and retried with backoff (doubling from
`reconnect_min_s` to `reconnect_max_s`, jittered), so the caller's loop keeps running and can
report the feed as lost.
"""

from __future__ import annotations

import logging
import random
import re
import socket
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from hal.adsb.beast import BeastFramer
from hal.adsb.modes import ModeSDecoder
from hal.adsb.plausible import PositionGate
from hal.adsb.sbs import SbsError, parse_line
from hal.adsb.types import AircraftUpdate

log = logging.getLogger(__name__)

Format = Literal["beast", "sbs"]
_URL = re.compile(r"^(beast|sbs)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$")
MAX_SBS_LINE = 1024


@dataclass(frozen=True)
class FeedUrl:
    format: Format
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.format}://{self.host}:{self.port}"


def parse_url(url: str) -> FeedUrl:
    """`beast://HOST:PORT` or `sbs://HOST:PORT`; ValueError naming the url otherwise."""
    m = _URL.match(url.strip())
    if not m or not 0 < int(m.group(3)) < 65536:
        raise ValueError(f"ADS-B source '{url}' is not beast://HOST:PORT or sbs://HOST:PORT")
    return FeedUrl(m.group(1), m.group(2).strip("[]"), int(m.group(3)))  # type: ignore[arg-type]


class AdsbBackend(Protocol):
    def connect(self) -> None: ...
    def read(self, timeout_s: float) -> bytes | None: ...  # None: nothing yet; b"": closed
    def close(self) -> None: ...


class TcpBackend:
    """A TCP client to the receiver's port."""

    def __init__(self, host: str, port: int, *, connect_timeout_s: float = 2.0):
        self.host, self.port, self.connect_timeout_s = host, port, connect_timeout_s
        self._sock: socket.socket | None = None

    def connect(self) -> None:
        self.close()
        self._sock = socket.create_connection((self.host, self.port),
                                              timeout=self.connect_timeout_s)

    def read(self, timeout_s: float) -> bytes | None:
        if self._sock is None:
            raise OSError("not connected")
        self._sock.settimeout(timeout_s)
        try:
            return self._sock.recv(65536)
        except TimeoutError:
            return None

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None


class FakeAdsbBackend:
    """Absent receivers in tests: serves the given chunks, then stays quiet (or hangs up when
    `hang_up_at_end`). `refuse=True` makes every connect fail, like a receiver that is off."""

    def __init__(self, chunks: Iterable[bytes] = (), *, hang_up_at_end: bool = False,
                 refuse: bool = False):
        self.chunks = list(chunks)
        self.hang_up_at_end, self.refuse = hang_up_at_end, refuse
        self.connects = 0
        self._pos = 0
        self._open = False

    def push(self, data: bytes) -> None:
        self.chunks.append(data)

    def connect(self) -> None:
        if self.refuse:
            raise ConnectionRefusedError("fake receiver refuses connections")
        self.connects += 1
        self._open = True

    def read(self, timeout_s: float) -> bytes | None:
        if not self._open:
            raise OSError("not connected")
        if self._pos < len(self.chunks):
            self._pos += 1
            return self.chunks[self._pos - 1]
        if self.hang_up_at_end:
            return b""
        time.sleep(min(timeout_s, 0.01))
        return None

    def close(self) -> None:
        self._open = False


class AdsbFeed:
    """One receiver output. Not thread-safe: one reader thread polls it."""

    def __init__(self, url: str, *, backend: AdsbBackend | None = None, name: str = "adsb",
                 reconnect_min_s: float = 0.5, reconnect_max_s: float = 10.0):
        self.url = parse_url(url)
        self.name = name
        self.backend = backend or TcpBackend(self.url.host, self.url.port)
        self.reconnect_min_s, self.reconnect_max_s = reconnect_min_s, reconnect_max_s
        self.counters: Counter[str] = Counter()
        self.connected = False
        self.last_data_mono: float | None = None
        self.connected_mono: float | None = None
        self.last_error = ""
        self._gate = PositionGate()
        self._decoder = ModeSDecoder(gate=self._gate)
        self._framer = BeastFramer()
        self._line = bytearray()
        self._backoff = reconnect_min_s
        self._next_try = 0.0

    def poll(self, timeout_s: float = 0.5) -> list[AircraftUpdate]:
        """Updates that arrived within `timeout_s` (connecting first when needed)."""
        if not self.connected and not self._connect():
            time.sleep(max(0.0, min(timeout_s, self._next_try - time.monotonic())))
            return []
        try:
            data = self.backend.read(timeout_s)
        except OSError as exc:
            self._lost(f"read failed: {exc}")
            return []
        if data is None:
            return []
        if not data:
            self._lost("the receiver closed the connection")
            return []
        self.last_data_mono = time.monotonic()
        self.counters["bytes"] += len(data)
        return self._decode(data, time.time())

    def _decode(self, data: bytes, t: float) -> list[AircraftUpdate]:
        out: list[AircraftUpdate] = []
        if self.url.format == "beast":
            for frame in self._framer.feed(data):
                if frame.kind == "1":
                    self.counters["mode_ac"] += 1
                    continue
                update = self._decoder.decode(frame.message, t)
                if update is not None:
                    out.append(update)
            return out
        self._line += data
        *lines, rest = self._line.split(b"\n")
        if len(rest) > MAX_SBS_LINE:
            self.counters["sbs_errors"] += 1
            rest = b""
        self._line = bytearray(rest)
        for raw in lines:
            if not raw.strip():
                continue
            try:
                update = parse_line(raw.decode("ascii"), t)
            except (SbsError, UnicodeDecodeError) as exc:
                self.counters["sbs_errors"] += 1
                log.debug("%s: %s", self.name, exc)
                continue
            if update is None:
                continue
            if update.lat is not None and not self._gate.check(update.icao, update.lat,
                                                               update.lon or 0.0, t):
                self.counters["position_held"] += 1
                update = replace(update, lat=None, lon=None)
            out.append(update)
        return out

    def stats(self) -> dict[str, int]:
        stats = dict(self.counters)
        stats.update(self._decoder.counters)
        stats["garbage_bytes"] = self._framer.garbage_bytes
        return stats

    def _connect(self) -> bool:
        now = time.monotonic()
        if now < self._next_try:
            return False
        try:
            self.backend.connect()
        except OSError as exc:
            self._failed(f"cannot connect to {self.url}: {exc}")
            return False
        self.connected = True
        self.connected_mono = time.monotonic()
        self.counters["connects"] += 1
        self._backoff = self.reconnect_min_s
        self._framer = BeastFramer()  # a new stream: no half frame from the old one
        self._line.clear()
        log.info("%s: connected to %s", self.name, self.url)
        self.last_error = ""
        return True

    def _lost(self, why: str) -> None:
        self.connected = False
        self.backend.close()
        self.counters["disconnects"] += 1
        self._failed(f"{self.url}: {why}")

    def _failed(self, why: str) -> None:
        if why != self.last_error:
            log.warning("%s: %s; retrying in %.1f s", self.name, why, self._backoff)
        self.last_error = why
        self.counters["connect_failures"] += 1
        self._next_try = time.monotonic() + self._backoff * random.uniform(0.8, 1.2)
        self._backoff = min(self._backoff * 2, self.reconnect_max_s)

    def silent_s(self) -> float | None:
        """Seconds since the last byte (or since connecting); None while not connected."""
        if not self.connected:
            return None
        last = max(self.last_data_mono or 0.0, self.connected_mono or 0.0)
        return time.monotonic() - last

    def close(self) -> None:
        self.connected = False
        self.backend.close()

