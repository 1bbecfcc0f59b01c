"""Scoring the daemon's tracks against the digital twin's ground truth. Pure: no I/O.

Inputs are what the twin and the daemon already write:
- truth: the twin's truth.jsonl records with a target `id` (`t` wall-clock unix s, `kind`,
  `range_m`, `bearing_deg`, `elevation_deg`, seen from the array on the mast);
- reports: track states over time, from the daemon's track events (`new`/`update`/`end`,
  each with the state `after`) or from polls of its control socket.

At every truth sample the confirmed tracks alive then (their last state, moved on along its
velocity for at most `hold_s`) are assigned to the targets alive then by global nearest
neighbour (on bearing, and on range where the track has one), within `gate_deg` of bearing
and, where a track has a range, within `range_gate_frac` of the true range (a gate in
bearing alone would let a clutter track near the mast stand in for a drone far behind it).
From that assignment:
- probability of detection: fraction of a target's truth samples with a track assigned;
- false tracks per hour: confirmed tracks never assigned to any target, per hour of truth;
- bearing error RMS over the assigned samples (all, and per target);
- id changes: a target's assigned track id changes; an id swap when the new id had been
  assigned to another target before (the tracker exchanged two objects);
- time to first detection: from a target's first truth sample to its first assignment.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

# The class a track on a target of this kind should carry.
EXPECTED_CLASS = {"quad": "drone", "fixed-wing": "drone", "bird": "bird", "car": "vehicle"}
LIVE_STATUSES = ("confirmed", "coasting")
_FAR = 1e9


@dataclass(frozen=True)
class TruthSample:
    t: float  # unix s, the daemon's clock
    id: str
    kind: str
    range_m: float
    bearing_deg: float  # true bearing from the array, clockwise from north
    elevation_deg: float


@dataclass(frozen=True)
class TrackReport:
    t: float  # when the report was made (event or poll time), unix s
    object_id: str
    ended: bool
    state: dict[str, Any]  # the agreed track state


@dataclass
class TargetScore:
    id: str
    kind: str
    samples: int = 0
    detected: int = 0
    first_t: float = math.nan
    first_detection_s: float | None = None
    bearing_errors: list[float] = field(default_factory=list)
    track_ids: list[str] = field(default_factory=list)  # in order of first assignment
    # Confirmed tracks that sat on this target (inside its gates) while another track held
    # it, and never held it themselves: a split of one object, not a false alarm.
    redundant_ids: list[str] = field(default_factory=list)
    id_changes: int = 0
    id_swaps: int = 0
    class_right: int = 0
    min_range_m: float = math.inf
    max_detected_range_m: float | None = None

    @property
    def pd(self) -> float:
        return self.detected / self.samples if self.samples else 0.0

    @property
    def bearing_rms_deg(self) -> float | None:
        if not self.bearing_errors:
            return None
        return math.sqrt(sum(e * e for e in self.bearing_errors) / len(self.bearing_errors))

    @property
    def bearing_median_abs_deg(self) -> float | None:
        return float(np.median(np.abs(self.bearing_errors))) if self.bearing_errors else None

    def as_dict(self) -> dict[str, Any]:
        rms = self.bearing_rms_deg
        median = self.bearing_median_abs_deg
        return {"id": self.id, "kind": self.kind, "samples": self.samples,
                "pd": round(self.pd, 3),
                "first_detection_s": None if self.first_detection_s is None
                else round(self.first_detection_s, 2),
                "bearing_rms_deg": None if rms is None else round(rms, 2),
                "bearing_median_abs_deg": None if median is None else round(median, 2),
                "tracks": len(self.track_ids), "redundant_tracks": len(self.redundant_ids),
                "id_changes": self.id_changes,
                "id_swaps": self.id_swaps,
                "class_right": round(self.class_right / self.detected, 3) if self.detected
                else None,
                "max_detected_range_m": None if self.max_detected_range_m is None
                else round(self.max_detected_range_m, 1)}


@dataclass
class Score:
    duration_s: float
    targets: dict[str, TargetScore]
    confirmed_tracks: int
    # {object_id, class, first_t, reports, last_t, range_m, bearing_deg, sensors}: bearing and
    # range of the last confirmed report in the window
    false_tracks: list[dict[str, Any]]
    false_drone_tracks: int

    @property
    def false_tracks_per_hour(self) -> float:
        hours = self.duration_s / 3600.0
        return len(self.false_tracks) / hours if hours > 0 else 0.0

    @property
    def bearing_rms_deg(self) -> float | None:
        errors = [e for s in self.targets.values() for e in s.bearing_errors]
        if not errors:
            return None
        return math.sqrt(sum(e * e for e in errors) / len(errors))

    @property
    def id_swaps(self) -> int:
        return sum(s.id_swaps for s in self.targets.values())

    def as_dict(self) -> dict[str, Any]:
        rms = self.bearing_rms_deg
        samples = sum(s.samples for s in self.targets.values())
        detected = sum(s.detected for s in self.targets.values())
        return {"duration_s": round(self.duration_s, 2),
                "pd": round(detected / samples, 3) if samples else None,
                "false_tracks": len(self.false_tracks),
                "false_tracks_per_hour": round(self.false_tracks_per_hour, 1),
                "false_drone_tracks": self.false_drone_tracks,
                "confirmed_tracks": self.confirmed_tracks,
                "bearing_rms_deg": None if rms is None else round(rms, 2),
                "id_changes": sum(s.id_changes for s in self.targets.values()),
                "id_swaps": self.id_swaps,
                "targets": [s.as_dict() for s in self.targets.values()],
                "false": self.false_tracks}


# ---------------------------------------------------------------- inputs

def truth_samples(records: Iterable[dict[str, Any]]) -> list[TruthSample]:
    """Target positions from truth.jsonl records; other records (jammer, faults) skipped."""
    out = []
    for r in records:
        if "id" not in r or "bearing_deg" not in r or "t" not in r:
            continue
        out.append(TruthSample(float(r["t"]), str(r["id"]), str(r.get("kind", "")),
                               float(r["range_m"]), float(r["bearing_deg"]),
                               float(r.get("elevation_deg", 0.0))))
    out.sort(key=lambda s: s.t)
    return out


def reports_from_events(events: Iterable[dict[str, Any]]) -> list[TrackReport]:
    """Track reports from track events: the link's MQTT payloads (with their `t`) or the
    tracker's bare events (then the state's own time). Gap records are skipped."""
    out = []
    for ev in events:
        kind = ev.get("type")
        if kind not in ("new", "update", "end"):
            continue
        state = ev.get("after") or ev.get("before")
        if not isinstance(state, dict):
            continue
        t = ev.get("t", state.get("t"))
        out.append(TrackReport(float(t), str(ev["object_id"]), kind == "end", state))
    out.sort(key=lambda r: r.t)
    return out


def reports_from_polls(polls: Iterable[tuple[float, list[dict[str, Any]]]]) -> list[TrackReport]:
    """Track reports from (poll time, the tracker's states) pairs; a track missing from a
    later poll has ended by then."""
    out: list[TrackReport] = []
    live: dict[str, dict[str, Any]] = {}
    for t, states in sorted(polls, key=lambda p: p[0]):
        seen = set()
        for s in states:
            seen.add(s["object_id"])
            live[s["object_id"]] = s
            out.append(TrackReport(t, s["object_id"], s.get("status") == "ended", s))
        for gone in [oid for oid in live if oid not in seen]:
            out.append(TrackReport(t, gone, True, live.pop(gone)))
    return out


# ---------------------------------------------------------------- geometry

def _wrap(deg: float) -> float:
    return (deg + 180.0) % 360.0 - 180.0


def _state_at(state: dict[str, Any], t_state: float, t: float) -> tuple[float, float | None]:
    """(bearing deg, range m or None) of a state moved on to time t along its velocity."""
    bearing = float(state["azimuth_deg"]["value"])
    rng = state.get("range_m")
    vel = state.get("velocity_enu_mps")
    if rng is None:
        return bearing, None
    r = float(rng["value"])
    dt = t - t_state
    if vel is None or dt <= 0.0:
        return bearing, r
    el = math.radians((state.get("elevation_deg") or {"value": 0.0})["value"])
    az = math.radians(bearing)
    h = r * math.cos(el)
    e = h * math.sin(az) + vel["east"] * dt
    n = h * math.cos(az) + vel["north"] * dt
    u = r * math.sin(el) + vel["up"] * dt
    return math.degrees(math.atan2(e, n)) % 360.0, math.sqrt(e * e + n * n + u * u)


def _truth_at(truth: list[TruthSample], t: float,
              max_gap_s: float = 2.0) -> dict[str, tuple[float, float]]:
    """Each target's (bearing, range) at time t, linear between the truth samples around it
    (no further than `max_gap_s` apart)."""
    before: dict[str, TruthSample] = {}
    after: dict[str, TruthSample] = {}
    for s in truth:
        if s.t <= t:
            before[s.id] = s
        elif s.id not in after:
            after[s.id] = s
    out = {}
    for sid, a in before.items():
        b = after.get(sid)
        if b is None or b.t - a.t > max_gap_s:
            if t - a.t <= 1e-9:
                out[sid] = (a.bearing_deg, a.range_m)
            continue
        w = (t - a.t) / (b.t - a.t)
        out[sid] = ((a.bearing_deg + w * _wrap(b.bearing_deg - a.bearing_deg)) % 360.0,
                    a.range_m + w * (b.range_m - a.range_m))
    return out


def _miss_deg(bearing_err: float, rng: float | None, true_range: float) -> float:
    """How far a track state misses a target, as the angle its miss subtends from the mast:
    the bearing error, and where the track has a range its range error too. Where two
    targets cross the bearing alone cannot tell them apart (they share it), their ranges can:
    on bearing alone a 0.01 deg difference once assigned two kept tracks crosswise."""
    if rng is None or true_range <= 0.0:
        return bearing_err
    return math.hypot(bearing_err, math.degrees(abs(rng - true_range) / true_range))


def _top_class(state: dict[str, Any]) -> str:
    cls = state.get("classification") or [{"type": "unknown"}]
    return str(cls[0]["type"])


# ---------------------------------------------------------------- scoring

@dataclass
class _Live:
    state: dict[str, Any]
    t: float  # the report's time


def score_run(truth: list[TruthSample], reports: list[TrackReport], *,
              gate_deg: float = 10.0, range_gate_frac: float = 0.5,
              range_gate_min_m: float = 10.0, hold_s: float = 1.5,
              t_start: float | None = None, t_end: float | None = None,
              time_scale: float = 1.0) -> Score:
    """Score reports against truth over [t_start, t_end] (default: the truth's span).

    `time_scale`: scenario seconds per second of the clocks in truth and reports (the twin's
    --speed); durations and times to detection are given in scenario seconds."""
    if t_start is None:
        t_start = truth[0].t if truth else 0.0
    if t_end is None:
        t_end = truth[-1].t if truth else t_start
    everywhere = truth  # the samples around the window too, to interpolate at its edges
    truth = [s for s in truth if t_start <= s.t <= t_end]
    targets: dict[str, TargetScore] = {}
    for s in truth:
        if s.id not in targets:
            targets[s.id] = TargetScore(s.id, s.kind, first_t=s.t)
    owner: dict[str, str] = {}  # track id -> the target it was last assigned to
    assigned_ever: set[str] = set()
    confirmed: dict[str, dict[str, Any]] = {}  # every confirmed track: its last state
    first_confirmed_t: dict[str, float] = {}
    span: dict[str, list[float]] = {}  # track id -> [reports in the window, last report t]
    live: dict[str, _Live] = {}
    last_track: dict[str, str] = {}  # target -> its last assigned track
    gated: dict[str, str] = {}  # track id -> a target it sat on (inside the gates)
    history: dict[str, list[tuple[float, dict[str, Any]]]] = {}  # confirmed reports

    def in_gate(bearing: float, rng: float | None, true_bearing: float,
                true_range: float) -> float | None:
        """The bearing error when a track state sits on a target (inside both gates)."""
        err = abs(_wrap(bearing - true_bearing))
        if err > gate_deg:
            return None
        if rng is not None and abs(rng - true_range) > max(range_gate_min_m,
                                                           range_gate_frac * true_range):
            return None
        return err

    k = 0
    times = sorted({s.t for s in truth})
    by_time: dict[float, list[TruthSample]] = {}
    for s in truth:
        by_time.setdefault(s.t, []).append(s)

    def take(report: TrackReport) -> None:
        status = report.state.get("status")
        if report.ended or status == "ended":
            live.pop(report.object_id, None)
            return
        if status in LIVE_STATUSES:
            live[report.object_id] = _Live(report.state, report.t)
            if t_start <= report.t <= t_end + hold_s:
                confirmed[report.object_id] = report.state
                first_confirmed_t.setdefault(report.object_id, report.t)
                seen = span.setdefault(report.object_id, [0, report.t])
                seen[0], seen[1] = seen[0] + 1, report.t
                history.setdefault(report.object_id, []).append((report.t, report.state))
        else:
            live.pop(report.object_id, None)

    for t in times:
        while k < len(reports) and reports[k].t <= t:
            take(reports[k])
            k += 1
        tracks = [(oid, lv) for oid, lv in live.items() if t - lv.t <= hold_s]
        here = by_time[t]
        for s in here:
            targets[s.id].samples += 1
            targets[s.id].min_range_m = min(targets[s.id].min_range_m, s.range_m)
        if not tracks:
            continue
        cost = np.full((len(here), len(tracks)), _FAR)
        for i, s in enumerate(here):
            for j, (_, lv) in enumerate(tracks):
                bearing, rng = _state_at(lv.state, float(lv.state.get("t", lv.t)), t)
                err = in_gate(bearing, rng, s.bearing_deg, s.range_m)
                if err is None:
                    continue
                cost[i, j] = _miss_deg(err, rng, s.range_m)
                gated.setdefault(tracks[j][0], s.id)
        rows, cols = linear_sum_assignment(cost)
        for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
            if cost[i, j] >= _FAR:
                continue
            s, (oid, lv) = here[i], tracks[j]
            ts = targets[s.id]
            ts.detected += 1
            if ts.first_detection_s is None:
                ts.first_detection_s = (t - ts.first_t) * time_scale
            bearing, _ = _state_at(lv.state, float(lv.state.get("t", lv.t)), t)
            ts.bearing_errors.append(_wrap(bearing - s.bearing_deg))
            ts.max_detected_range_m = max(ts.max_detected_range_m or 0.0, s.range_m)
            if _top_class(lv.state) == EXPECTED_CLASS.get(s.kind, "unknown"):
                ts.class_right += 1
            previous = last_track.get(s.id)
            if previous is not None and previous != oid:
                ts.id_changes += 1
                if owner.get(oid, s.id) != s.id:
                    ts.id_swaps += 1
            if oid not in ts.track_ids:
                ts.track_ids.append(oid)
            last_track[s.id] = oid
            owner[oid] = s.id
            assigned_ever.add(oid)
    while k < len(reports) and reports[k].t <= t_end + hold_s:
        take(reports[k])
        k += 1

    # A track whose whole confirmed life fell between two truth samples (a split that
    # ended within one sample period) is judged at its own report times, against the truth
    # interpolated there (from the samples on both sides, also those just outside the window).
    for oid, reports_of in history.items():
        if oid in assigned_ever or oid in gated:
            continue
        for t, state in reports_of:
            hit = next((sid for sid, (tb, tr) in _truth_at(everywhere, t).items()
                        if in_gate(*_state_at(state, float(state.get("t", t)), t), tb, tr)
                        is not None), None)
            if hit is not None:
                gated[oid] = hit
                break
    false_tracks = []
    for oid, state in confirmed.items():
        if oid in assigned_ever:
            continue
        if oid in gated:
            targets[gated[oid]].redundant_ids.append(oid)
            continue
        rng = state.get("range_m")
        false_tracks.append({"object_id": oid, "class": _top_class(state),
                             "first_t": round(first_confirmed_t[oid], 3),
                             "reports": span[oid][0],
                             "last_t": round(span[oid][1], 3),
                             "bearing_deg": state["azimuth_deg"]["value"],
                             "range_m": None if rng is None else rng["value"],
                             "sensors": state.get("sensors", [])})
    false_drone = sum(1 for f in false_tracks if f["class"] == "drone")
    return Score(duration_s=max(t_end - t_start, 0.0) * time_scale, targets=targets,
                 confirmed_tracks=len(confirmed), false_tracks=false_tracks,
                 false_drone_tracks=false_drone)


def drone_tracks(reports: list[TrackReport]) -> set[str]:
    """Ids of the tracks that were ever reported confirmed with drone as their top class."""
    return {r.object_id for r in reports
            if r.state.get("status") in LIVE_STATUSES and _top_class(r.state) == "drone"}


def format_table(score: Score) -> str:
    """The score as a table a person reads."""
    d = score.as_dict()
    lines = [f"{'target':14s} {'kind':10s} {'Pd':>5s} {'first s':>7s} {'brg rms':>7s} "
             f"{'tracks':>6s} {'id chg':>6s} {'swaps':>5s} {'class ok':>8s} {'max rng':>7s}"]
    for t in d["targets"]:
        first = "-" if t["first_detection_s"] is None else f"{t['first_detection_s']:.1f}"
        rms = "-" if t["bearing_rms_deg"] is None else f"{t['bearing_rms_deg']:.2f}"
        ok = "-" if t["class_right"] is None else f"{t['class_right']:.2f}"
        far = "-" if t["max_detected_range_m"] is None else f"{t['max_detected_range_m']:.0f}"
        lines.append(f"{t['id']:14s} {t['kind']:10s} {t['pd']:5.2f} {first:>7s} {rms:>7s} "
                     f"{t['tracks']:6d} {t['id_changes']:6d} {t['id_swaps']:5d} {ok:>8s} "
                     f"{far:>7s}")
    rms = "-" if d["bearing_rms_deg"] is None else f"{d['bearing_rms_deg']:.2f} deg"
    pd = "-" if d["pd"] is None else f"{d['pd']:.2f}"
    lines.append(f"over {d['duration_s']:.0f} s: Pd {pd}, bearing RMS {rms}, "
                 f"{d['confirmed_tracks']} confirmed tracks, {d['false_tracks']} false "
                 f"({d['false_tracks_per_hour']:.0f}/h, {d['false_drone_tracks']} drone), "
                 f"id swaps {d['id_swaps']}")
    for f in d["false"]:
        rng = "-" if f["range_m"] is None else f"{f['range_m']:.0f} m"
        lines.append(f"  false {f['object_id']} {f['class']:8s} bearing "
                     f"{f['bearing_deg']:6.1f} range {rng} ({'+'.join(f['sensors'])})")
    return "\n".join(lines)
