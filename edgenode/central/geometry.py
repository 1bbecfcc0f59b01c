"""Local flat-earth frame for one site: WGS84 <-> east/north metres around an origin.

A site spans a few kilometres at most, where an equirectangular projection errs by
centimetres; the fusion works in metres and converts back only for publishing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class LocalFrame:
    lat0_deg: float
    lon0_deg: float

    def to_en(self, lat_deg: float, lon_deg: float) -> tuple[float, float]:
        north = math.radians(lat_deg - self.lat0_deg) * EARTH_RADIUS_M
        east = (math.radians(lon_deg - self.lon0_deg) * EARTH_RADIUS_M
                * math.cos(math.radians(self.lat0_deg)))
        return east, north

    def to_latlon(self, east: float, north: float) -> tuple[float, float]:
        lat = self.lat0_deg + math.degrees(north / EARTH_RADIUS_M)
        lon = self.lon0_deg + math.degrees(
            east / (EARTH_RADIUS_M * math.cos(math.radians(self.lat0_deg))))
        return lat, lon


def bearing_deg(east: float, north: float) -> float:
    """Compass bearing (clockwise from north) of the vector (east, north), in [0, 360)."""
    return math.degrees(math.atan2(east, north)) % 360.0


def wrap180(deg: float) -> float:
    return (deg + 180.0) % 360.0 - 180.0
