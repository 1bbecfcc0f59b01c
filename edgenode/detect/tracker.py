"""Multi-target tracker over radar plots and acoustic bearings.

- State: constant-velocity Kalman filter per track in local ENU (edgenode.detect.kalman),
  origin at the node's reference point.
- Radar plots: position measurement (covariance from the plot's range/bearing/elevation
  errors) then the radial speed as a scalar EKF update (skipped when it disagrees by more than
  3 sigma: doppler aliasing and rotor micro-doppler).
- Acoustic bearings: EKF updates on true bearing (and elevation where the array gives one). A
  bearing that lands on a track fuses into it (the track gains "acoustic" and the f0/score
  evidence); one that lands on none starts an acoustic-only track, placed at a nominal range
  with a range uncertainty as large as the range, and reported without range or location. The
  first radar plot in its gate gives it a range (the object keeps its id).
- Association: Mahalanobis gate, then global nearest neighbour (an optimal
  assignment, detect/assign.py) on d^2 + ln det S, which prefers the sharper of two tracks a plot
  fits. Tracks are predicted along their velocity, so two targets crossing keep their ids.
  Radar plots go to ranged tracks only: an acoustic-only track's gate is a long wedge along
  its bearing in which any false plot would do, so one plot never gives it a range. Instead
  the radar forms its own track, and once that is confirmed on the acoustic track's bearing
  the two are one object (`track.fuse_acoustic`): the older id lives on with the radar's state.
- Lifecycle: tentative -> confirmed when the track's score (edgenode.detect.trackscore: the
  log-likelihood ratio of a real object against a chance alignment of false measurements,
  with the false-plot density learnt on site) reaches `confirm_score` after at least
  `min_confirm_hits` measurements; confirmed -> coasting after `coast_after_s` without one;
  coasting -> confirmed on the next; coasting -> ended after `end_after_s` (an acoustic-only
  track: `acoustic_end_after_s`, since a far drone's sound drops out for seconds while it flies
  on, and ending its track would bring it back under a new id, to central a second object);
  a tentative track ends after `tentative_timeout_s` without a measurement or when its score
  falls below `delete_score`.
- Start regions (`set_regions`, from a tasking system such as a SAPIENT sensor task): a plot
  or bearing that lands on no track starts one only where `regions.passes` lets it (not in
  an ignore area; inside an area of interest when there is one; unknown passes). They gate
  births only: a live track that flies into an ignore area keeps being updated and reported
  (the SAPIENT room filters its own reports), so a tasking system never makes a drone vanish
  from the operators' picture.
- One object, one track: two ranged tracks whose states (position and velocity) agree within
  the gate for `merge_after_s` are one object the radar saw as two plots; the younger ends.
  Crossing targets are at one place with different velocities, so they never merge.
"""

from __future__ import annotations

import logging
import math

import numpy as np
from scipy.special import gammaincinv

from edgenode.detect import kalman
from edgenode.detect.assign import assign
from edgenode.detect.classify import TrackFeatures, classify
from edgenode.detect.events import Event, State, TrackEvents
from edgenode.detect.geo import LocalFrame, polar_to_enu, wrap_pi
from edgenode.detect.plots import Plot
from edgenode.detect.regions import Region, passes
from edgenode.detect.track import (
    Track,
    fuse_acoustic,
    merge_duplicates,
    new_share,
    report,
    trace,
)
from edgenode.detect.trackscore import (
    FalsePlotDensity,
    doppler_log_ratio,
    gaussian_log,
)
from edgenode.detect.types import AcousticBearing

log = logging.getLogger(__name__)

_INFEASIBLE = 1e9


class Tracker:
    """Plots and bearings in, track events out. Not thread-safe: one owner calls update()."""

    def __init__(self, *, latitude_deg: float, longitude_deg: float, altitude_m: float,
                 mast_heading_deg: float,
                 mount_height_m: float = 3.0,
                 q_horizontal: float = 4.0,
                 q_vertical: float = 1.0,
                 gate_probability: float = 0.99,
                 confirm_score: float = 10.0,
                 delete_score: float = -6.0,
                 min_confirm_hits: int = 2,
                 radar_pd: float = 0.8,
                 acoustic_pd: float = 0.9,
                 acoustic_false_per_rad: float = 0.1 / (2.0 * math.pi),
                 acoustic_decorrelation_s: float = 0.5,
                 doppler_span_mps: float = 20.0,
                 merge_after_s: float = 1.0,
                 tentative_timeout_s: float = 1.0,
                 coast_after_s: float = 0.5,
                 end_after_s: float = 3.0,
                 # Twin, two-masts-crossing ~300 m out: silences of up to 5 s offline and
                 # 7.4 s on a loaded machine; central drops a member silent for 10 s.
                 acoustic_end_after_s: float = 8.0,
                 init_speed_sigma_mps: float = 10.0,
                 doppler_sigma_mps: float = 0.5,
                 doppler_max_mps: float | None = None,
                 plot_extent_m: float = 0.3,
                 unresolved_m: float = 2.0,
                 acoustic_nominal_range_m: float = 150.0,
                 acoustic_range_m: float | None = None,
                 acoustic_memory_s: float = 5.0,
                 # snr + 40 log10(range) - offset = RCS (dBsm): the radar's link budget. An
                 # IWR6843 ISK at its long-range chirp sees 1 m^2 at 10 m with ~60 dB SNR
                 # (60 + 40 log10(10)); the twin is calibrated the same.
                 radar_rcs_offset_db: float | None = 100.0,
                 classify_period_s: float = 0.5,
                 max_update_rate_hz: float = 2.0,
                 announce_tentative: bool = False,
                 max_tracks: int = 200):
        self.frame = LocalFrame(latitude_deg, longitude_deg, altitude_m)
        self.mast_heading_deg = mast_heading_deg
        self.mount_height_m = mount_height_m  # the ENU origin's height above the ground
        self.q_horizontal, self.q_vertical = q_horizontal, q_vertical
        # chi-square quantiles; scipy.special instead of scipy.stats saves ~45 MB of RSS
        self.gate = {dof: float(2 * gammaincinv(dof / 2, gate_probability))
                     for dof in (1, 2, 3, 6)}
        # confirm_score = ln(1/alpha): about one false track per 20,000 chances.
        self.confirm_score, self.delete_score = confirm_score, delete_score
        self.min_confirm_hits = min_confirm_hits
        self.log_radar_pd = math.log(radar_pd)
        self.log_radar_miss = math.log(1.0 - radar_pd)
        self.log_acoustic_pd = math.log(acoustic_pd)
        self.log_acoustic_false = math.log(acoustic_false_per_rad)
        self.acoustic_decorrelation_s = acoustic_decorrelation_s
        self.doppler_span_mps = doppler_span_mps
        self.merge_after_s = merge_after_s
        self.false_plots = FalsePlotDensity()
        self.tentative_timeout_s = tentative_timeout_s
        self.coast_after_s, self.end_after_s = coast_after_s, end_after_s
        self.acoustic_end_after_s = acoustic_end_after_s
        self.init_speed_sigma_mps = init_speed_sigma_mps
        self.doppler_sigma_mps = doppler_sigma_mps
        self.doppler_max_mps = doppler_max_mps  # the radar's unambiguous radial speed
        # A plot's centroid wanders over the object from frame to frame (glint, which points
        # the radar kept): an error no single plot reports, added to every one.
        self.plot_extent_var = np.eye(3) * plot_extent_m**2
        self.unresolved_var = np.eye(3) * unresolved_m**2
        self.acoustic_nominal_range_m = acoustic_nominal_range_m
        self.acoustic_range_m = acoustic_range_m
        self.acoustic_memory_s = acoustic_memory_s
        self.radar_rcs_offset_db = radar_rcs_offset_db
        self.classify_period_s = classify_period_s
        self.max_tracks = max_tracks
        self.events = TrackEvents(max_update_rate_hz=max_update_rate_hz,
                                  announce_tentative=announce_tentative)
        self._tracks: list[Track] = []
        self._predicted: tuple[int, np.ndarray, np.ndarray] = (0, np.zeros((0, 6)),
                                                               np.zeros((0, 6, 6)))
        self._t_last = -math.inf
        self._last_bearing_t = -math.inf
        self._regions: tuple[Region, ...] = ()
        self.starts_held_back = 0  # measurements that would have started a track

    def set_regions(self, regions: tuple[Region, ...]) -> None:
        """Where new tracks may start (see the module's docstring); () lifts every gate."""
        self._regions = tuple(regions)

    def _may_start(self, azimuth_deg: float, range_m: float | None,
                   lon_lat: tuple[float, float] | None) -> bool:
        if not self._regions or passes(self._regions, azimuth_deg, range_m, lon_lat):
            return True
        self.starts_held_back += 1
        return False

    # ---------------------------------------------------------------- public

    def update(self, t: float, plots: list[Plot],
               bearings: list[AcousticBearing]) -> list[Event]:
        """Take one batch of measurements at time t (unix s); the events it causes."""
        if t < self._t_last:
            # A late batch (another sensor's thread): measure it at the tracks' time rather
            # than predicting backwards.
            t = self._t_last
        self._t_last = t
        hit: set[int] = set()
        self._predict(t)
        if plots:
            hit |= self._radar(t, plots)
        if bearings:
            self._last_bearing_t = t
            hit |= self._acoustic(t, bearings)
        return self._lifecycle(t, hit)

    def tracks(self) -> list[State]:
        """The state of every live track (tentative ones included)."""
        return [report(tr, self.frame, self.acoustic_memory_s) for tr in self._tracks]

    # ---------------------------------------------------------------- filter

    def _predict(self, t: float) -> None:
        if not self._tracks:
            return
        X = np.array([tr.x for tr in self._tracks])
        P = np.array([tr.P for tr in self._tracks])
        dt = np.array([t - tr.t for tr in self._tracks])
        kalman.predict(X, P, dt, self.q_horizontal, self.q_vertical)
        for tr, x, p in zip(self._tracks, X, P, strict=True):
            tr.x, tr.P, tr.t = x, p, t
        # The radar step gates against these stacks as they are (no re-stacking).
        self._predicted = (len(self._tracks), X, P)

    def _radar(self, t: float, plots: list[Plot]) -> set[int]:
        n_plots = len(plots)
        Z = np.array([(p.east_m, p.north_m, p.up_m) for p in plots])
        pol = np.array([(p.range_m, p.azimuth_deg, p.elevation_deg or 0.0, p.range_error_m,
                         p.azimuth_error_deg, p.elevation_error_deg) for p in plots])
        pol[:, 1:3] = np.radians(pol[:, 1:3])
        pol[:, 4:6] = np.radians(pol[:, 4:6])
        R = kalman.polar_covariance(pol[:, 0], pol[:, 1], pol[:, 2], pol[:, 3], pol[:, 4],
                                    pol[:, 5]) + self.plot_extent_var
        # ln of the false-plot density at each plot: what a chance plot would score there.
        log_false = self.false_plots.log_densities(pol[:, 0].tolist(), pol[:, 2].tolist())
        # Plots go to ranged tracks only (see the module's docstring).
        tracks = [tr for tr in self._tracks if tr.has_range]
        assigned: dict[int, int] = {}
        gated_by_ranged = np.zeros(n_plots, dtype=bool)
        if tracks:
            n_predicted, X, P = self._predicted
            if len(tracks) != n_predicted:  # some tracks are acoustic-only
                X = np.array([tr.x for tr in tracks])
                P = np.array([tr.P for tr in tracks])
            d2, logdet = kalman.position_gate(X, P, Z, R)
            feasible = d2 < self.gate[3]
            gated_by_ranged = feasible.any(axis=0)
            if feasible.any():
                # Radial speed tells apart two objects at one place (crossing paths). Capped:
                # an aliased doppler must not make a good position fit impossible.
                rdot, H = kalman.radial_speed_jacobian(X)
                s_d = kalman.scalar_innovation_variance(
                    P, H, np.full(len(tracks), self.doppler_sigma_mps**2))
                nu_d = np.array([p.radial_speed_mps for p in plots])[None, :] - rdot[:, None]
                if self.doppler_max_mps is not None:
                    span = 2.0 * self.doppler_max_mps
                    nu_d = (nu_d + 0.5 * span) % span - 0.5 * span
                d2_doppler = np.minimum(nu_d * nu_d / s_d[:, None], 9.0)
                cost = np.where(feasible, d2 + logdet + d2_doppler, _INFEASIBLE)
                assigned = dict(assign(cost, feasible))
                for i, k in assigned.items():
                    tracks[i].score += (
                        self.log_radar_pd + gaussian_log(float(d2[i, k]), float(logdet[i, k]), 3)
                        - log_false[k]
                        + doppler_log_ratio(float(nu_d[i, k]), float(s_d[i]),
                                            self.doppler_span_mps))
            upd = list(assigned)
            if upd:
                cols = [assigned[i] for i in upd]
                R_upd = R[cols]
                starved = np.ones(len(tracks), dtype=bool)
                starved[upd] = False
                # The plot also fits a ranged track that got none: two objects the radar did
                # not resolve (crossing). It says where the pair is, not where either one is:
                # widen its error by their separation and the radar's resolution cell, skip
                # its doppler, so neither track's velocity bends towards the other.
                shared = (feasible[:, cols] & starved[:, None]).any(axis=0)
                for m in np.flatnonzero(shared).tolist():
                    others = np.flatnonzero(feasible[:, cols[m]] & starved)
                    gap = X[others, :3] - X[upd[m], :3]
                    R_upd[m] = R_upd[m] + gap.T @ gap + self.unresolved_var
                self._radar_update(t, [tracks[i] for i in upd], X[upd], P[upd],
                                   [plots[k] for k in cols], Z[cols], R_upd, shared)
            for i, tr in enumerate(tracks):
                if i not in assigned and tr.status == "tentative":
                    tr.score += self.log_radar_miss
        hit = {id(tracks[i]) for i in assigned}
        used = set(assigned.values())
        taken = np.zeros(n_plots, dtype=bool)
        for i, k in assigned.items():
            taken[k] = tracks[i].status in ("confirmed", "coasting")
        self.false_plots.learn(t, pol[:, 0], np.radians([p.azimuth_node_deg for p in plots]),
                               pol[:, 2], ~taken)
        for k, plot in enumerate(plots):
            # A plot inside a ranged track's gate is a second piece of that object (or of a
            # neighbour) rather than a new object.
            if k in used or gated_by_ranged[k] or len(self._tracks) >= self.max_tracks:
                continue
            if self._regions:
                lat, lon, _ = self.frame.to_geodetic(plot.east_m, plot.north_m, plot.up_m)
                if not self._may_start(plot.azimuth_deg, float(np.linalg.norm(Z[k])),
                                       (lon, lat)):
                    continue
            x, P0 = self._initial_state(plot, Z[k], R[k])
            track = Track(t, x, P0, has_range=True, has_elevation=plot.elevation_deg is not None)
            self._note_plot(track, t, plot)
            self._tracks.append(track)
        return hit

    def _radar_update(self, t: float, tracks: list[Track], X: np.ndarray, P: np.ndarray,
                      plots: list[Plot], Z: np.ndarray, R: np.ndarray,
                      shared: np.ndarray) -> None:
        X, P = kalman.position_update(X, P, Z, R)
        rdot, H = kalman.radial_speed_jacobian(X)
        doppler = np.array([p.radial_speed_mps for p in plots])
        var = np.full(len(plots), self.doppler_sigma_mps**2)
        nu = doppler - rdot
        if self.doppler_max_mps is not None:  # an aliased doppler is off by 2 v_max
            span = 2.0 * self.doppler_max_mps
            nu = (nu + 0.5 * span) % span - 0.5 * span
        consistent = (nu * nu < 9.0 * kalman.scalar_innovation_variance(P, H, var)) & ~shared
        if consistent.any():
            X[consistent], P[consistent] = kalman.scalar_update(
                X[consistent], P[consistent], H[consistent], nu[consistent], var[consistent])
        for i, tr in enumerate(tracks):
            tr.x, tr.P = X[i], P[i]
            if plots[i].elevation_deg is not None:
                tr.has_elevation = True
            self._note_plot(tr, t, plots[i])
            self._note_manoeuvre(tr, t)

    def _initial_state(self, plot: Plot, z: np.ndarray,
                       r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A state from one plot: its position, and its radial speed along the line of sight
        (the cross-range speed unknown)."""
        los = z / max(float(np.linalg.norm(z)), 1e-3)
        x = np.zeros(6)
        x[:3] = z
        x[3:] = plot.radial_speed_mps * los
        P = np.zeros((6, 6))
        P[:3, :3] = r
        s2 = self.init_speed_sigma_mps**2
        P[3:, 3:] = s2 * (np.eye(3) - np.outer(los, los)) + 4.0 * np.outer(los, los)
        return x, P

    def _note_plot(self, track: Track, t: float, plot: Plot) -> None:
        track.radar_last_t = t
        a = 0.3
        track.snr_db = plot.snr_db if track.snr_db is None else (
            (1 - a) * track.snr_db + a * plot.snr_db)
        track.points = float(plot.point_count) if track.points is None else (
            (1 - a) * track.points + a * plot.point_count)

    def _note_manoeuvre(self, track: Track, t: float) -> None:
        """RMS velocity change over >= 1 s spans, less what the filter's own velocity noise
        explains."""
        if track.t_ref is None:
            track.t_ref, track.v_ref, track.vv_ref = t, track.x[3:].copy(), trace(track.P, 3, 6)
            return
        span = t - track.t_ref
        if span < 1.0:
            return
        v = track.x[3:]
        vv = trace(track.P, 3, 6)
        change2 = float(np.sum((v - track.v_ref) ** 2)) - (vv + track.vv_ref)
        accel = math.sqrt(max(change2, 0.0)) / span
        track.manoeuvre = accel if track.manoeuvre is None else (
            0.7 * track.manoeuvre + 0.3 * accel)
        track.t_ref, track.v_ref, track.vv_ref = t, v.copy(), vv

    # ---------------------------------------------------------------- acoustic

    def _bearing_fit(self, track: Track, b: AcousticBearing) -> tuple[float, int]:
        """(d^2 + ln s, degrees of freedom) of a bearing against a track, or (inf, 0)."""
        az, H = kalman.bearing_jacobian(track.x)
        s = float(H @ track.P @ H) + math.radians(b.error_deg) ** 2
        nu = float(wrap_pi(math.radians(b.azimuth_deg) - az))
        d2, logs, dof = nu * nu / s, math.log(s), 1
        if b.elevation_deg is not None and (track.has_elevation or not track.has_range):
            el, He = kalman.elevation_jacobian(track.x)
            se = float(He @ track.P @ He) + math.radians(b.error_deg) ** 2
            nue = math.radians(b.elevation_deg) - el
            d2, logs, dof = d2 + nue * nue / se, logs + math.log(se), 2
        if d2 >= self.gate[dof]:
            return math.inf, 0
        return d2 + logs, dof

    def _acoustic(self, t: float, bearings: list[AcousticBearing]) -> set[int]:
        tracks = self._tracks
        hit: set[int] = set()
        used: set[int] = set()
        gated = [False] * len(bearings)
        if tracks:
            cost = np.full((len(tracks), len(bearings)), _INFEASIBLE)
            dofs = np.zeros((len(tracks), len(bearings)), dtype=np.int64)
            for i, tr in enumerate(tracks):
                # A tentative radar track is not yet an object (mostly clutter): a bearing it
                # happens to gate must neither feed it nor be held up as ambiguous by it. If
                # it is the drone, it confirms on the radar and then fuses with the bearing's
                # track (track.fuse_acoustic).
                if tr.status == "tentative" and tr.has_range:
                    continue
                for k, b in enumerate(bearings):
                    c, dof = self._bearing_fit(tr, b)
                    if c < math.inf:
                        cost[i, k], dofs[i, k] = c, dof
                        gated[k] = True
            # A bearing that fits two tracks (two drones crossing the same line of sight) does
            # not say which it belongs to: it updates neither, as a shared radar plot does not.
            ambiguous = (cost < _INFEASIBLE).sum(axis=0) > 1
            if (cost < _INFEASIBLE).any():
                for i, k in assign(cost, cost < _INFEASIBLE):
                    if not ambiguous[k]:
                        self._acoustic_score(tracks[i], t, float(cost[i, k]), int(dofs[i, k]),
                                             bearings[k].span_s)
                        self._bearing_update(tracks[i], t, bearings[k])
                        hit.add(id(tracks[i]))
                        used.add(k)
        for k, b in enumerate(bearings):
            if k in used or gated[k] or len(self._tracks) >= self.max_tracks:
                continue
            if not self._may_start(b.azimuth_deg, None, None):
                continue
            track = self._acoustic_track(t, b)
            self._tracks.append(track)
        return hit

    def _acoustic_score(self, track: Track, t: float, cost: float, dof: int,
                        span_s: float) -> None:
        """Score a bearing that fits the track with cost d^2 + ln det S (before the update)."""
        weight = new_share(track, t, max(self.acoustic_decorrelation_s, span_s))
        # A false bearing falls anywhere on the circle; its elevation anywhere above it.
        log_false = self.log_acoustic_false + (dof - 1) * math.log(2.0 / math.pi)
        track.score += weight * (self.log_acoustic_pd - 0.5 * (cost + dof * math.log(2 * math.pi))
                                 - log_false)

    def _bearing_update(self, track: Track, t: float, b: AcousticBearing) -> None:
        # A bearing that shares most of its audio with the track's last one (a long average
        # judged often) brings only its new share of information: its variance grows by
        # the inverse of that share, so n overlapping bearings weigh as their span allows.
        var = math.radians(b.error_deg) ** 2 / max(new_share(track, t, b.span_s), 1e-3)
        az, H = kalman.bearing_jacobian(track.x)
        nu = float(wrap_pi(math.radians(b.azimuth_deg) - az))
        X, P = kalman.scalar_update(track.x[None], track.P[None], H[None], np.array([nu]),
                                    np.array([var]))
        if b.elevation_deg is not None and (track.has_elevation or not track.has_range):
            el, He = kalman.elevation_jacobian(X[0])
            X, P = kalman.scalar_update(X, P, He[None],
                                        np.array([math.radians(b.elevation_deg) - el]),
                                        np.array([var]))
            track.has_elevation = True
        track.x, track.P = X[0], P[0]
        if not track.has_range:
            self._hold_nominal_range(track)
        track.acoustic_last_t = t
        track.f0_hz = b.f0_hz
        track.acoustic_score = b.score

    def _hold_nominal_range(self, track: Track) -> None:
        """An acoustic-only track's range is not observable: keep it at the nominal range so
        the bearing Jacobian stays sane."""
        p = track.x[:3]
        norm = float(np.linalg.norm(p))
        if norm > 1e-6:
            track.x = track.x.copy()
            track.x[:3] = p * (self.acoustic_nominal_range_m / norm)

    def _acoustic_track(self, t: float, b: AcousticBearing) -> Track:
        rng = self.acoustic_nominal_range_m
        el = b.elevation_deg if b.elevation_deg is not None else 0.0
        el_err = b.error_deg if b.elevation_deg is not None else 30.0
        x = np.zeros(6)
        x[:3] = polar_to_enu(rng, b.azimuth_deg, el)
        P = np.zeros((6, 6))
        P[:3, :3] = kalman.polar_covariance(
            np.array([rng]), np.radians([b.azimuth_deg]), np.radians([el]),
            np.array([rng * 0.7]), np.radians([b.error_deg]), np.radians([el_err]))[0]
        P[3:, 3:] = np.eye(3) * 25.0
        track = Track(t, x, P, has_range=False, has_elevation=b.elevation_deg is not None)
        track.acoustic_last_t, track.f0_hz, track.acoustic_score = t, b.f0_hz, b.score
        track.acoustic_span_s = b.span_s
        return track

    # ---------------------------------------------------------------- lifecycle

    def _lifecycle(self, t: float, hit: set[int]) -> list[Event]:
        events: list[Event] = []
        alive: list[Track] = []
        before = {id(tr): tr.status for tr in self._tracks}
        for tr in self._tracks:
            if id(tr) in hit:
                tr.last_hit = t
                tr.hit_times.append(t)
                tr.updates += 1
                if tr.status == "coasting":
                    tr.status = "confirmed"
            quiet = t - tr.last_hit
            if tr.status == "tentative":
                if tr.score >= self.confirm_score and tr.updates >= self.min_confirm_hits:
                    tr.status = "confirmed"
                # A track born of a long average's bearings (a faint drone) may wait longer
                # for its next one: each judgement stands for seconds of audio, and a few
                # are dropped as too uncertain.
                elif (quiet > max(self.tentative_timeout_s, 0.5 * tr.acoustic_span_s)
                      or tr.score < self.delete_score):
                    tr.status = "ended"
            elif tr.status == "confirmed" and quiet > self.coast_after_s:
                tr.status = "coasting"
            if tr.status == "coasting" and quiet > (self.end_after_s if tr.has_range
                                                    else self.acoustic_end_after_s):
                tr.status = "ended"
        merge_duplicates(self._tracks, t, self.gate, coast_after_s=self.coast_after_s,
                         merge_after_s=self.merge_after_s)
        fuse_acoustic(self._tracks, self.gate)
        for tr in self._tracks:
            if tr.status != before[id(tr)] or t - tr.classified_t >= self.classify_period_s:
                tr.classification = classify(self._features(tr, t))
                tr.classified_t = t
            assert tr.classification is not None
            event = self.events.observe(
                t, tr.object_id, tr.status, tr.classification.label, tr.updates,
                lambda tr=tr: report(tr, self.frame, self.acoustic_memory_s))
            if event is not None:
                events.append(event)
            if tr.status != "ended":
                alive.append(tr)
            else:
                log.debug("tracker: track %s ended after %d updates", tr.object_id, tr.updates)
        self._tracks = alive
        return events

    # ---------------------------------------------------------------- output

    def _features(self, tr: Track, t: float) -> TrackFeatures:
        speed = height = rcs = None
        height_error = 0.0
        e, n, u, ve, vn, vu = tr.x.tolist()
        rng = math.sqrt(e * e + n * n + u * u)
        # Speed only once the velocity is known to ~3 m/s per axis; a 2D radar sees no climb.
        axes = 3 if tr.has_elevation else 2
        if tr.has_range and trace(tr.P, 3, 3 + axes) < 9.0 * axes:
            speed = math.sqrt(ve * ve + vn * vn + (vu * vu if axes == 3 else 0.0))
        if tr.has_range and tr.has_elevation:
            height = u + self.mount_height_m
            height_error = math.sqrt(max(tr.P.item(14), 0.0))
        heard = tr.acoustic_last_t is not None and t - tr.acoustic_last_t <= self.acoustic_memory_s
        harmonic: float | None = None
        if heard:
            harmonic = tr.acoustic_score
        elif (self.acoustic_range_m is not None and tr.has_range
              and rng <= 0.5 * self.acoustic_range_m and t - tr.first_seen >= 2.0
              and not self._detector_busy(t)):
            # Silence counts against "drone" only where a drone would surely be heard: within
            # half the detection range its harmonics stand 6 dB (spherical spreading) over
            # the detection threshold. And only while the detector heard no drone anywhere:
            # it follows one harmonic source at a time, so a second drone goes unheard while
            # it follows the first.
            harmonic = 0.0
        if self.radar_rcs_offset_db is not None and tr.has_range and tr.snr_db is not None:
            rcs = tr.snr_db + 40.0 * math.log10(max(rng, 1.0)) - self.radar_rcs_offset_db
        return TrackFeatures(speed_mps=speed, height_m=height, height_error_m=height_error,
                             manoeuvre_mps2=tr.manoeuvre,
                             harmonic_score=harmonic, f0_hz=tr.f0_hz if heard else None,
                             rcs_dbsm=rcs,
                             points_per_plot=tr.points if tr.radar_last_t is not None else None)

    def _detector_busy(self, t: float) -> bool:
        return t - self._last_bearing_t <= self.acoustic_memory_s
