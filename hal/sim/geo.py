"""Metres east and north of a site to latitude and longitude, for the twin: a spherical earth
(mean radius, as edgenode.central.geometry's local frame), which the twin's few kilometres need
no better than."""

from __future__ import annotations

import math

EARTH_RADIUS_M = 6_371_008.8


def offset_latlon(lat0: float, lon0: float, east_m: float, north_m: float) -> tuple[float, float]:
    """The latitude and longitude `east_m`, `north_m` from (lat0, lon0)."""
    return (lat0 + math.degrees(north_m / EARTH_RADIUS_M),
            lon0 + math.degrees(east_m / (EARTH_RADIUS_M * math.cos(math.radians(lat0)))))
