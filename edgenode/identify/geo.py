"""Distances and bearings on the WGS84 sphere approximation (metres, degrees true)."""

from __future__ import annotations

import math

EARTH_RADIUS_M = 6_371_008.8


def distance_bearing(lat1: float, lon1: float, lat2: float, lon2: float) -> tuple[float, float]:
    """Great-circle distance (m) and initial true bearing (deg, 0..360) from 1 to 2."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    dist = 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return dist, math.degrees(math.atan2(y, x)) % 360.0


def angle_diff(a: float, b: float) -> float:
    """Smallest absolute difference of two angles in degrees (0..180)."""
    return abs((a - b + 180.0) % 360.0 - 180.0)


def in_arc(bearing: float, start: float, end: float) -> bool:
    """True when `bearing` lies on the clockwise arc from `start` to `end` (inclusive)."""
    span = (end - start) % 360.0
    return (bearing - start) % 360.0 <= span
