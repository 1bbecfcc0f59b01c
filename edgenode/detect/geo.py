"""Frames for detection: radar frame -> node frame -> local ENU -> WGS84, for short ranges.

- Radar frame (TI convention): x right of boresight, y along boresight, z up.
- Node frame: x along the mast heading, y to its left, z up; azimuth clockwise from x.
- Local ENU: east, north, up in metres from the node's reference point; a true bearing is
  clockwise from north, so bearing = atan2(east, north).

The ENU <-> WGS84 conversion uses the ellipsoid's local radii of curvature at the node (plus the
earth's curvature drop for the height): centimetre-exact over the few kilometres a node sees.
"""

from __future__ import annotations

import math

import numpy as np

WGS84_A_M = 6378137.0
WGS84_E2 = 6.69437999014e-3


def wrap_deg(angle_deg: float) -> float:
    """An angle in [0, 360)."""
    return angle_deg % 360.0


def wrap_pi(angle_rad: np.ndarray | float) -> np.ndarray | float:
    """An angle difference in [-pi, pi)."""
    return (np.asarray(angle_rad) + math.pi) % (2 * math.pi) - math.pi


def radar_to_enu(points_xyz: np.ndarray, boresight_true_deg: float) -> np.ndarray:
    """Radar-frame points (N, 3) to ENU (N, 3), the radar at the ENU origin.

    `boresight_true_deg` is the true bearing of the radar's boresight (mast heading plus the
    boresight's azimuth in the node frame)."""
    theta = math.radians(boresight_true_deg)
    sin_t, cos_t = math.sin(theta), math.cos(theta)
    x, y = points_xyz[:, 0], points_xyz[:, 1]
    out = np.empty((len(points_xyz), 3), dtype=np.float64)
    out[:, 0] = y * sin_t + x * cos_t  # boresight's bearing, radar x is 90 degrees clockwise
    out[:, 1] = y * cos_t - x * sin_t
    out[:, 2] = points_xyz[:, 2]
    return out


def enu_to_polar(east: float, north: float, up: float) -> tuple[float, float, float]:
    """(slant range m, true bearing deg in [0, 360), elevation deg)."""
    horizontal = math.hypot(east, north)
    return (math.sqrt(horizontal * horizontal + up * up),
            wrap_deg(math.degrees(math.atan2(east, north))),
            math.degrees(math.atan2(up, horizontal)))


def polar_to_enu(range_m: float, bearing_deg: float, elevation_deg: float) -> np.ndarray:
    az, el = math.radians(bearing_deg), math.radians(elevation_deg)
    horizontal = range_m * math.cos(el)
    return np.array([horizontal * math.sin(az), horizontal * math.cos(az),
                     range_m * math.sin(el)])


def _radii(latitude_deg: float) -> tuple[float, float]:
    """Meridian and prime-vertical radii of curvature (m) at a latitude."""
    sin_lat = math.sin(math.radians(latitude_deg))
    w2 = 1.0 - WGS84_E2 * sin_lat * sin_lat
    prime = WGS84_A_M / math.sqrt(w2)
    meridian = WGS84_A_M * (1.0 - WGS84_E2) / (w2 * math.sqrt(w2))
    return meridian, prime


class LocalFrame:
    """A local tangent plane at the node: ENU metres <-> WGS84 degrees and metres."""

    def __init__(self, latitude_deg: float, longitude_deg: float, altitude_m: float):
        self.latitude_deg = latitude_deg
        self.longitude_deg = longitude_deg
        self.altitude_m = altitude_m
        meridian, prime = _radii(latitude_deg)
        self._m_per_deg_lat = math.radians(1.0) * (meridian + altitude_m)
        cos_lat = max(math.cos(math.radians(latitude_deg)), 1e-9)  # the poles: no node there
        self._m_per_deg_lon = math.radians(1.0) * (prime + altitude_m) * cos_lat
        self._curvature_radius_m = math.sqrt(meridian * prime)

    def to_geodetic(self, east: float, north: float, up: float) -> tuple[float, float, float]:
        """(latitude deg, longitude deg, altitude m) of an ENU point."""
        drop = (east * east + north * north) / (2.0 * self._curvature_radius_m)
        lon = self.longitude_deg + east / self._m_per_deg_lon
        lon = (lon + 180.0) % 360.0 - 180.0
        return (self.latitude_deg + north / self._m_per_deg_lat, lon,
                self.altitude_m + up + drop)

    def to_enu(self, latitude_deg: float, longitude_deg: float,
               altitude_m: float) -> tuple[float, float, float]:
        """(east, north, up) m of a WGS84 point near the node."""
        dlon = (longitude_deg - self.longitude_deg + 180.0) % 360.0 - 180.0
        east = dlon * self._m_per_deg_lon
        north = (latitude_deg - self.latitude_deg) * self._m_per_deg_lat
        drop = (east * east + north * north) / (2.0 * self._curvature_radius_m)
        return east, north, altitude_m - self.altitude_m - drop
