"""Radar plots: the points of one RadarFrame clustered into objects, clutter taken out.

A plot is one object seen in one frame: range, bearing, elevation, radial speed, snr and how
many points it was made of, each with its one-sigma error, in the node frame and as a true
bearing. Rejected before clustering:
- ground: static returns (|doppler| below `static_doppler_mps`) lower than `ground_floor_m`
  above the ground (the radar is `mount_height_m` above it);
- multipath ghosts: returns well below the ground, moving or not (a mirror image);
- clutter: static returns in a cell of the clutter map that has held static returns for most of
  the last `clutter_time_constant_s` (buildings, masts, trees, fences).
A static return that is not background stays: a hovering drone has near-zero doppler too. The
map is learnt only from static returns, so a moving object never becomes background, and a new
static object only after it has stood still for about a time constant.

Clustering follows what the radar can resolve. Points of one small object share its range and
radial speed, but each carries its own angle estimate, scattered by the angle noise (the
beamwidth over 1.6 sqrt(2 SNR)): at 40 m and 15 dB SNR that is metres across, more in
elevation where the array is two elements high. Two points are one object when their ranges
and radial speeds agree and their angles differ by no more than that noise explains (three
sigma of the difference) or the object's own extent, and never by more than the beamwidth:
returns further apart than that the radar resolves as two objects.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from edgenode.detect.geo import wrap_deg
from hal.radar import RadarFrame

log = logging.getLogger(__name__)

_DEG = 180.0 / math.pi
_NEIGHBOUR_DR = np.repeat([-1, 0, 1], 3)[None, :]
_NEIGHBOUR_DA = np.tile([-1, 0, 1], 3)[None, :]


def connected_labels(adjacent: np.ndarray) -> np.ndarray:
    """A label per node of a symmetric boolean adjacency matrix (self-loops set): the smallest
    node index of its connected component. Min-label propagation with pointer jumping: a few
    vectorised passes for the point counts of one radar frame, no sparse-matrix set-up."""
    n = len(adjacent)
    labels = np.arange(n)
    while True:
        new = np.where(adjacent, labels[None, :], n).min(axis=1)
        new = new[new]
        if np.array_equal(new, labels):
            return labels
        labels = new


@dataclass(slots=True)
class Plot:
    """One object in one radar frame. Angles in degrees, distances in metres."""

    t: float  # the frame's capture time, unix s
    range_m: float  # slant range from the radar
    range_error_m: float
    azimuth_node_deg: float  # clockwise from the mast heading
    azimuth_deg: float  # true bearing, clockwise from north, [0, 360)
    azimuth_error_deg: float
    elevation_deg: float | None  # None: a 2D radar (all z = 0) cannot tell
    elevation_error_deg: float  # where elevation is None: the half-width of the vertical beam
    radial_speed_mps: float  # negative = approaching
    snr_db: float  # the strongest point's
    point_count: int
    east_m: float  # ENU from the node's reference point
    north_m: float
    up_m: float
    height_m: float  # above the ground

    def to_dict(self) -> dict[str, object]:
        """The plot as JSON-ready values (replay output)."""
        return {
            "t": round(self.t, 3),
            "range_m": {"value": round(self.range_m, 3), "error": round(self.range_error_m, 3)},
            "azimuth_deg": {"value": round(self.azimuth_deg, 2),
                            "error": round(self.azimuth_error_deg, 2)},
            "elevation_deg": None if self.elevation_deg is None else {
                "value": round(self.elevation_deg, 2),
                "error": round(self.elevation_error_deg, 2)},
            "radial_speed_mps": round(self.radial_speed_mps, 3),
            "snr_db": round(self.snr_db, 1),
            "points": self.point_count,
            "height_m": round(self.height_m, 2),
        }


class ClutterMap:
    """Slowly learnt background of static returns on a range x azimuth grid (radar frame).

    Each cell holds an exponential average of "a static return was here this frame", kept
    lazily (value and time of the last hit) so a frame costs only its own points. The time
    constant starts at `warmup_s` and grows to `time_constant_s`, so fixed structures seen
    from start-up are learnt in seconds while later arrivals need about a time constant."""

    def __init__(self, *, range_bin_m: float, azimuth_bin_deg: float, max_range_m: float,
                 time_constant_s: float, warmup_s: float, threshold: float):
        self.range_bin_m = range_bin_m
        self.azimuth_bin_deg = azimuth_bin_deg
        self.n_range = math.ceil(max_range_m / range_bin_m)
        self.n_azimuth = math.ceil(180.0 / azimuth_bin_deg)
        # One padding cell on every side: neighbour lookups never leave the array.
        self.value = np.zeros((self.n_range + 2, self.n_azimuth + 2))
        self.t_hit = np.zeros((self.n_range + 2, self.n_azimuth + 2))
        self.time_constant_s = time_constant_s
        self.warmup_s = warmup_s
        self.threshold = threshold
        self._t_start: float | None = None
        self._t_last: float | None = None

    def cells(self, horizontal_range_m: np.ndarray,
              azimuth_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(range index, azimuth index) of points, padded; the last ring holds every range
        beyond the map, the outer sectors every azimuth beyond +-90 degrees."""
        ri = np.minimum((horizontal_range_m * (1.0 / self.range_bin_m)).astype(np.int64),
                        self.n_range - 1) + 1
        ai = np.clip(((azimuth_rad * (180.0 / math.pi) + 90.0) * (1.0 / self.azimuth_bin_deg))
                     .astype(np.int64), 0, self.n_azimuth - 1) + 1
        return ri, ai

    def _tau(self, t: float) -> float:
        elapsed = 0.0 if self._t_start is None else t - self._t_start
        return min(max(elapsed, self.warmup_s), self.time_constant_s)

    def background(self, t: float, ri: np.ndarray, ai: np.ndarray) -> np.ndarray:
        """Occupancy of each point's cell and its 8 neighbours (a return jitters across a
        cell edge), capped at 1."""
        r = ri[:, None] + _NEIGHBOUR_DR
        a = ai[:, None] + _NEIGHBOUR_DA
        age = np.maximum(t - self.t_hit[r, a], 0.0)
        total = (self.value[r, a] * np.exp(-age / self._tau(t))).sum(axis=1)
        return np.minimum(total, 1.0)

    def learn(self, t: float, ri: np.ndarray, ai: np.ndarray) -> None:
        """Record this frame's static returns (their cells' indices)."""
        if self._t_start is None:
            self._t_start = t
        dt = 0.1 if self._t_last is None else min(max(t - self._t_last, 0.0), 1.0)
        self._t_last = t
        if len(ri) == 0:
            return
        tau = self._tau(t)
        decayed = self.value[ri, ai] * np.exp(-np.maximum(t - self.t_hit[ri, ai], 0.0) / tau)
        self.value[ri, ai] = np.minimum(decayed + (1.0 - math.exp(-dt / tau)), 1.0)
        self.t_hit[ri, ai] = t


class RadarPlotter:
    """RadarFrame -> list[Plot] for one radar on the mast.

    The radar sits at the node's reference point, `mount_height_m` above the ground, its
    boresight `boresight_azimuth_deg` clockwise from the mast heading, level (no tilt)."""

    def __init__(self, *, boresight_azimuth_deg: float, mount_height_m: float,
                 mast_heading_deg: float,
                 cluster_distance_m: float = 1.5,
                 cluster_angle_deg: float = 2.0,
                 cluster_doppler_mps: float = 1.0,
                 min_points: int = 1,
                 static_doppler_mps: float = 0.3,
                 ground_floor_m: float = 0.5,
                 clutter_time_constant_s: float = 120.0,
                 clutter_warmup_s: float = 10.0,
                 clutter_threshold: float = 0.7,
                 clutter_range_bin_m: float = 0.5,
                 clutter_azimuth_bin_deg: float = 2.0,
                 max_range_m: float = 300.0,
                 range_resolution_m: float = 0.1,
                 # IWR6843ISK: 8 virtual elements across, two rows high.
                 azimuth_resolution_deg: float = 15.0,
                 elevation_resolution_deg: float = 57.0,
                 min_angle_error_deg: float = 1.0,
                 vertical_half_beam_deg: float = 20.0):
        self.boresight_azimuth_deg = boresight_azimuth_deg
        self.mount_height_m = mount_height_m
        self.mast_heading_deg = mast_heading_deg
        self.boresight_true_deg = wrap_deg(mast_heading_deg + boresight_azimuth_deg)
        theta = math.radians(self.boresight_true_deg)
        self._boresight_sin_cos = (math.sin(theta), math.cos(theta))
        self.cluster_distance_m = cluster_distance_m
        self.cluster_angle_tan = math.tan(math.radians(cluster_angle_deg))
        self.cluster_doppler_mps = cluster_doppler_mps
        self.min_points = min_points
        self.static_doppler_mps = static_doppler_mps
        self.ground_floor_m = ground_floor_m
        self.range_resolution_m = range_resolution_m
        self.azimuth_resolution_deg = azimuth_resolution_deg
        self.elevation_resolution_deg = elevation_resolution_deg
        self.min_angle_error_deg = min_angle_error_deg
        self.vertical_half_beam_deg = vertical_half_beam_deg
        self.clutter = ClutterMap(range_bin_m=clutter_range_bin_m,
                                  azimuth_bin_deg=clutter_azimuth_bin_deg,
                                  max_range_m=max_range_m,
                                  time_constant_s=clutter_time_constant_s,
                                  warmup_s=clutter_warmup_s, threshold=clutter_threshold)
        # Counters, for health and replay summaries.
        self.points_in = 0
        self.rejected_ground = 0
        self.rejected_ghost = 0
        self.rejected_clutter = 0

    def process(self, frame: RadarFrame) -> list[Plot]:
        """The plots of one frame; also teaches the clutter map this frame's static returns."""
        pts = np.asarray(frame.points, dtype=np.float64)
        t = frame.t_capture
        if pts.ndim != 2 or pts.shape[0] == 0 or pts.shape[1] < 5:
            self.clutter.learn(t, np.zeros(0, np.int64), np.zeros(0, np.int64))
            return []
        self.points_in += len(pts)
        finite = np.isfinite(pts[:, :5]).all(axis=1)
        if not finite.all():
            pts = pts[finite]
        x, y, z, doppler = pts[:, 0], pts[:, 1], pts[:, 2], pts[:, 3]
        horizontal = np.hypot(x, y)
        azimuth = np.arctan2(x, y)
        height = self.mount_height_m + z
        static = np.abs(doppler) < self.static_doppler_mps

        ground = static & (height < self.ground_floor_m)
        # A mirror image off the ground sits as far below it as the target is above: well
        # below the ground, beyond what each point's elevation noise (3 sigma) explains.
        el_error = np.tan(np.minimum(3.0 * self._angle_sigma(self.elevation_resolution_deg,
                                                             pts[:, 4]), 1.2))
        ghost = (z != 0.0) & (height < -np.maximum(1.0, horizontal * el_error))

        ri, ai = self.clutter.cells(horizontal, azimuth)
        candidates = static & ~ground & ~ghost
        clutter = np.zeros(len(pts), dtype=bool)
        if candidates.any():
            clutter[candidates] = (self.clutter.background(t, ri[candidates], ai[candidates])
                                   > self.clutter.threshold)
        self.clutter.learn(t, ri[static], ai[static])

        self.rejected_ground += int(np.count_nonzero(ground))
        self.rejected_ghost += int(np.count_nonzero(ghost))
        self.rejected_clutter += int(np.count_nonzero(clutter))
        keep = ~(ground | ghost | clutter)
        if not keep.any():
            return []
        return self._cluster(t, pts[keep], horizontal[keep])

    def _angle_sigma(self, resolution_deg: float, snr_db: np.ndarray) -> np.ndarray:
        """One-sigma angle noise (rad) of single points: resolution / (1.6 sqrt(2 SNR))."""
        snr = 10.0 ** (np.minimum(np.maximum(snr_db, 0.0), 60.0) * 0.1)
        return math.radians(resolution_deg) / (1.6 * np.sqrt(2.0 * snr))

    def _cluster(self, t: float, pts: np.ndarray, horizontal: np.ndarray) -> list[Plot]:
        n = len(pts)
        xyz = pts[:, :3]
        doppler = pts[:, 3]
        # DBSCAN-like over resolution cells (module docstring): range and radial speed agree,
        # angles within their noise or the object's extent, never beyond the beamwidth;
        # clusters = connected core points.
        if n == 1:
            labels = np.zeros(1, dtype=np.int64)
        else:
            rng = np.sqrt(horizontal * horizontal + xyz[:, 2] * xyz[:, 2])
            az = np.arctan2(xyz[:, 0], xyz[:, 1])
            el = np.arctan2(xyz[:, 2], horizontal)
            mean_r = np.maximum(0.5 * (rng[:, None] + rng[None, :]), 1.0)
            extent = self.cluster_distance_m / mean_r + self.cluster_angle_tan
            adjacent = ((np.abs(rng[:, None] - rng[None, :]) <= self.cluster_distance_m)
                        & (np.abs(doppler[:, None] - doppler[None, :])
                           <= self.cluster_doppler_mps))
            for angle, resolution in ((az, self.azimuth_resolution_deg),
                                      (el, self.elevation_resolution_deg)):
                sigma = self._angle_sigma(resolution, pts[:, 4])
                noise = 3.0 * np.sqrt(sigma[:, None] ** 2 + sigma[None, :] ** 2)
                gate = np.minimum(np.maximum(noise, extent), math.radians(resolution))
                adjacent &= np.abs(angle[:, None] - angle[None, :]) <= gate
            if self.min_points > 1:
                core = adjacent.sum(axis=1) >= self.min_points
                if not core.any():
                    return []
                core_adjacent = adjacent & core[:, None] & core[None, :]
                core_adjacent[np.diag_indices(n)] = True
                labels = connected_labels(core_adjacent)
                # Border points join a neighbouring core point's cluster; the rest is noise.
                border_of = np.where(adjacent[:, core].any(axis=1),
                                     np.flatnonzero(core)[np.argmax(adjacent[:, core], axis=1)],
                                     -1)
                labels = np.where(core, labels, np.where(border_of >= 0,
                                                         labels[np.maximum(border_of, 0)], -1))
                keep = labels >= 0
                pts, xyz, doppler, labels = pts[keep], xyz[keep], doppler[keep], labels[keep]
            else:
                labels = connected_labels(adjacent)
        return self._plots(t, pts, labels)

    def _plots(self, t: float, pts: np.ndarray, labels: np.ndarray) -> list[Plot]:
        order = np.argsort(labels, kind="stable")
        labels, pts = labels[order], pts[order]
        starts = np.flatnonzero(np.concatenate(([True], labels[1:] != labels[:-1])))
        counts = np.diff(np.concatenate((starts, [len(labels)])))
        x, y, z, snr = pts[:, 0], pts[:, 1], pts[:, 2], pts[:, 4]
        point_range = np.sqrt(x * x + y * y + z * z)
        point_az = np.arctan2(x, y)
        # Power-weighted moments of every cluster in one pass.
        weight = 10.0 ** (np.minimum(np.maximum(snr, -20.0), 60.0) * 0.1)
        columns = np.empty((len(x), 10))
        columns[:, 0] = 1.0
        columns[:, 1:5] = pts[:, :4]
        columns[:, 5] = point_range
        columns[:, 6] = point_range * point_range
        columns[:, 7] = point_az
        columns[:, 8] = point_az * point_az
        columns[:, 9] = z != 0.0
        columns *= weight[:, None]
        sums = np.add.reduceat(columns, starts, axis=0)
        m = sums[:, 1:9] / sums[:, :1]
        cx, cy, cz, cv = m[:, 0], m[:, 1], m[:, 2], m[:, 3]
        range_spread = np.sqrt(np.maximum(m[:, 5] - m[:, 4] ** 2, 0.0))
        az_spread = np.degrees(np.sqrt(np.maximum(m[:, 7] - m[:, 6] ** 2, 0.0)))
        has_z = sums[:, 9] > 0.0
        peak_snr = np.maximum.reduceat(snr, starts)

        # One row per output field, filled in place, handed to Python in one tolist().
        out = np.empty((14, len(counts)))
        horizontal = np.hypot(cx, cy)
        np.sqrt(horizontal * horizontal + cz * cz, out=out[0])  # slant range
        root_n = np.sqrt(counts)
        np.hypot(self.range_resolution_m / 2.0, range_spread / root_n, out=out[1])
        az_radar = np.arctan2(cx, cy) * _DEG
        np.remainder(self.boresight_azimuth_deg + az_radar + 180.0, 360.0, out=out[2])
        out[2] -= 180.0  # node azimuth in [-180, 180)
        np.remainder(self.mast_heading_deg + out[2], 360.0, out=out[3])  # true bearing
        # Monopulse-like accuracy: resolution / (1.6 sqrt(2 SNR)), floored, plus the spread.
        accuracy = 1.0 / (1.6 * np.sqrt(2.0 * 10.0 ** (np.minimum(np.maximum(peak_snr, 0.0),
                                                                  60.0) * 0.1)))
        az_acc = np.minimum(np.maximum(self.azimuth_resolution_deg * accuracy,
                                       self.min_angle_error_deg),
                            self.azimuth_resolution_deg / 2.0)
        np.hypot(az_acc, az_spread / root_n, out=out[4])
        out[5] = np.arctan2(cz, horizontal) * _DEG  # elevation
        np.minimum(np.maximum(self.elevation_resolution_deg * accuracy,
                              self.min_angle_error_deg),
                   self.elevation_resolution_deg / 2.0, out=out[6])
        out[7] = cv
        out[8] = peak_snr
        out[9] = counts
        sin_b, cos_b = self._boresight_sin_cos
        out[10] = cy * sin_b + cx * cos_b  # ENU, as geo.radar_to_enu
        out[11] = cy * cos_b - cx * sin_b
        out[12] = cz
        out[13] = self.mount_height_m + cz
        half_beam = self.vertical_half_beam_deg
        return [Plot(t, r, re, an, at, ae, el if hz else None, ee if hz else half_beam, v, s,
                     int(c), e, n, u, h)
                for (r, re, an, at, ae, el, ee, v, s, c, e, n, u, h), hz
                in zip(out.T.tolist(), has_z.tolist(), strict=True)]
