"""The twin's manned aircraft: ADS-B extended squitters (DF17) encoded from simple straight
flights and served in the Beast format on a loopback TCP port, as dump1090/readsb do on 30005.

`encode_*` build real messages (CRC-24 parity, CPR even/odd, 25 ft altitude code) that any
decoder reads. `BeastSky` flies the aircraft on its own clock (`speed` times the wall clock) and
broadcasts, per aircraft, a position twice a second (even and odd in turn), a velocity twice a
second and its identification every `ident_every_s` (5 s). `cut()` drops every client and
refuses new ones (a lost feed); `restore()` serves again.
"""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

from pyModeS.position import cprNL
from pyModeS.util import crc

from hal.adsb.beast import encode_frame
from hal.sim.geo import offset_latlon

log = logging.getLogger(__name__)

FT_M = 0.3048
KT_MPS = 1852 / 3600
# Emitter category (TC 4, set A): 7 rotorcraft, 1 light (< 7 t), 3 large (airliner).
_CATEGORY = {"rotorcraft": 7, "light": 1, "airliner": 3}
_CHARSET = "#ABCDEFGHIJKLMNOPQRSTUVWXYZ##### ###############0123456789######"


def _df17(icao: str, me: int, *, ca: int = 5) -> bytes:
    body = (17 << 83) | (ca << 80) | (int(icao, 16) << 56) | me
    msg = body << 24
    parity = crc(f"{msg:028X}")
    return (msg | parity).to_bytes(14, "big")


def encode_identification(icao: str, callsign: str, *, category: int = 3) -> bytes:
    """TC 4 identification; category 7 with TC 4 is a rotorcraft."""
    chars = 0
    for ch in callsign.upper().ljust(8)[:8]:
        idx = _CHARSET.find(ch)
        chars = (chars << 6) | (idx if idx > 0 else 32)
    return _df17(icao, (4 << 51) | (category << 48) | chars)


def _altitude_code(alt_ft: float) -> int:
    n = max(0, min(2047, round((alt_ft + 1000) / 25)))
    return ((n & 0x7F0) << 1) | 0x10 | (n & 0xF)


def cpr_encode(lat: float, lon: float, odd: int) -> tuple[int, int]:
    """Airborne CPR (17 bits) of a position, even (0) or odd (1)."""
    dlat = 360.0 / (60 - odd)
    yz = math.floor(2**17 * ((lat % dlat) / dlat) + 0.5)
    rlat = dlat * (yz / 2**17 + math.floor(lat / dlat))
    nl = cprNL(rlat)
    dlon = 360.0 / max(nl - odd, 1)
    xz = math.floor(2**17 * ((lon % dlon) / dlon) + 0.5)
    return yz & 0x1FFFF, xz & 0x1FFFF


def encode_position(icao: str, lat: float, lon: float, alt_ft: float, odd: int) -> bytes:
    """TC 11 airborne position (barometric altitude)."""
    yz, xz = cpr_encode(lat, lon, odd)
    me = (11 << 51) | (_altitude_code(alt_ft) << 36) | (odd << 34) | (yz << 17) | xz
    return _df17(icao, me)


def encode_velocity(icao: str, speed_kt: float, track_deg: float, vrate_fpm: float = 0) -> bytes:
    """TC 19 subtype 1 (ground speed over ground, subsonic)."""
    ve = speed_kt * math.sin(math.radians(track_deg))
    vn = speed_kt * math.cos(math.radians(track_deg))
    dew, vew = int(ve < 0), min(1023, round(abs(ve)) + 1)
    dns, vns = int(vn < 0), min(1023, round(abs(vn)) + 1)
    svr, vr = int(vrate_fpm < 0), min(511, round(abs(vrate_fpm) / 64) + 1)
    me = ((19 << 51) | (1 << 48) | (dew << 42) | (vew << 32) | (dns << 31) | (vns << 21)
          | (1 << 20) | (svr << 19) | (vr << 10))
    return _df17(icao, me)


@dataclass
class Flight:
    """A straight flight in the site's east/north frame: where it is at sky time 0 (metres from
    the site), its ground speed and track, its altitude above mean sea level."""

    icao: str
    callsign: str
    east_m: float
    north_m: float
    speed_kt: float
    track_deg: float
    alt_ft: float
    category: int = 3  # 7: rotorcraft

    def position(self, site_lat: float, site_lon: float, t: float) -> tuple[float, float]:
        v = self.speed_kt * KT_MPS
        e = self.east_m + v * t * math.sin(math.radians(self.track_deg))
        n = self.north_m + v * t * math.cos(math.radians(self.track_deg))
        return offset_latlon(site_lat, site_lon, e, n)


def helicopter_crossing(site_alt_m: float, *, start_m: float = 6000.0,
                        speed_kt: float = 120.0) -> Flight:
    """A helicopter crossing the site from the south at 300 m above it."""
    return Flight("3C6DD1", "CHX24", 0.0, -start_m, speed_kt, 0.0,
                  (site_alt_m + 300.0) / FT_M, category=7)


def airliner_far(site_alt_m: float) -> Flight:
    """An airliner 60 km east of the site at flight level 350, flying north."""
    return Flight("4CA7B2", "EIN12K", 60_000.0, 0.0, 450.0, 0.0, 35_000.0)


def flights_of(aircraft: list[Any], ground_alt_m: float) -> list[Flight]:
    """Flights from a scenario's `[[aircraft]]` (hal.sim.scenario.Aircraft)."""
    return [Flight(a.icao, a.callsign, a.position_m[0], a.position_m[1], a.speed_kt,
                   a.track_deg, (ground_alt_m + a.altitude_m) / FT_M,
                   category=_CATEGORY[a.kind]) for a in aircraft]


class BeastSky:
    """Serves the flights as a Beast stream on 127.0.0.1:`port` (0: any free port)."""

    def __init__(self, site_lat: float, site_lon: float, flights: list[Flight], *,
                 port: int = 0, speed: float = 1.0, rate_hz: float = 2.0,
                 period_s: float | None = None, mono0: float | None = None,
                 ident_every_s: float = 5.0):
        self.site_lat, self.site_lon = site_lat, site_lon
        self.flights = list(flights)
        self.speed, self.rate_hz, self.period_s = speed, rate_hz, period_s
        self.ident_every = max(1, round(ident_every_s * rate_hz))  # in ticks
        self._lock = threading.Lock()
        self._clients: list[socket.socket] = []
        self._server: socket.socket | None = None
        self._port = port
        self._stop = threading.Event()
        self._cut = threading.Event()
        # The sky's time 0 (the twin passes its own, so sky and scenario clocks agree).
        self._mono0 = time.monotonic() if mono0 is None else mono0
        self._threads: list[threading.Thread] = []
        self.sent = 0

    @property
    def port(self) -> int:
        return self._port

    def sky_time(self) -> float:
        """Seconds since the start (times `speed`); starts over every `period_s` when set,
        as a repeating scenario does."""
        t = (time.monotonic() - self._mono0) * self.speed
        return t % self.period_s if self.period_s else t

    def start(self) -> BeastSky:
        self._listen()
        for target, name in ((self._accept_loop, "sky-accept"), (self._send_loop, "sky-send")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _listen(self) -> None:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self._port))
        server.listen(8)
        server.settimeout(0.1)
        self._port = server.getsockname()[1]
        self._server = server

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            server = self._server
            if server is None:
                time.sleep(0.05)
                continue
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._clients.append(conn)

    def frames_at(self, t: float, tick: int) -> bytes:
        out = bytearray()
        ticks = int(t * 12e6)
        for f in self.flights:
            lat, lon = f.position(self.site_lat, self.site_lon, t)
            out += encode_frame(encode_position(f.icao, lat, lon, f.alt_ft, tick % 2),
                                mlat_ticks=ticks)
            out += encode_frame(encode_velocity(f.icao, f.speed_kt, f.track_deg),
                                mlat_ticks=ticks)
            if tick % self.ident_every == 0:
                out += encode_frame(encode_identification(f.icao, f.callsign,
                                                          category=f.category),
                                    mlat_ticks=ticks)
        return bytes(out)

    def _send_loop(self) -> None:
        tick = 0
        while not self._stop.wait(1.0 / self.rate_hz):
            data = self.frames_at(self.sky_time(), tick)
            tick += 1
            with self._lock:
                for conn in list(self._clients):
                    try:
                        conn.sendall(data)
                        self.sent += 1
                    except OSError:
                        self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        with contextlib.suppress(ValueError):
            self._clients.remove(conn)
        with contextlib.suppress(OSError):
            conn.close()

    def cut(self) -> None:
        """The feed is lost: every client dropped, the port closed."""
        with self._lock:
            for conn in list(self._clients):
                self._drop(conn)
            if self._server is not None:
                with contextlib.suppress(OSError):
                    self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept loop
                self._server.close()
                self._server = None
        log.info("sky: feed cut")

    def restore(self) -> None:
        deadline = time.monotonic() + 2.0
        while True:
            try:
                with self._lock:
                    if self._server is None:
                        self._listen()
                return
            except OSError:  # the old listener is still closing
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        self.cut()
        for thread in self._threads:
            thread.join(timeout=2)
