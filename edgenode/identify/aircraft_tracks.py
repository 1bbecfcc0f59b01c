"""Manned aircraft as tracks: each aircraft in the airspace picture becomes a track of class
`manned_aircraft` (sensor `adsb`) in the events stream, beside the radar/acoustic tracks, so
the control room sees them on the same map. Such a track is never engageable (the guard
refuses an engage that names one). Events follow detect.events.TrackEvents: new / update (at
most `max_update_rate_hz`) / end when the aircraft leaves the picture."""

from __future__ import annotations

import math
from typing import Any

from edgenode.detect.events import Event, State, TrackEvents
from edgenode.identify.airspace import FT_M, KT_MPS, Contact
from edgenode.ulid import new_ulid

LABEL = "manned_aircraft"
# ADS-B positions are good to tens of metres (NACp 8+): the error reported with each value.
POSITION_ERROR_M = 50.0


class AircraftTracks:
    def __init__(self, *, max_update_rate_hz: float = 1.0):
        self._events = TrackEvents(max_update_rate_hz=max_update_rate_hz)
        self._ids: dict[str, str] = {}  # icao -> object id
        self._first: dict[str, float] = {}
        self._updates: dict[str, int] = {}
        self._last: dict[str, State] = {}

    def is_aircraft(self, object_id: str) -> str | None:
        """The ICAO address when `object_id` is a manned aircraft's track."""
        return next((icao for icao, oid in self._ids.items() if oid == object_id), None)

    def update(self, contacts: list[Contact], now: float) -> list[Event]:
        events: list[Event] = []
        seen = set()
        for c in contacts:
            icao = c.aircraft.icao
            seen.add(icao)
            if icao not in self._ids:
                self._ids[icao] = new_ulid(now)
                self._first[icao] = now
                self._updates[icao] = 0
            self._updates[icao] += 1
            oid = self._ids[icao]
            revision = int(c.aircraft.t_position * 10) if c.aircraft.t_position else 0
            event = self._events.observe(now, oid, "confirmed", LABEL, revision,
                                         lambda c=c: self._state(c, "confirmed"))
            if event is not None:
                self._last[icao] = event["after"]
                events.append(event)
        for icao in [i for i in self._ids if i not in seen]:
            oid = self._ids.pop(icao)
            last = self._last.pop(icao, None)
            if last is not None:
                ended = dict(last, status="ended", t=round(now, 3))
                event = self._events.observe(now, oid, "ended", LABEL, 0, lambda e=ended: e)
                if event is not None:
                    events.append(event)
            self._events.forget(oid)
            self._first.pop(icao, None)
            self._updates.pop(icao, None)
        return events

    def _state(self, c: Contact, status: str) -> State:
        a = c.aircraft
        alt_m = None if a.alt_ft is None else a.alt_ft * FT_M
        height = c.height_m if c.height_m is not None else 0.0
        slant = math.hypot(c.distance_m, height)
        velocity = speed = None
        if a.speed_kt is not None and a.track_deg is not None:
            v = a.speed_kt * KT_MPS
            up = (a.vrate_fpm or 0.0) * FT_M / 60
            velocity = {"east": round(v * math.sin(math.radians(a.track_deg)), 2),
                        "north": round(v * math.cos(math.radians(a.track_deg)), 2),
                        "up": round(up, 2)}
            speed = round(math.hypot(v, up), 2)
        state: dict[str, Any] = {
            "object_id": self._ids[a.icao],
            "status": status,
            "t": round(a.t_position or a.t, 3),
            "first_seen": round(self._first[a.icao], 3),
            "range_m": {"value": round(slant, 1), "error": POSITION_ERROR_M},
            "azimuth_deg": {"value": round(c.bearing_deg, 2),
                            "error": round(math.degrees(POSITION_ERROR_M / max(slant, 1.0)), 3)},
            "elevation_deg": None if c.height_m is None else {
                "value": round(math.degrees(math.atan2(c.height_m, max(c.distance_m, 1.0))), 2),
                "error": round(math.degrees(POSITION_ERROR_M / max(slant, 1.0)), 3)},
            "location": None if alt_m is None or a.lat is None or a.lon is None else {
                "datum": "WGS84", "latitude_deg": round(a.lat, 7),
                "longitude_deg": round(a.lon, 7), "altitude_m": round(alt_m, 1),
                "error_m": POSITION_ERROR_M},
            "velocity_enu_mps": velocity,
            "speed_mps": speed,
            "classification": [{"type": LABEL, "confidence": 1.0}],
            "evidence": [{"name": "adsb_icao", "value": a.icao, "weight": 1.0}],
            "sensors": ["adsb"],
            "acoustic": None,
            "updates": self._updates[a.icao],
            "adsb": {"icao": a.icao, "callsign": a.callsign, "squawk": a.squawk,
                     "emergency": a.emergency},
        }
        return state
