"""What a receiver tells about one aircraft in one message: only the fields that message
carries are set, the rest are None (the airspace picture merges them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AircraftUpdate:
    t: float  # wall-clock seconds (UTC) when the message arrived
    icao: str  # 24-bit address, 6 upper-case hex digits
    lat: float | None = None
    lon: float | None = None
    alt_ft: float | None = None  # barometric (or GNSS when that is all the message has)
    callsign: str | None = None
    speed_kt: float | None = None  # ground speed
    track_deg: float | None = None  # true track over ground
    vrate_fpm: float | None = None
    squawk: str | None = None
    emergency: str | None = None  # None when the message says "no emergency"
    on_ground: bool | None = None
