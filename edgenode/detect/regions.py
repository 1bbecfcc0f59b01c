"""Regions a tasking system draws (areas of interest, ignore areas), and whether a measurement
or a track lies in one. Pure: the daemon hands the regions in as data (a SAPIENT sensor task,
edgenode.interop.sapient.tasks), the tracker consults them before it starts a track, the
SAPIENT room before it reports one.

A region is a polygon of (longitude, latitude) vertices, or a cone from the node: true
azimuth, full horizontal extent, range (0: any range). Where a position cannot tell (a
bearing-only measurement against a polygon, or against a cone with a range limit) the answer
is None: unknown, neither inside nor outside, and unknown never hides anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

INTEREST, IGNORE = "interest", "ignore"


@dataclass(frozen=True)
class Region:
    kind: str  # INTEREST or IGNORE
    polygon: tuple[tuple[float, float], ...] = ()  # (longitude, latitude) vertices
    cone: tuple[float, float, float] | None = None  # azimuth deg true, extent deg, range m

    def contains_at(self, azimuth_deg: float | None, range_m: float | None,
                    lon_lat: tuple[float, float] | None) -> bool | None:
        """Whether a point seen at this true bearing / range / place is inside; None when
        what is known of it cannot tell."""
        if self.cone is not None:
            if azimuth_deg is None:
                return None
            azimuth, extent, reach = self.cone
            off = abs((azimuth_deg - azimuth + 180.0) % 360.0 - 180.0)
            if off > extent / 2:
                return False
            if reach <= 0:
                return True
            return None if range_m is None else range_m <= reach
        if lon_lat is None:
            return None
        return _inside(lon_lat[0], lon_lat[1], self.polygon)

    def contains(self, state: dict[str, Any]) -> bool | None:
        """`contains_at` for a track state (the tracker's `State`, docs/mqtt.md)."""
        return self.contains_at(*where(state))


Where = tuple[float | None, float | None, tuple[float, float] | None]


def where(state: dict[str, Any]) -> Where:
    """(true bearing, range, (longitude, latitude)) of a track state, None where unknown."""
    bearing = (state.get("azimuth_deg") or {}).get("value")
    rng = (state.get("range_m") or {}).get("value")
    location = state.get("location")
    return (None if bearing is None else float(bearing), None if rng is None else float(rng),
            (float(location["longitude_deg"]), float(location["latitude_deg"]))
            if location else None)


def passes(regions: Sequence[Region], azimuth_deg: float | None, range_m: float | None,
           lon_lat: tuple[float, float] | None) -> bool:
    """Whether a point passes the regions: not inside an ignore area, and inside an area of
    interest when there is one. Only a known verdict holds a point back."""
    interest = False
    inside_interest = False
    for region in regions:
        verdict = region.contains_at(azimuth_deg, range_m, lon_lat)
        if region.kind == IGNORE:
            if verdict:
                return False
        else:
            interest = True
            inside_interest |= verdict is not False
    return inside_interest or not interest


def state_passes(regions: Sequence[Region], state: dict[str, Any]) -> bool:
    """`passes` for a track state."""
    return passes(regions, *where(state))


def _inside(x: float, y: float, polygon: tuple[tuple[float, float], ...]) -> bool:
    """Ray casting (even-odd) in the plane of longitude and latitude."""
    inside = False
    n = len(polygon)
    for i in range(n):
        x1, y1 = polygon[i]
        x2, y2 = polygon[(i + 1) % n]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside
