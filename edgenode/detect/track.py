"""One tracked object (Track): its filter state and bookkeeping, its report (the agreed state
dict of every event), and the rules by which two tracks are found to be one object (a radar
object seen as two plots; an acoustic-only track and the radar track on its bearing)."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np

from edgenode.detect import kalman
from edgenode.detect.classify import Classification, TrackFeatures, classify
from edgenode.detect.events import State
from edgenode.detect.geo import LocalFrame, wrap_pi
from edgenode.ulid import new_ulid


def trace(P: np.ndarray, start: int, stop: int) -> float:
    """Sum of P's (6x6) diagonal over [start, stop): np.trace costs more than this."""
    total = P.item(start * 7)
    for k in range(start + 1, stop):
        total += P.item(k * 7)
    return total


def quadratic3(g: tuple[float, float, float], P: list[list[float]]) -> float:
    """g' P g over the position block of P (nested lists), in plain floats."""
    g0, g1, g2 = g
    p0, p1, p2 = P[0], P[1], P[2]
    return (g0 * (g0 * p0[0] + g1 * p1[0] + g2 * p2[0])
            + g1 * (g0 * p0[1] + g1 * p1[1] + g2 * p2[1])
            + g2 * (g0 * p0[2] + g1 * p1[2] + g2 * p2[2]))


class Track:
    """One object's filter and bookkeeping. Owned by the Tracker."""

    __slots__ = ("P", "acoustic_last_t", "acoustic_score", "acoustic_span_s", "classification",
                 "classified_t", "dup_since", "f0_hz", "first_seen", "has_elevation", "has_range",
                 "hit_times", "last_hit", "manoeuvre", "object_id", "points", "radar_last_t",
                 "score", "snr_db", "status", "t", "t_ref", "updates", "v_ref", "vv_ref", "x")

    def __init__(self, t: float, x: np.ndarray, P: np.ndarray, *, has_range: bool,
                 has_elevation: bool):
        self.object_id = new_ulid()
        self.x, self.P, self.t = x, P, t
        self.first_seen = self.last_hit = t
        self.status = "tentative"
        self.hit_times: deque[float] = deque(maxlen=16)
        self.hit_times.append(t)
        self.updates = 1
        self.has_range, self.has_elevation = has_range, has_elevation
        self.radar_last_t: float | None = None
        self.acoustic_last_t: float | None = None
        self.f0_hz: float | None = None
        self.acoustic_score = 0.0
        self.acoustic_span_s = 0.0  # seconds of audio its bearings integrate (long averages)
        self.snr_db: float | None = None
        self.points: float | None = None
        self.manoeuvre: float | None = None
        self.t_ref: float | None = None
        self.v_ref = np.zeros(3)
        self.vv_ref = 0.0
        self.classification: Classification | None = None
        self.classified_t = -math.inf
        self.score = 0.0  # log-likelihood ratio: real object vs false measurements
        self.dup_since: float | None = None  # since when another track duplicates this one


def new_share(track: Track, t: float, span_s: float) -> float:
    """The share of a bearing at t not already in the track's last one, for bearings whose
    data spans span_s: 1 once they are span_s apart (or for the first)."""
    last = track.acoustic_last_t
    if last is None or span_s <= 0.0:
        return 1.0
    return min(max(t - last, 0.0) / span_s, 1.0)


def report(tr: Track, frame: LocalFrame, memory_s: float) -> State:
    """The agreed track state dict (SAPIENT DetectionReport-like)."""
    # Plain floats: numpy calls on 3-vectors cost more than the arithmetic.
    e, n, u, ve, vn, vu = tr.x.tolist()
    P = tr.P.tolist()
    p0, p1, p2 = P[0], P[1], P[2]
    # Bearing and its variance H P H' (H as kalman.bearing_jacobian: only e and n).
    rho2 = max(e * e + n * n, 1e-6)
    h0, h1 = n / rho2, -e / rho2
    az = math.atan2(e, n)
    az_err = math.degrees(math.sqrt(max(h0 * (h0 * p0[0] + h1 * p1[0])
                                        + h1 * (h0 * p0[1] + h1 * p1[1]), 0.0)))
    state: dict[str, Any] = {
        "object_id": tr.object_id,
        "status": tr.status,
        "t": round(tr.last_hit, 3),
        "first_seen": round(tr.first_seen, 3),
        "range_m": None,
        "azimuth_deg": {"value": round(math.degrees(az) % 360.0, 2),
                        "error": round(az_err, 2)},
        "elevation_deg": None,
        "location": None,
        "velocity_enu_mps": None,
        "speed_mps": None,
    }
    if tr.has_elevation:
        # As kalman.elevation_jacobian.
        rho = max(math.hypot(e, n), 1e-3)
        r2 = rho * rho + u * u
        g = (-u * e / (rho * r2), -u * n / (rho * r2), rho / r2)
        state["elevation_deg"] = {
            "value": round(math.degrees(math.atan2(u, rho)), 2),
            "error": round(math.degrees(math.sqrt(max(quadratic3(g, P), 0.0))), 2)}
    if tr.has_range:
        rng = math.sqrt(e * e + n * n + u * u)
        scale = max(rng, 1e-3)
        los = (e / scale, n / scale, u / scale)
        state["range_m"] = {"value": round(rng, 2),
                            "error": round(math.sqrt(max(quadratic3(los, P), 0.0)), 2)}
        lat, lon, alt = frame.to_geodetic(e, n, u)
        state["location"] = {"datum": "WGS84", "latitude_deg": round(lat, 7),
                             "longitude_deg": round(lon, 7), "altitude_m": round(alt, 2),
                             "error_m": round(math.sqrt(max(p0[0] + p1[1] + p2[2],
                                                            0.0)), 2)}
        state["velocity_enu_mps"] = {"east": round(ve, 2), "north": round(vn, 2),
                                     "up": round(vu, 2)}
        state["speed_mps"] = round(math.sqrt(ve * ve + vn * vn + vu * vu), 2)
    cls = tr.classification or classify(TrackFeatures())
    state["classification"] = cls.distribution
    state["evidence"] = cls.evidence
    last = tr.last_hit
    sensors = []
    if tr.radar_last_t is not None and last - tr.radar_last_t <= memory_s:
        sensors.append("radar")
    heard = tr.acoustic_last_t is not None and last - tr.acoustic_last_t <= \
        memory_s
    if heard:
        sensors.append("acoustic")
    state["sensors"] = sensors
    state["acoustic"] = ({"f0_hz": None if tr.f0_hz is None else round(tr.f0_hz, 1),
                          "score": round(tr.acoustic_score, 3)} if heard else None)
    state["updates"] = tr.updates
    return state


def merge_duplicates(tracks: list[Track], t: float, gate: dict[int, float], *,
                     coast_after_s: float, merge_after_s: float) -> None:
    """End a ranged track that another one duplicates: at once when it is tentative (a
    second plot of a known object), after `merge_after_s` when both are established (not
    just two objects passing). Duplicates share position and velocity; or share position
    while one of them gets no radar plots (the other takes the object's plots, and
    bearings alone keep the starved one alive, its velocity unobserved). The older id
    lives on, with the state of the track the radar feeds."""
    ranged = [tr for tr in tracks if tr.has_range and tr.status != "ended"]
    duplicated: set[int] = set()
    if len(ranged) < 2:
        for tr in ranged:
            tr.dup_since = None
        return
    # Screen in one pass: d' S^-1 d >= |d|^2 / trace(S), so pairs further apart than
    # that bound cannot pass the position gate and need no solve.
    pos = np.array([tr.x[:3] for tr in ranged])
    spread = np.array([trace(tr.P, 0, 3) for tr in ranged])
    apart2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(axis=2)
    near = apart2 < gate[6] * (spread[:, None] + spread[None, :])
    for i, j in zip(*np.nonzero(np.triu(near, 1)), strict=True):
        a, b = ranged[int(i)], ranged[int(j)]
        if a.status == "ended" or b.status == "ended":
            continue
        d = a.x - b.x
        try:
            d2 = float(d @ np.linalg.solve(a.P + b.P, d))
            d2_pos = float(d[:3] @ np.linalg.solve(a.P[:3, :3] + b.P[:3, :3], d[:3]))
        except np.linalg.LinAlgError:
            continue
        starved = any(tr.radar_last_t is None or t - tr.radar_last_t > coast_after_s
                      for tr in (a, b))
        if d2 >= gate[6] and not (starved and d2_pos < gate[3]):
            continue
        keep, drop = (a, b) if (a.first_seen, a.object_id) <= (b.first_seen,
                                                               b.object_id) else (b, a)
        if "tentative" in (a.status, b.status):
            if keep.status == "tentative" and drop.status != "tentative":
                keep, drop = drop, keep
            drop.status = "ended"
            continue
        duplicated.add(id(drop))
        if drop.dup_since is None:
            drop.dup_since = t
        elif t - drop.dup_since >= merge_after_s:
            if (drop.radar_last_t or -math.inf) > (keep.radar_last_t or -math.inf):
                take_radar_state(keep, drop)
            absorb(keep, drop)
    for tr in ranged:
        if id(tr) not in duplicated:
            tr.dup_since = None

def fuse_acoustic(tracks: list[Track], gate: dict[int, float]) -> None:
    """An acoustic-only track and a confirmed radar track on one bearing are one object:
    the older id lives on (a published one before a tentative one), with the radar's state
    and the acoustic evidence."""
    heard = [tr for tr in tracks if not tr.has_range and tr.status != "ended"]
    if not heard:
        return
    seen = [tr for tr in tracks
            if tr.has_range and tr.status in ("confirmed", "coasting")]
    pairs = []
    for a in heard:
        az_a, Ha = kalman.bearing_jacobian(a.x)
        for r in seen:
            az_r, Hr = kalman.bearing_jacobian(r.x)
            var = float(Ha @ a.P @ Ha) + float(Hr @ r.P @ Hr)
            nu = float(wrap_pi(az_a - az_r))
            if nu * nu < gate[1] * var:
                pairs.append((nu * nu / var, a, r))
    for _, a, r in sorted(pairs, key=lambda p: p[0]):
        if a.status == "ended" or r.status == "ended":
            continue
        keep, drop = (a, r) if (a.first_seen, a.object_id) <= (r.first_seen,
                                                               r.object_id) else (r, a)
        if keep.status == "tentative" and drop.status != "tentative":
            # The id the operators already see lives on: a tentative one was never published,
            # and ending a published track for it would flash a second drone for one step.
            keep, drop = drop, keep
        if keep is a:  # the acoustic track lives on: it takes the radar's state
            take_radar_state(a, r)
        absorb(keep, drop)

def take_radar_state(track: Track, source: Track) -> None:
    for name in ("x", "P", "t", "has_range", "has_elevation", "radar_last_t", "snr_db",
                 "points", "manoeuvre", "t_ref", "v_ref", "vv_ref"):
        setattr(track, name, getattr(source, name))

def absorb(keep: Track, drop: Track) -> None:
    """`keep` takes what `drop` knew that it did not; `drop` ends."""
    if drop.acoustic_last_t is not None and (keep.acoustic_last_t is None
                                             or drop.acoustic_last_t > keep.acoustic_last_t):
        keep.acoustic_last_t, keep.f0_hz = drop.acoustic_last_t, drop.f0_hz
        keep.acoustic_score = drop.acoustic_score
    if keep.radar_last_t is None and drop.radar_last_t is not None:
        keep.radar_last_t, keep.snr_db, keep.points = (drop.radar_last_t, drop.snr_db,
                                                       drop.points)
    keep.first_seen = min(keep.first_seen, drop.first_seen)
    keep.last_hit = max(keep.last_hit, drop.last_hit)
    keep.updates += drop.updates
    keep.score = max(keep.score, drop.score)
    if "confirmed" in (keep.status, drop.status):
        keep.status = "confirmed"
    drop.status = "ended"
