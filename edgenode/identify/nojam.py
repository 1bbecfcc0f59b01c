"""No-jam geometry: bearings the jammer must not point at (sectors), places it must not reach
(circles: an airport, a helipad) and a ceiling above which it must not aim. Bearings are true,
clockwise from north, as the engage command's `bearing_deg`."""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgenode.config.models import AirspaceSection
from edgenode.identify.airspace import Site
from edgenode.identify.geo import angle_diff, distance_bearing, in_arc


@dataclass(frozen=True)
class _Circle:
    name: str
    distance_m: float
    bearing_deg: float
    radius_m: float


class NoJamGeometry:
    def __init__(self, section: AirspaceSection, site: Site):
        self.section = section
        self.half_beam = section.beam_width_deg / 2
        self.circles = []
        for c in section.circles:
            dist, bearing = distance_bearing(site.latitude_deg, site.longitude_deg,
                                             c.latitude_deg, c.longitude_deg)
            self.circles.append(_Circle(c.name, dist, bearing, c.radius_m))

    def refusal(self, bearing_deg: float | None, height_m: float | None = None) -> str | None:
        """Why an engage towards `bearing_deg` (at a target `height_m` above the site, when
        known) is not allowed, or None."""
        s = self.section
        if s.ceiling_m is not None and height_m is not None and height_m > s.ceiling_m:
            return (f"no_jam_sector: target {height_m:.0f} m above the site, above "
                    f"airspace.ceiling_m {s.ceiling_m:g}")
        for c in self.circles:
            if c.distance_m <= c.radius_m:
                return f"no_jam_sector: the site is inside no-jam circle '{c.name}'"
        if bearing_deg is None:
            if s.sectors or self.circles:
                return "no_jam_sector: the engage bearing is unknown (track not found)"
            return None
        for sec in s.sectors:
            if in_arc(bearing_deg, (sec.from_deg - self.half_beam) % 360,
                      (sec.to_deg + self.half_beam) % 360):
                return (f"no_jam_sector: bearing {bearing_deg:.1f} deg in sector '{sec.name}' "
                        f"({sec.from_deg:g}..{sec.to_deg:g} deg)")
        for c in self.circles:
            if c.distance_m - c.radius_m > s.jam_range_m:
                continue
            half = math.degrees(math.asin(min(1.0, c.radius_m / c.distance_m)))
            if angle_diff(bearing_deg, c.bearing_deg) <= half + self.half_beam:
                return (f"no_jam_sector: bearing {bearing_deg:.1f} deg towards circle "
                        f"'{c.name}' ({c.distance_m / 1000:.1f} km at {c.bearing_deg:.0f} deg, "
                        f"within airspace.jam_range_m {s.jam_range_m:g})")
        return None
