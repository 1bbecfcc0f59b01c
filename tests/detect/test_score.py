"""Scoring tracks against the twin's ground truth: Pd, false tracks, bearing error, id swaps,
time to first detection."""

from __future__ import annotations

import math

import pytest

from edgenode.detect.score import (
    TrackReport,
    format_table,
    reports_from_events,
    reports_from_polls,
    score_run,
    truth_samples,
)

T0 = 1_800_000_000.0


def truth_line(t: float, target: str, bearing: float, range_m: float = 40.0,
               kind: str = "quad") -> dict:
    return {"t": T0 + t, "sim_t": t, "id": target, "kind": kind, "enu_m": [0, 0, 0],
            "range_m": range_m, "bearing_deg": bearing, "elevation_deg": 10.0}


def state(oid: str, t: float, bearing: float, *, status: str = "confirmed",
          range_m: float | None = 40.0, cls: str = "drone") -> dict:
    return {"object_id": oid, "status": status, "t": T0 + t,
            "azimuth_deg": {"value": bearing % 360.0, "error": 1.0},
            "range_m": None if range_m is None else {"value": range_m, "error": 0.5},
            "elevation_deg": {"value": 10.0, "error": 2.0}, "velocity_enu_mps": None,
            "classification": [{"type": cls, "confidence": 0.9},
                               {"type": "unknown", "confidence": 0.1}],
            "sensors": ["radar"]}


def report(oid: str, t: float, bearing: float, **kw: object) -> TrackReport:
    return TrackReport(T0 + t, oid, False, state(oid, t, bearing, **kw))  # type: ignore[arg-type]


def ended(oid: str, t: float, bearing: float) -> TrackReport:
    return TrackReport(T0 + t, oid, True, state(oid, t, bearing))


def crossing_truth(seconds: int = 20) -> list[dict]:
    """Drone a sweeps 300 -> 340 degrees, drone b 340 -> 300, crossing at 10 s."""
    lines = []
    for k in range(seconds * 2):
        t = 0.5 * k
        lines.append(truth_line(t, "a", 300.0 + 2.0 * t))
        lines.append(truth_line(t, "b", 340.0 - 2.0 * t))
    return lines


def test_a_target_tracked_all_along_has_pd_one_and_its_bearing_error_rms() -> None:
    truth = truth_samples([truth_line(0.5 * k, "a", 100.0) for k in range(20)]
                          + [{"t": T0 + 3.0, "radiating": True}])  # jammer records skipped
    reports = [report("T1", 0.5 * k, 100.0 + (2.0 if k % 2 else -2.0)) for k in range(20)]
    score = score_run(truth, reports)
    target = score.targets["a"]
    assert target.pd == 1.0
    assert target.bearing_rms_deg == pytest.approx(2.0)
    assert target.first_detection_s == 0.0
    assert score.false_tracks == [] and score.id_swaps == 0
    assert target.class_right == target.detected  # a quad tracked as a drone


def test_pd_counts_the_time_a_track_is_held_and_first_detection_its_delay() -> None:
    truth = truth_samples([truth_line(0.5 * k, "a", 100.0) for k in range(20)])
    # Confirmed from 5 s on; tentative before that does not count.
    reports = [report("T1", 0.5 * k, 100.0, status="tentative") for k in range(4, 10)]
    reports += [report("T1", 0.5 * k, 100.0) for k in range(10, 20)]
    score = score_run(truth, reports)
    assert score.targets["a"].pd == pytest.approx(0.5)
    assert score.targets["a"].first_detection_s == pytest.approx(5.0)
    # At 4x the twin ran 4 scenario seconds per wall second: times are in scenario seconds.
    assert score_run(truth, reports, time_scale=4.0).targets["a"].first_detection_s == 20.0


def test_a_track_far_off_the_truth_bearing_or_range_is_a_false_track() -> None:
    truth = truth_samples([truth_line(0.5 * k, "a", 100.0, range_m=80.0) for k in range(20)])
    off_bearing = [report("FAR", 0.5 * k, 130.0) for k in range(20)]
    # On the bearing, but a clutter track by the mast: not the drone 80 m out.
    near_mast = [report("NEAR", 0.5 * k, 101.0, range_m=3.0, cls="clutter") for k in range(20)]
    score = score_run(truth, sorted(off_bearing + near_mast, key=lambda r: r.t))
    assert score.targets["a"].pd == 0.0
    assert {f["object_id"] for f in score.false_tracks} == {"FAR", "NEAR"}
    assert score.false_drone_tracks == 1
    # Two false tracks in 9.5 s of truth.
    assert score.false_tracks_per_hour == pytest.approx(2 * 3600 / 9.5)


def test_bearing_only_tracks_are_gated_on_bearing_alone() -> None:
    truth = truth_samples([truth_line(0.5 * k, "a", 10.0, range_m=140.0) for k in range(10)])
    reports = [report("AC", 0.5 * k, 13.0, range_m=None) for k in range(10)]
    score = score_run(truth, reports)
    assert score.targets["a"].pd == 1.0
    assert score.targets["a"].bearing_rms_deg == pytest.approx(3.0)


def test_bearing_error_wraps_through_north() -> None:
    truth = truth_samples([truth_line(0.5 * k, "a", 359.0) for k in range(4)])
    score = score_run(truth, [report("N", 0.5 * k, 1.0) for k in range(4)])
    assert score.targets["a"].bearing_rms_deg == pytest.approx(2.0)


def test_ids_kept_through_a_crossing_score_no_swap() -> None:
    truth = truth_samples(crossing_truth())
    reports = []
    for k in range(40):
        t = 0.5 * k
        reports += [report("A", t, 300.0 + 2.0 * t), report("B", t, 340.0 - 2.0 * t)]
    score = score_run(truth, reports)
    assert score.id_swaps == 0
    assert [score.targets[x].track_ids for x in "ab"] == [["A"], ["B"]]


def test_ids_exchanged_at_a_crossing_are_two_swaps() -> None:
    truth = truth_samples(crossing_truth())
    reports = []
    for k in range(40):
        t = 0.5 * k
        a, b = ("A", "B") if t < 10.0 else ("B", "A")  # the tracker exchanged them
        reports += [report(a, t, 300.0 + 2.0 * t), report(b, t, 340.0 - 2.0 * t)]
    score = score_run(truth, reports)
    assert score.id_swaps == 2
    assert score.targets["a"].id_changes == 1 and score.targets["a"].id_swaps == 1


def test_at_a_crossing_ranges_tell_the_targets_apart_where_bearings_cannot() -> None:
    """Two drones cross at 35 and 41 m: for a moment their bearings differ by less than the
    tracks' bearing noise, but each track's range still names its drone (no swap)."""
    lines, reports = [], []
    for k in range(20):
        t = 0.5 * k
        lines += [truth_line(t, "a", 10.0 + t - 2.5, range_m=35.0),
                  truth_line(t, "b", 10.1 - t + 2.5, range_m=41.0)]
        noise = 0.15 if k == 5 else 0.0  # at the crossing the near track reads 0.15 deg high
        reports += [report("NEAR", t, 10.0 + t - 2.5 + noise, range_m=35.0),
                    report("FAR", t, 10.1 - t + 2.5 - 0.1 * (k == 5), range_m=41.0)]
    score = score_run(truth_samples(lines), reports)
    assert score.id_swaps == 0
    assert [score.targets[x].track_ids for x in "ab"] == [["NEAR"], ["FAR"]]


def test_a_lost_and_refound_target_is_an_id_change_but_not_a_swap() -> None:
    truth = truth_samples([truth_line(0.5 * k, "a", 50.0) for k in range(20)])
    reports = [report("OLD", 0.5 * k, 50.0) for k in range(6)]
    reports += [TrackReport(T0 + 3.0, "OLD", True, state("OLD", 3.0, 50.0, status="ended"))]
    reports += [report("NEW", 0.5 * k, 50.0) for k in range(10, 20)]
    score = score_run(truth, reports)
    target = score.targets["a"]
    assert (target.id_changes, target.id_swaps, len(target.track_ids)) == (1, 0, 2)
    assert target.pd == pytest.approx(16 / 20)  # 0 to 2.5 s, ended at 3 s, again from 5 s


def test_a_stale_track_is_held_only_briefly() -> None:
    truth = truth_samples([truth_line(0.5 * k, "a", 50.0) for k in range(20)])
    score = score_run(truth, [report("ONCE", 0.0, 50.0)], hold_s=1.5)
    assert score.targets["a"].detected == 4  # 0, 0.5, 1.0, 1.5 s


def test_reports_come_from_link_payloads_and_from_status_polls() -> None:
    payloads = [
        {"v": 1, "type": "new", "object_id": "X", "t": T0 + 1.0, "before": None,
         "after": state("X", 0.9, 10.0)},
        {"v": 1, "type": "gap", "dropped": {}},
        {"v": 1, "type": "end", "object_id": "X", "t": T0 + 5.0,
         "before": state("X", 0.9, 10.0), "after": state("X", 2.0, 12.0, status="ended")}]
    reports = reports_from_events(payloads)
    assert [(r.object_id, r.ended, r.t) for r in reports] == [("X", False, T0 + 1.0),
                                                              ("X", True, T0 + 5.0)]
    polls = [(T0 + 1.0, [state("X", 1.0, 10.0)]), (T0 + 2.0, [])]
    assert [(r.object_id, r.ended) for r in reports_from_polls(polls)] == [("X", False),
                                                                           ("X", True)]


def test_table_names_targets_and_false_tracks() -> None:
    truth = truth_samples([truth_line(0.5 * k, "drone-1", 80.0) for k in range(10)])
    reports = [report("T1", 0.5 * k, 80.5) for k in range(10)]
    reports += [report("JUNK", 0.5 * k, 200.0, range_m=2.0, cls="bird") for k in range(3)]
    score = score_run(truth, sorted(reports, key=lambda r: r.t))
    table = format_table(score)
    assert "drone-1" in table and "JUNK" in table and "bird" in table
    d = score.as_dict()
    assert d["pd"] == 1.0 and d["false_tracks"] == 1 and math.isclose(d["bearing_rms_deg"], 0.5)


def test_a_duplicate_track_on_a_tracked_target_is_redundant_not_false() -> None:
    truth = truth_samples([truth_line(0.5 * k, "a", 100.0) for k in range(20)])
    held = [report("T1", 0.5 * k, 100.0) for k in range(20)]
    # A second track of the same drone, a little off, for a few seconds: a split.
    split = [report("DUP", 0.5 * k, 103.0) for k in range(4, 10)]
    score = score_run(truth, sorted(held + split, key=lambda r: r.t))
    assert score.targets["a"].track_ids == ["T1"]
    assert score.targets["a"].redundant_ids == ["DUP"]
    assert score.false_tracks == [] and score.false_drone_tracks == 0
    assert score.targets["a"].as_dict()["redundant_tracks"] == 1


def test_a_split_that_lived_between_two_truth_samples_is_judged_at_its_reports() -> None:
    truth = truth_samples([truth_line(0.5 * k, "a", 100.0 + k) for k in range(20)])
    held = [report("T1", 0.5 * k, 100.0 + k) for k in range(20)]
    # Confirmed at 2.1 s and ended at 2.3 s: no truth sample saw it live.
    split = [report("DUP", 2.1, 104.2), ended("DUP", 2.3, 104.6)]
    ghost = [report("FAR", 2.1, 200.0), ended("FAR", 2.3, 200.0)]
    score = score_run(truth, sorted(held + split + ghost, key=lambda r: r.t))
    assert score.targets["a"].redundant_ids == ["DUP"]
    assert [f["object_id"] for f in score.false_tracks] == ["FAR"]
    assert score.false_tracks[0]["reports"] == 1


def test_a_split_before_the_first_truth_sample_in_the_window_is_judged_against_the_one_before(
        ) -> None:
    # The window opens at 1.1 s (the daemon answered); the split lived from 1.15 to 1.4 s, after
    # the window opened but before its first truth sample (1.5 s): the sample at 1.0 s, outside
    # the window, places the target there.
    truth = truth_samples([truth_line(0.5 * k, "a", 100.0 + k) for k in range(20)])
    held = [report("T1", 0.5 * k, 100.0 + k) for k in range(3, 20)]
    split = [report("DUP", 1.15, 102.3), ended("DUP", 1.4, 102.8)]
    score = score_run(truth, sorted(held + split, key=lambda r: r.t),
                       t_start=T0 + 1.1)
    assert score.targets["a"].redundant_ids == ["DUP"]
    assert score.false_tracks == []
