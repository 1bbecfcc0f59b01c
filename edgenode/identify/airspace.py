"""The airspace picture: manned aircraft heard on ADS-B, merged per address, with their
distance, height above the site, bearing and closing speed. Aircraft not heard for `stale_s`
are dropped; positions older than `stale_s` no longer count; at most `max_aircraft` are kept
(the farthest / least recently heard go first)."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Protocol

from edgenode.identify.geo import distance_bearing

FT_M = 0.3048
KT_MPS = 1852 / 3600
_MERGED = ("lat", "lon", "alt_ft", "callsign", "speed_kt", "track_deg", "vrate_fpm",
           "squawk", "emergency", "on_ground")


class Update(Protocol):  # hal.adsb.AircraftUpdate has these fields
    t: float
    icao: str
    lat: float | None
    lon: float | None
    alt_ft: float | None
    callsign: str | None
    speed_kt: float | None
    track_deg: float | None


@dataclass(frozen=True)
class Site:
    latitude_deg: float
    longitude_deg: float
    altitude_m: float


@dataclass
class Aircraft:
    icao: str
    t: float  # last heard (wall clock)
    t_position: float | None = None
    lat: float | None = None
    lon: float | None = None
    alt_ft: float | None = None
    callsign: str | None = None
    speed_kt: float | None = None
    track_deg: float | None = None
    vrate_fpm: float | None = None
    squawk: str | None = None
    emergency: str | None = None
    on_ground: bool | None = None
    messages: int = 0

    def line(self) -> dict[str, Any]:
        """The technician's line (`edgenode adsb --json`): null where not yet known."""
        return {"t": round(self.t, 3), "icao": self.icao, "lat": self.lat, "lon": self.lon,
                "alt_ft": self.alt_ft, "callsign": self.callsign, "speed_kt": self.speed_kt,
                "track_deg": None if self.track_deg is None else round(self.track_deg, 1)}


@dataclass(frozen=True)
class Contact:
    """An aircraft as seen from the site."""

    aircraft: Aircraft
    distance_m: float  # horizontal
    bearing_deg: float  # true, from the site
    height_m: float | None  # above the site (pressure altitude: an estimate)
    closing_mps: float | None  # positive when it comes closer
    age_s: float  # of its position

    def as_dict(self) -> dict[str, Any]:
        a = self.aircraft
        return {"icao": a.icao, "callsign": a.callsign, "lat": a.lat, "lon": a.lon,
                "alt_ft": a.alt_ft, "distance_m": round(self.distance_m),
                "bearing_deg": round(self.bearing_deg, 1),
                "height_m": None if self.height_m is None else round(self.height_m),
                "closing_mps": None if self.closing_mps is None else round(self.closing_mps, 1),
                "speed_kt": a.speed_kt, "track_deg": a.track_deg, "squawk": a.squawk,
                "emergency": a.emergency, "age_s": round(self.age_s, 1)}


@dataclass
class AirspacePicture:
    site: Site
    radius_m: float = 30_000.0
    stale_s: float = 10.0
    max_aircraft: int = 500
    _aircraft: OrderedDict[str, Aircraft] = field(default_factory=OrderedDict)

    def apply(self, update: Update) -> Aircraft:
        """Merge one update (fields it does not carry keep their last value)."""
        ac = self._aircraft.get(update.icao)
        if ac is None:
            ac = self._aircraft[update.icao] = Aircraft(update.icao, update.t)
        self._aircraft.move_to_end(update.icao)
        ac.t = max(ac.t, update.t)
        ac.messages += 1
        for name in _MERGED:
            value = getattr(update, name, None)
            if value is not None:
                setattr(ac, name, value)
        if getattr(update, "lat", None) is not None:
            ac.t_position = update.t
        if len(self._aircraft) > self.max_aircraft:
            self._evict()
        return ac

    def _evict(self) -> None:
        # Keep the nearest: an airliner 200 km out matters less than anything inside 30 km.
        far = sorted(self._aircraft.values(), key=self._distance_key, reverse=True)
        for ac in far[: len(self._aircraft) - self.max_aircraft]:
            del self._aircraft[ac.icao]

    def _distance_key(self, ac: Aircraft) -> float:
        if ac.lat is None or ac.lon is None:
            return math.inf
        return distance_bearing(self.site.latitude_deg, self.site.longitude_deg,
                                ac.lat, ac.lon)[0]

    def expire(self, now: float) -> None:
        for icao in [i for i, a in self._aircraft.items() if now - a.t > self.stale_s]:
            del self._aircraft[icao]

    def __len__(self) -> int:
        return len(self._aircraft)

    def contact(self, ac: Aircraft, now: float) -> Contact | None:
        """Where `ac` is from the site, or None when its position is unknown or stale."""
        if ac.lat is None or ac.lon is None or ac.t_position is None:
            return None
        age = now - ac.t_position
        if age > self.stale_s:
            return None
        dist, bearing = distance_bearing(self.site.latitude_deg, self.site.longitude_deg,
                                         ac.lat, ac.lon)
        height = None if ac.alt_ft is None else ac.alt_ft * FT_M - self.site.altitude_m
        closing = None
        if ac.speed_kt is not None and ac.track_deg is not None:
            # The radial component of its ground velocity, towards the site.
            closing = -ac.speed_kt * KT_MPS * math.cos(math.radians(ac.track_deg - bearing))
        return Contact(ac, dist, bearing, height, closing, age)

    def contacts(self, now: float) -> list[Contact]:
        """Aircraft with a fresh position within `radius_m`, nearest first."""
        self.expire(now)
        out = [c for c in (self.contact(a, now) for a in self._aircraft.values())
               if c is not None and c.distance_m <= self.radius_m]
        return sorted(out, key=lambda c: c.distance_m)

    def aircraft(self) -> list[Aircraft]:
        return list(self._aircraft.values())
