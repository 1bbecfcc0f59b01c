"""Radar plots: the points of one RadarFrame clustered into objects, clutter taken out.

A plot is one object seen in one frame: range, bearing, elevation, radial speed, snr and how
many points it was made of, each with its one-sigma error, in the node frame and as a true
bearing. Rejected before clustering:
- ground: static returns (|doppler| below `static_doppler_mps`) lower than `ground_floor_m`
  above the ground (the radar is `mount_height_m` above it);
- multipath ghosts: returns well below the ground, moving or not (a mirror image);
- clutter: static returns in a cell of the clutter map that has held static returns for most of
  the last `clutter_time_constant_s` (buildings, masts, trees, fences).
- implausible points: a non-finite value, a coordinate further than `plausible_range_m` or a
  radial speed above `plausible_speed_mps` (a corrupt frame: one such point would poison the
  tracker's arithmetic), counted in `rejected_implausible`.
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

import itertools
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


def edge_labels(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """connected_labels() of an n-node graph given by its directed edges i -> j (every edge
    in both directions): the same labels, in passes over the edges rather than over an n x n
    matrix."""
    labels = np.arange(n)
    if len(i) == 0:
        return labels
    while True:
        new = labels.copy()
        np.minimum.at(new, i, labels.take(j))
        new = new.take(new)
        if (new == labels).all():
            return labels
        labels = new


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
        # Flat views of the two grids: one index per cell is cheaper than (row, column).
        self._width = self.n_azimuth + 2
        self._value_flat = self.value.reshape(-1)
        self._t_hit_flat = self.t_hit.reshape(-1)
        self._neighbours = (_NEIGHBOUR_DR * self._width + _NEIGHBOUR_DA).astype(np.int64)

    def cells(self, horizontal_range_m: np.ndarray,
              azimuth_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(range index, azimuth index) of points, padded; the last ring holds every range
        beyond the map, the outer sectors every azimuth beyond +-90 degrees."""
        ri = np.minimum((horizontal_range_m * (1.0 / self.range_bin_m)).astype(np.int64),
                        self.n_range - 1) + 1
        # np.minimum/np.maximum: np.clip's Python wrapper costs more than the work here.
        ai = np.minimum(np.maximum(((azimuth_rad * (180.0 / math.pi) + 90.0)
                                    * (1.0 / self.azimuth_bin_deg)).astype(np.int64), 0),
                        self.n_azimuth - 1) + 1
        return ri, ai

    def _tau(self, t: float) -> float:
        elapsed = 0.0 if self._t_start is None else t - self._t_start
        return min(max(elapsed, self.warmup_s), self.time_constant_s)

    def flat_cells(self, horizontal_range_m: np.ndarray, azimuth_rad: np.ndarray) -> np.ndarray:
        """cells() as indices into the flattened map."""
        ri, ai = self.cells(horizontal_range_m, azimuth_rad)
        return ri * self._width + ai

    def background(self, t: float, ri: np.ndarray, ai: np.ndarray) -> np.ndarray:
        """Occupancy of each point's cell and its 8 neighbours (a return jitters across a
        cell edge), capped at 1."""
        return self.flat_background(t, ri * self._width + ai)

    def flat_background(self, t: float, cells: np.ndarray) -> np.ndarray:
        """background() of cells given as flat indices (flat_cells())."""
        around = cells[:, None] + self._neighbours
        age = np.maximum(t - self._t_hit_flat[around], 0.0)
        total = (self._value_flat[around] * np.exp(-age / self._tau(t))).sum(axis=1)
        return np.minimum(total, 1.0)

    def learn(self, t: float, ri: np.ndarray, ai: np.ndarray) -> None:
        """Record this frame's static returns (their cells' indices)."""
        self.flat_learn(t, ri * self._width + ai)

    def flat_learn(self, t: float, cells: np.ndarray) -> None:
        """learn() of cells given as flat indices (flat_cells())."""
        if self._t_start is None:
            self._t_start = t
        dt = 0.1 if self._t_last is None else min(max(t - self._t_last, 0.0), 1.0)
        self._t_last = t
        if len(cells) == 0:
            return
        tau = self._tau(t)
        value, t_hit = self._value_flat, self._t_hit_flat
        decayed = value[cells] * np.exp(-np.maximum(t - t_hit[cells], 0.0) / tau)
        value[cells] = np.minimum(decayed + (1.0 - math.exp(-dt / tau)), 1.0)
        t_hit[cells] = t


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
                 vertical_half_beam_deg: float = 20.0,
                 plausible_range_m: float | None = None,
                 plausible_speed_mps: float = 300.0):
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
        # Far beyond what the radar sees, well inside what float arithmetic survives.
        self.plausible_range_m = (10.0 * max_range_m if plausible_range_m is None
                                  else plausible_range_m)
        self.plausible_speed_mps = plausible_speed_mps
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
        self.rejected_implausible = 0

    def process(self, frame: RadarFrame) -> list[Plot]:
        """The plots of one frame; also teaches the clutter map this frame's static returns."""
        pts = np.asarray(frame.points, dtype=np.float64)
        t = frame.t_capture
        if pts.ndim != 2 or pts.shape[0] == 0 or pts.shape[1] < 5:
            self.clutter.learn(t, np.zeros(0, np.int64), np.zeros(0, np.int64))
            return []
        self.points_in += len(pts)
        # Whole-frame reductions in the usual case (NaN fails every comparison, an infinite
        # snr makes the sum infinite); the per-point test only for a frame that fails them.
        if not (float(np.abs(pts[:, :3]).max()) <= self.plausible_range_m
                and float(np.abs(pts[:, 3]).max()) <= self.plausible_speed_mps
                and math.isfinite(float(pts[:, 4].sum()))):
            plausible = ((np.abs(pts[:, :3]) <= self.plausible_range_m).all(axis=1)
                         & (np.abs(pts[:, 3]) <= self.plausible_speed_mps)
                         & np.isfinite(pts[:, 4]))
            self.rejected_implausible += int(len(pts) - np.count_nonzero(plausible))
            pts = pts[plausible]
            if len(pts) == 0:
                self.clutter.flat_learn(t, np.zeros(0, np.int64))
                return []
        x, y, z = pts[:, 0], pts[:, 1], pts[:, 2]
        horizontal = np.hypot(x, y)
        azimuth = np.arctan2(x, y)
        height = self.mount_height_m + z
        static = np.abs(pts[:, 3]) < self.static_doppler_mps
        rejected: np.ndarray | None = None

        # A mirror image off the ground sits as far below it as the target is above: well
        # below the ground, beyond what each point's elevation noise (3 sigma) explains.
        # That is at least 1 m below it, so only such points need the noise worked out.
        n_ghost = 0
        low = np.flatnonzero(height < -1.0)
        if len(low):
            el_error = np.tan(np.minimum(3.0 * self._angle_sigma(self.elevation_resolution_deg,
                                                                 pts[low, 4]), 1.2))
            is_ghost = (z[low] != 0.0) & (height[low] < -np.maximum(1.0,
                                                                    horizontal[low] * el_error))
            n_ghost = int(np.count_nonzero(is_ghost))
            if n_ghost:
                rejected = np.zeros(len(pts), dtype=bool)
                rejected[low[is_ghost]] = True

        # Ground and clutter are static returns; only they touch the clutter map.
        n_ground = n_clutter = 0
        static_idx = np.flatnonzero(static)
        cells = self.clutter.flat_cells(horizontal[static_idx], azimuth[static_idx])
        if len(static_idx):
            is_ground = height[static_idx] < self.ground_floor_m
            n_ground = int(np.count_nonzero(is_ground))
            out = is_ground if rejected is None else is_ground | rejected[static_idx]
            candidates = ~out
            if candidates.any():
                is_clutter = (self.clutter.flat_background(t, cells[candidates])
                              > self.clutter.threshold)
                n_clutter = int(np.count_nonzero(is_clutter))
                if n_clutter:
                    out[candidates] = is_clutter
            if n_ground or n_clutter:
                if rejected is None:
                    rejected = np.zeros(len(pts), dtype=bool)
                rejected[static_idx[out]] = True
        self.clutter.flat_learn(t, cells)

        self.rejected_ground += n_ground
        self.rejected_ghost += n_ghost
        self.rejected_clutter += n_clutter
        if rejected is not None:
            keep = ~rejected
            if not keep.any():
                return []
            pts, horizontal, azimuth = pts[keep], horizontal[keep], azimuth[keep]
        return self._cluster(t, pts, horizontal, azimuth)

    def _angle_sigma(self, resolution_deg: float, snr_db: np.ndarray) -> np.ndarray:
        """One-sigma angle noise (rad) of single points: resolution / (1.6 sqrt(2 SNR))."""
        snr = 10.0 ** (np.minimum(np.maximum(snr_db, 0.0), 60.0) * 0.1)
        return math.radians(resolution_deg) / (1.6 * np.sqrt(2.0 * snr))

    def _cluster(self, t: float, pts: np.ndarray, horizontal: np.ndarray,
                 azimuth: np.ndarray) -> list[Plot]:
        n = len(pts)
        # DBSCAN-like over resolution cells (module docstring): range and radial speed agree,
        # angles within their noise or the object's extent, never beyond the beamwidth;
        # clusters = connected core points. The angle tests run only over the pairs whose
        # ranges and radial speeds agree (few: a frame's points are mostly far apart), as a
        # list of directed edges (i, j) that holds both directions and every self-pair.
        if n == 1:
            labels = np.zeros(1, dtype=np.int64)
        else:
            z, doppler = pts[:, 2], pts[:, 3]
            rng = np.sqrt(horizontal * horizontal + z * z)
            dr = rng[:, None] - rng
            i, j = np.nonzero(np.abs(dr, out=dr) <= self.cluster_distance_m)
            if len(i) > n:  # more than the self-pairs
                ok = np.abs(doppler.take(i) - doppler.take(j)) <= self.cluster_doppler_mps
                i, j = i[ok], j[ok]
            if len(i) > n:
                # 1-D calls over the pairs only: each costs its call overhead, not its size.
                divisor = 1.6 * np.sqrt(2.0 * 10.0 ** (np.minimum(np.maximum(pts[:, 4], 0.0),
                                                                  60.0) * 0.1))
                mean_r = np.maximum(0.5 * (rng.take(i) + rng.take(j)), 1.0)
                extent = self.cluster_distance_m / mean_r + self.cluster_angle_tan
                ok = None
                for angle, resolution in ((azimuth, self.azimuth_resolution_deg),
                                          (np.arctan2(z, horizontal),
                                           self.elevation_resolution_deg)):
                    res = math.radians(resolution)
                    sigma2 = (res / divisor) ** 2
                    gate = np.minimum(np.maximum(3.0 * np.sqrt(sigma2.take(i) + sigma2.take(j)),
                                                 extent), res)
                    fits = np.abs(angle.take(i) - angle.take(j)) <= gate
                    ok = fits if ok is None else ok & fits
                i, j = i[ok], j[ok]
            if self.min_points > 1:
                adjacent = np.zeros((n, n), dtype=bool)
                adjacent[i, j] = True
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
                pts, azimuth, labels = pts[keep], azimuth[keep], labels[keep]
            else:
                labels = edge_labels(n, i, j)
        return self._plots(t, pts, azimuth, labels)

    def _plots(self, t: float, pts: np.ndarray, azimuth: np.ndarray,
               labels: np.ndarray) -> list[Plot]:
        n = len(labels)
        order = np.argsort(labels, kind="stable")
        labels, pts, point_az = labels[order], pts[order], azimuth[order]
        starts = np.flatnonzero(labels[1:] != labels[:-1]) + 1
        bounds = [0, *starts.tolist(), n]
        counts = [b - a for a, b in itertools.pairwise(bounds)]
        starts = bounds[:-1]
        x, y, z, snr = pts[:, 0], pts[:, 1], pts[:, 2], pts[:, 4]
        point_range = np.sqrt(x * x + y * y + z * z)
        # Power-weighted moments of every cluster in one pass.
        weight = 10.0 ** (np.minimum(np.maximum(snr, -20.0), 60.0) * 0.1)
        # One row per moment: contiguous rows keep every numpy call on its fast path.
        rows = np.empty((10, n))
        rows[0] = 1.0
        rows[1:5] = pts[:, :4].T
        rows[5] = point_range
        np.multiply(point_range, point_range, out=rows[6])
        rows[7] = point_az
        np.multiply(point_az, point_az, out=rows[8])
        rows[9] = z != 0.0
        rows *= weight
        sums = np.add.reduceat(rows, starts, axis=1)
        m = sums[1:9] / sums[0]
        cx, cy, cz = m[0], m[1], m[2]
        root_n = np.sqrt(counts)
        range_spread = np.sqrt(np.maximum(m[5] - m[4] ** 2, 0.0))
        az_spread = np.sqrt(np.maximum(m[7] - m[6] ** 2, 0.0))

        # One row per numpy-computed field, handed to Python in one tolist(); the cheap
        # arithmetic per plot is done on Python floats below.
        out = np.empty((11, len(counts)))
        horizontal = np.hypot(cx, cy)
        np.sqrt(horizontal * horizontal + cz * cz, out=out[0])  # slant range
        np.hypot(self.range_resolution_m / 2.0, range_spread / root_n, out=out[1])
        np.arctan2(cx, cy, out=out[2])
        out[2] *= _DEG  # azimuth in the radar frame
        # Monopulse-like accuracy: resolution / (1.6 sqrt(2 SNR)), floored, plus the spread.
        peak_snr = np.maximum.reduceat(snr, starts)
        out[3] = 1.0 / (1.6 * np.sqrt(2.0 * 10.0 ** (np.minimum(np.maximum(peak_snr, 0.0),
                                                                60.0) * 0.1)))
        az_acc = np.minimum(np.maximum(self.azimuth_resolution_deg * out[3],
                                       self.min_angle_error_deg),
                            self.azimuth_resolution_deg / 2.0)
        np.hypot(az_acc, az_spread * _DEG / root_n, out=out[4])
        np.arctan2(cz, horizontal, out=out[5])
        out[5] *= _DEG  # elevation
        out[6:9] = m[1:4]  # cy, cz, cv
        out[9] = cx
        out[10] = peak_snr
        has_z = (sums[9] > 0.0).tolist()

        t_ = t
        bore, mast, mount = self.boresight_azimuth_deg, self.mast_heading_deg, self.mount_height_m
        sin_b, cos_b = self._boresight_sin_cos
        el_res, el_floor = self.elevation_resolution_deg, self.min_angle_error_deg
        el_cap = self.elevation_resolution_deg / 2.0
        half_beam = self.vertical_half_beam_deg
        plots = []
        for (r, re, az_radar, acc, ae, el, ny, nz, v, nx, s), hz, c in zip(
                out.T.tolist(), has_z, counts, strict=True):
            az_node = (bore + az_radar + 180.0) % 360.0 - 180.0  # [-180, 180)
            plots.append(Plot(t_, r, re, az_node, (mast + az_node) % 360.0, ae,
                              el if hz else None,
                              min(max(el_res * acc, el_floor), el_cap) if hz else half_beam,
                              v, s, c,
                              ny * sin_b + nx * cos_b,  # ENU, as geo.radar_to_enu
                              ny * cos_b - nx * sin_b, nz, mount + nz))
        return plots
