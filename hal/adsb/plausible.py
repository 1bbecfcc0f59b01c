"""A position is trusted only when the aircraft could have flown there: a CRC-lucky phantom or
a mispaired CPR decode can put an aircraft 50 km away in one second. Such a jump is held as a
candidate, not trusted, until a later position agrees with it (the aircraft really is there)."""

from __future__ import annotations

import math
from collections import OrderedDict

EARTH_RADIUS_M = 6_371_008.8


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (math.sin((p2 - p1) / 2) ** 2
         + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


class PositionGate:
    """Per aircraft: the last trusted position and at most one candidate that jumped.

    `max_speed_mps` (default ~1000 kt) and `margin_m` bound how far an aircraft can move;
    `max_aircraft` bounds the memory (least recently seen forgotten first)."""

    def __init__(self, *, max_speed_mps: float = 515.0, margin_m: float = 2000.0,
                 max_aircraft: int = 2000):
        self.max_speed_mps, self.margin_m = max_speed_mps, margin_m
        self.max_aircraft = max_aircraft
        self._trusted: OrderedDict[str, tuple[float, float, float]] = OrderedDict()
        self._candidate: dict[str, tuple[float, float, float]] = {}
        self.held = 0  # positions not trusted (yet)

    def _reachable(self, a: tuple[float, float, float], lat: float, lon: float,
                   t: float) -> bool:
        allowed = self.max_speed_mps * abs(t - a[2]) + self.margin_m
        return distance_m(a[0], a[1], lat, lon) <= allowed

    def check(self, icao: str, lat: float, lon: float, t: float) -> bool:
        """True when this position can be trusted (and it becomes the reference)."""
        last = self._trusted.get(icao)
        if last is None or self._reachable(last, lat, lon, t):
            ok = True
        else:
            cand = self._candidate.get(icao)
            ok = cand is not None and self._reachable(cand, lat, lon, t)
            if not ok:
                self._candidate[icao] = (lat, lon, t)
                self.held += 1
                return False
        self._candidate.pop(icao, None)
        self._trusted[icao] = (lat, lon, t)
        self._trusted.move_to_end(icao)
        while len(self._trusted) > self.max_aircraft:
            old, _ = self._trusted.popitem(last=False)
            self._candidate.pop(old, None)
        return True

    def forget(self, icao: str) -> None:
        self._trusted.pop(icao, None)
        self._candidate.pop(icao, None)
