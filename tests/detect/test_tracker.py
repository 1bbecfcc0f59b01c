"""Tracker: lifecycle, crossing targets, acoustic-only tracks and fusion, the state dict."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from edgenode.detect.geo import LocalFrame
from edgenode.detect.plots import Plot, RadarPlotter
from edgenode.detect.tracker import Tracker
from edgenode.detect.types import AcousticBearing
from edgenode.ulid import ulid_time_s
from tests.detect.test_plots import frame_of, radar_points

T0 = 1_700_000_000.0
SITE = {"latitude_deg": 57.0, "longitude_deg": 12.0, "altitude_m": 20.0,
        "mast_heading_deg": 0.0}


def noisy_plot(t: float, position: np.ndarray, velocity: np.ndarray, rng: np.random.Generator,
               *, range_error_m: float = 0.1, azimuth_error_deg: float = 1.0,
               elevation_error_deg: float = 1.5, snr_db: float = 18.0, points: int = 3) -> Plot:
    """A radar plot of an object at an ENU position, with errors as the plotter reports."""
    e, n, u = position
    rng_m = float(np.linalg.norm(position)) + rng.normal(0.0, range_error_m)
    az = math.atan2(e, n) + math.radians(rng.normal(0.0, azimuth_error_deg))
    el = math.atan2(u, math.hypot(e, n)) + math.radians(rng.normal(0.0, elevation_error_deg))
    horizontal = rng_m * math.cos(el)
    east, north, up = horizontal * math.sin(az), horizontal * math.cos(az), rng_m * math.sin(el)
    radial = float(velocity @ position) / float(np.linalg.norm(position))
    return Plot(t=t, range_m=rng_m, range_error_m=range_error_m, azimuth_node_deg=0.0,
                azimuth_deg=math.degrees(az) % 360.0, azimuth_error_deg=azimuth_error_deg,
                elevation_deg=math.degrees(el), elevation_error_deg=elevation_error_deg,
                radial_speed_mps=radial + rng.normal(0.0, 0.1), snr_db=snr_db,
                point_count=points, east_m=east, north_m=north, up_m=up, height_m=up + 3.0)


def bearing(t: float, position: np.ndarray, rng: np.random.Generator, *, error_deg: float = 2.0,
            f0_hz: float = 180.0, score: float = 0.9, elevation: bool = True) -> AcousticBearing:
    e, n, u = position
    return AcousticBearing(
        t=t, azimuth_deg=(math.degrees(math.atan2(e, n)) + rng.normal(0.0, error_deg)) % 360.0,
        elevation_deg=(math.degrees(math.atan2(u, math.hypot(e, n))) + rng.normal(0, error_deg)
                       if elevation else None),
        error_deg=error_deg, f0_hz=f0_hz, score=score)


def nearest(states: list[dict], position: np.ndarray) -> dict:
    def distance(s: dict) -> float:
        loc = LocalFrame(57.0, 12.0, 20.0).to_enu(s["location"]["latitude_deg"],
                                                  s["location"]["longitude_deg"],
                                                  s["location"]["altitude_m"])
        return float(np.linalg.norm(np.array(loc) - position))
    return min(states, key=distance)


def test_a_target_is_confirmed_updated_at_most_twice_a_second_coasts_and_ends() -> None:
    rng = np.random.default_rng(1)
    tracker = Tracker(**SITE)
    pos, vel = np.array([-30.0, 80.0, 25.0]), np.array([4.0, -1.0, 0.0])
    events = []
    for k in range(60):  # 6 s at 10 Hz
        t = T0 + 0.1 * k
        events += [(t, e) for e in tracker.update(t, [noisy_plot(t, pos + vel * 0.1 * k, vel,
                                                                  rng)], [])]
    types = [e["type"] for _, e in events]
    assert types[0] == "new" and types.count("new") == 1
    new = events[0][1]
    assert new["before"] is None and new["after"]["status"] == "confirmed"
    assert new["after"]["updates"] == 3  # M = 3 measurements confirm
    updates = [t for t, e in events if e["type"] == "update"]
    per_second = np.histogram(updates, bins=np.arange(T0, T0 + 7.0, 1.0))[0]
    assert per_second.max() <= 2 + 1  # 2 a second, plus a class change going out at once
    assert len(updates) >= 8
    # The target vanishes: coasting, then ended, each announced at once.
    for k in range(60, 110):
        t = T0 + 0.1 * k
        events += [(t, e) for e in tracker.update(t, [], [])]
    statuses = [e["after"]["status"] for _, e in events]
    assert statuses[-2:] == ["coasting", "ended"]
    end = events[-1][1]
    assert end["type"] == "end" and end["before"]["status"] == "coasting"
    assert end["object_id"] == new["object_id"]
    assert tracker.tracks() == []
    last = end["after"]
    assert last["speed_mps"] == pytest.approx(math.hypot(4.0, 1.0), abs=0.8)
    assert last["velocity_enu_mps"]["east"] == pytest.approx(4.0, abs=0.8)


def test_two_drones_crossing_keep_their_ids_through_merged_plots() -> None:
    for seed in range(5):
        rng = np.random.default_rng(seed)
        tracker = Tracker(**SITE)
        a0, va = np.array([-48.0, 48.0, 15.0]), np.array([6.0, 1.5, 0.0])
        b0, vb = np.array([-48.0, 72.0, 15.0]), np.array([6.0, -1.5, 0.0])  # cross at 8 s
        ids_before: tuple[str, str] | None = None
        for k in range(160):
            t = T0 + 0.1 * k
            a, b = a0 + va * 0.1 * k, b0 + vb * 0.1 * k
            if np.linalg.norm(a - b) < 2.0:  # one plot for both: the radar cannot split them
                plots = [noisy_plot(t, (a + b) / 2, (va + vb) / 2, rng)]
            else:
                plots = [noisy_plot(t, a, va, rng), noisy_plot(t, b, vb, rng)]
            tracker.update(t, plots, [])
            if k == 40:
                states = tracker.tracks()
                assert len(states) == 2
                ids_before = (nearest(states, a)["object_id"], nearest(states, b)["object_id"])
        states = [s for s in tracker.tracks() if s["status"] == "confirmed"]
        assert len(states) == 2, f"seed {seed}"
        ids_after = (nearest(states, a)["object_id"], nearest(states, b)["object_id"])
        assert ids_after == ids_before, f"seed {seed}: ids swapped or replaced"


def test_crossing_drones_through_the_plotter_keep_their_ids() -> None:
    rng = np.random.default_rng(11)
    plotter = RadarPlotter(boresight_azimuth_deg=0.0, mount_height_m=3.0, mast_heading_deg=0.0)
    tracker = Tracker(**SITE, mount_height_m=3.0)
    # Heading 0, boresight 0: radar x = east, y = north. Paths cross at 45 degrees at (0, 40).
    a0, va = np.array([-20.0, 20.0, 12.0]), np.array([4.0, 4.0, 0.0])
    b0, vb = np.array([-20.0, 60.0, 12.0]), np.array([4.0, -4.0, 0.0])
    ids_before = None
    for k in range(100):
        t = T0 + 0.1 * k
        a, b = a0 + va * 0.1 * k, b0 + vb * 0.1 * k
        pts = (radar_points(a, float(va @ a / np.linalg.norm(a)), rng, spread_m=0.3)
               + radar_points(b, float(vb @ b / np.linalg.norm(b)), rng, spread_m=0.3))
        tracker.update(t, plotter.process(frame_of(k, t, pts)), [])
        if k == 30:
            ids_before = (nearest(tracker.tracks(), a)["object_id"],
                          nearest(tracker.tracks(), b)["object_id"])
    confirmed = [s for s in tracker.tracks() if s["status"] == "confirmed"]
    assert len(confirmed) == 2
    assert (nearest(confirmed, a)["object_id"], nearest(confirmed, b)["object_id"]) == ids_before


def test_acoustic_only_target_is_a_bearing_track_without_range() -> None:
    rng = np.random.default_rng(2)
    tracker = Tracker(**SITE)
    drone = np.array([100.0, 100.0, 30.0])  # bearing 45
    events = []
    for k in range(12):
        t = T0 + 0.1 * k
        events += tracker.update(t, [], [bearing(t, drone, rng)])
    assert [e["type"] for e in events][:1] == ["new"]
    (state,) = tracker.tracks()
    assert state["range_m"] is None and state["location"] is None
    assert state["velocity_enu_mps"] is None and state["speed_mps"] is None
    assert state["azimuth_deg"]["value"] == pytest.approx(45.0, abs=2.0)
    assert state["elevation_deg"]["value"] == pytest.approx(
        math.degrees(math.atan2(30.0, math.hypot(100.0, 100.0))), abs=2.5)
    assert state["sensors"] == ["acoustic"]
    assert state["acoustic"] == {"f0_hz": 180.0, "score": 0.9}
    assert state["classification"][0]["type"] == "drone"


def test_radar_plot_on_an_acoustic_bearing_gives_that_track_its_range() -> None:
    rng = np.random.default_rng(3)
    tracker = Tracker(**SITE)
    drone, vel = np.array([-60.0, 120.0, 40.0]), np.array([0.0, 0.0, 0.0])
    for k in range(10):
        tracker.update(T0 + 0.1 * k, [], [bearing(T0 + 0.1 * k, drone, rng)])
    (acoustic,) = tracker.tracks()
    for k in range(10, 30):
        t = T0 + 0.1 * k
        bearings = [bearing(t, drone, rng)] if k % 2 else []
        tracker.update(t, [noisy_plot(t, drone, vel, rng)], bearings)
    (state,) = tracker.tracks()
    assert state["object_id"] == acoustic["object_id"]
    assert state["range_m"]["value"] == pytest.approx(float(np.linalg.norm(drone)), abs=1.0)
    assert state["sensors"] == ["radar", "acoustic"]
    assert state["location"] is not None


def test_hovering_drone_heard_on_its_bearing_is_fused_and_a_bird_elsewhere_is_not() -> None:
    rng = np.random.default_rng(4)
    tracker = Tracker(**SITE, acoustic_range_m=300.0)
    drone, still = np.array([50.0, 80.0, 30.0]), np.zeros(3)
    bird0, bird_v = np.array([-70.0, 40.0, 15.0]), np.array([9.0, 7.0, 0.0])
    for k in range(60):
        t = T0 + 0.1 * k
        bird = bird0 + bird_v * 0.1 * k + np.array([0.0, 0.0, 1.5 * math.sin(k / 3.0)])
        plots = [noisy_plot(t, drone + rng.normal(0, 0.1, 3), still, rng),
                 noisy_plot(t, bird, bird_v, rng, snr_db=10.0, points=1)]
        bearings = [bearing(t, drone, rng)] if k % 3 == 0 else []
        tracker.update(t, plots, bearings)
    drone_state = nearest(tracker.tracks(), drone)
    bird_state = nearest(tracker.tracks(), bird)
    assert drone_state["sensors"] == ["radar", "acoustic"]
    assert drone_state["acoustic"]["f0_hz"] == 180.0
    assert drone_state["classification"][0]["type"] == "drone"
    assert bird_state["sensors"] == ["radar"] and bird_state["acoustic"] is None
    assert bird_state["classification"][0]["type"] == "bird"
    names = {item["name"] for item in drone_state["evidence"]}
    assert {"harmonics", "hovering", "height_m"} <= names


def test_state_dict_has_the_agreed_shape_and_a_true_location() -> None:
    rng = np.random.default_rng(5)
    tracker = Tracker(**SITE)
    target, still = np.array([0.0, 200.0, 50.0]), np.zeros(3)
    for k in range(10):
        tracker.update(T0 + 0.1 * k, [noisy_plot(T0 + 0.1 * k, target, still, rng,
                                                  elevation_error_deg=0.5)], [])
    (state,) = tracker.tracks()
    assert set(state) == {"object_id", "status", "t", "first_seen", "range_m", "azimuth_deg",
                          "elevation_deg", "location", "velocity_enu_mps", "speed_mps",
                          "classification", "evidence", "sensors", "acoustic", "updates"}
    assert state["t"] == pytest.approx(T0 + 0.9) and state["first_seen"] == pytest.approx(T0)
    assert state["updates"] == 10
    assert abs(ulid_time_s(state["object_id"]) - __import__("time").time()) < 60
    loc = state["location"]
    assert loc["datum"] == "WGS84"
    # 200 m north at 57 N is about 0.0018 degrees of latitude; altitude node + 50 m.
    assert loc["latitude_deg"] == pytest.approx(57.0 + 200.0 / 111_360.0, abs=2e-5)
    assert loc["longitude_deg"] == pytest.approx(12.0, abs=2e-5)
    assert loc["altitude_m"] == pytest.approx(70.0, abs=2.0)
    assert loc["error_m"] > 0
    confidences = [c["confidence"] for c in state["classification"]]
    assert sum(confidences) == pytest.approx(1.0, abs=1e-9)
    assert confidences == sorted(confidences, reverse=True)


def test_local_frame_round_trips_and_matches_the_ellipsoid() -> None:
    frame = LocalFrame(57.0, 12.0, 20.0)
    lat, lon, alt = frame.to_geodetic(500.0, -800.0, 30.0)
    assert frame.to_enu(lat, lon, alt) == pytest.approx((500.0, -800.0, 30.0), abs=1e-6)
    # One degree of latitude at 57 N is 111.36 km on WGS84.
    assert frame.to_geodetic(0.0, 111_360.0, 0.0)[0] == pytest.approx(58.0, abs=0.01)


def test_ids_are_unique_sortable_ulids() -> None:
    rng = np.random.default_rng(6)
    tracker = Tracker(**SITE)
    positions = [np.array([40.0 * i - 100.0, 100.0, 20.0]) for i in range(6)]
    for k in range(5):
        t = T0 + 0.1 * k
        tracker.update(t, [noisy_plot(t, p, np.zeros(3), rng) for p in positions], [])
    ids = [s["object_id"] for s in tracker.tracks()]
    assert len(ids) == len(set(ids)) == 6
    assert all(len(i) == 26 for i in ids)
    assert ids == sorted(ids)  # created in order


def false_alarm_plots(t: float, rng: np.random.Generator, count: int, *,
                      crowded: bool) -> list[Plot]:
    """A radar's CFAR false alarms: uniform over range bins, or (crowded) bunched near the
    mast as returns off the mast and the ground would be; any radial speed."""
    plots = []
    for _ in range(count):
        rng_m = 120.0 * (rng.random() ** 2 if crowded else rng.random()) + 0.5
        az, el = rng.uniform(-60.0, 60.0), rng.uniform(-20.0, 20.0)
        e = rng_m * math.cos(math.radians(el)) * math.sin(math.radians(az))
        n = rng_m * math.cos(math.radians(el)) * math.cos(math.radians(az))
        u = rng_m * math.sin(math.radians(el))
        plots.append(Plot(t=t, range_m=rng_m, range_error_m=0.05, azimuth_node_deg=az,
                          azimuth_deg=az % 360.0, azimuth_error_deg=1.5, elevation_deg=el,
                          elevation_error_deg=5.0, radial_speed_mps=rng.uniform(-10, 10),
                          snr_db=13.0, point_count=1, east_m=e, north_m=n, up_m=u,
                          height_m=u + 3.0))
    return plots


@pytest.mark.parametrize("crowded", [False, True])
def test_false_alarms_never_make_a_confirmed_track_even_crowded_by_the_mast(
        crowded: bool) -> None:
    rng = np.random.default_rng(12)
    tracker = Tracker(**SITE)
    new = []
    for k in range(600):  # a minute at 10 frames a second, 3 false plots a frame
        t = T0 + 0.1 * k
        new += [e for e in tracker.update(t, false_alarm_plots(t, rng, int(rng.poisson(3.0)),
                                                               crowded=crowded), [])
                if e["type"] == "new"]
    assert new == [], [(e["after"]["range_m"], e["after"]["classification"][0]) for e in new]


def test_a_drone_seen_as_two_plots_a_frame_among_false_alarms_is_one_track() -> None:
    rng = np.random.default_rng(13)
    tracker = Tracker(**SITE)
    pos, vel = np.array([-30.0, 40.0, 9.0]), np.array([6.0, 0.0, 0.0])
    ids = set()
    for k in range(100):
        t = T0 + 0.1 * k
        p = pos + vel * 0.1 * k
        # Two points of one drone the plotter could not join: elevation noise of a
        # two-element-high array puts them metres apart vertically.
        plots = [noisy_plot(t, p, vel, rng, elevation_error_deg=4.5, points=1),
                 noisy_plot(t, p, vel, rng, elevation_error_deg=4.5, points=1)]
        plots += false_alarm_plots(t, rng, int(rng.poisson(1.5)), crowded=False)
        for e in tracker.update(t, plots, []):
            ids.add(e["object_id"])
    confirmed = [s for s in tracker.tracks() if s["status"] == "confirmed"]
    assert len(confirmed) == 1 and len(ids) == 1, ids


def test_bearings_that_share_their_audio_count_as_the_independent_ones_they_add_up_to() -> None:
    """The faint path judges a 4 s average every 0.5 s: eight bearings per 4 s, most of their
    audio shared. They must not confirm a track (or shrink its error) faster than one bearing
    per 4 s would."""
    drone = np.array([100.0, 100.0, 30.0])

    def seconds_to_confirm(every_s: float, span_s: float) -> tuple[float, float]:
        rng = np.random.default_rng(2)
        tracker = Tracker(**SITE)
        for k in range(100):
            t = T0 + every_s * k
            b = bearing(t, drone, rng, error_deg=3.0, elevation=False)
            tracker.update(t, [], [dataclasses.replace(b, span_s=span_s)])
            states = tracker.tracks()
            if states and states[0]["status"] == "confirmed":
                return every_s * k, states[0]["azimuth_deg"]["error"]
        raise AssertionError("never confirmed")

    shared, shared_error = seconds_to_confirm(0.5, 4.0)
    independent, independent_error = seconds_to_confirm(4.0, 0.0)
    naive, naive_error = seconds_to_confirm(0.5, 0.0)
    assert shared >= 0.6 * independent
    assert naive < 0.25 * shared  # what counting each as independent did
    assert shared_error >= 0.8 * independent_error > naive_error


def test_a_published_radar_track_outlives_an_older_tentative_acoustic_one_on_its_bearing() -> None:
    from edgenode.detect.track import Track, fuse_acoustic

    gate = Tracker(**SITE).gate
    x = np.array([-40.0, 25.0, 8.0, 5.0, 0.0, 0.0])
    heard = Track(T0, x.copy(), np.eye(6) * 25.0, has_range=False, has_elevation=False)
    heard.acoustic_last_t, heard.f0_hz = T0 + 0.5, 187.0
    seen = Track(T0 + 0.3, x.copy(), np.eye(6) * 1.0, has_range=True, has_elevation=True)
    seen.status = "confirmed"  # already on the operators' screens
    fuse_acoustic([heard, seen], gate)
    # One object, under the id the operators already see: no flash of a second drone.
    assert seen.status == "confirmed" and heard.status == "ended"
    assert seen.f0_hz == 187.0 and seen.first_seen == T0


# Bearings of the far drone of two-masts-crossing as the north mast's twin heard it (rendered
# offline, seed 1; scenario seconds, true bearing, one-sigma error): heard in bursts, with a
# 4.95 s silence between 13.3 s and 18.3 s while the drone flew on ~300 m out at 10 m/s.
FAINT_DRONE_BEARINGS = [
    (11.700, 86.9, 1.0), (11.790, 85.5, 1.7), (11.880, 91.4, 2.1), (11.970, 87.0, 0.9),
    (12.060, 87.3, 1.0), (12.645, 88.1, 1.1), (12.735, 88.6, 1.0), (12.825, 87.5, 2.2),
    (12.915, 90.1, 0.8), (13.005, 89.7, 1.1), (13.140, 90.2, 0.8), (13.320, 91.3, 1.4),
    (18.270, 103.6, 1.5), (18.360, 101.2, 1.3), (18.450, 104.6, 2.5), (18.540, 102.0, 1.1),
    (19.080, 105.1, 0.8), (19.170, 101.0, 1.6), (19.530, 107.0, 2.0), (19.710, 107.4, 1.4),
    (20.880, 108.6, 0.9), (20.970, 109.2, 0.7)]


def test_a_faint_drone_heard_in_bursts_keeps_its_id_through_a_silence_of_seconds() -> None:
    """A distant drone's bearings drop out for seconds at a time: its acoustic-only track
    coasts through the silence (reported as coasting), and the next burst updates it under
    the same id instead of ending it and confirming a second track (which central takes for
    a new object: a second fused id). It still ends once the drone stays silent."""
    tracker = Tracker(**SITE)
    events: list[tuple[float, dict]] = []
    ticks = np.arange(11.5, 21.0, 0.5).tolist()  # the daemon's idle tick
    timeline = sorted([(s, None) for s in ticks] + [(s, (az, err))
                                                    for s, az, err in FAINT_DRONE_BEARINGS],
                      key=lambda item: item[0])
    for s, b in timeline:
        bearings = [] if b is None else [AcousticBearing(
            t=T0 + s, azimuth_deg=b[0], elevation_deg=None, error_deg=b[1], f0_hz=190.0,
            score=0.9)]
        events += [(s, e) for e in tracker.update(T0 + s, [], bearings)]
    assert [e["type"] for _, e in events].count("new") == 1, events
    assert not [e for _, e in events if e["type"] == "end"]
    ((_, new),) = [(s, e) for s, e in events if e["type"] == "new"]
    statuses = {s: e["after"]["status"] for s, e in events if e["object_id"] == new["object_id"]}
    assert "coasting" in [st for s, st in statuses.items() if 13.3 < s < 18.3]
    (state,) = [st for st in tracker.tracks() if st["status"] != "tentative"]
    assert state["object_id"] == new["object_id"] and state["status"] == "confirmed"
    assert state["azimuth_deg"]["value"] == pytest.approx(109.0, abs=3.0)
    # Silent for good: the track ends.
    for s in np.arange(21.0, 21.0 + tracker.acoustic_end_after_s + 1.0, 0.5):
        events += [(s, e) for e in tracker.update(T0 + s, [], [])]
    assert events[-1][1]["type"] == "end" and events[-1][1]["object_id"] == new["object_id"]
    assert tracker.tracks() == []
