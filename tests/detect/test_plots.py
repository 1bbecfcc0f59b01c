"""Radar plots: clustering, frames and bearings, clutter map, ground and ghosts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgenode.detect.geo import radar_to_enu
from edgenode.detect.plots import RadarPlotter
from hal.radar import RadarFrame

SNR_DB = 18.0


def radar_points(position_radar: np.ndarray, radial_speed: float, rng: np.random.Generator,
                 count: int = 3, spread_m: float = 0.2) -> list[list[float]]:
    """`count` points of one object around a radar-frame position."""
    pts = []
    for _ in range(count):
        p = position_radar + rng.normal(0.0, spread_m, 3)
        pts.append([p[0], p[1], p[2], radial_speed + rng.normal(0.0, 0.05),
                    SNR_DB + rng.normal(0.0, 1.0), 40.0])
    return pts


def frame_of(number: int, t: float, points: list[list[float]]) -> RadarFrame:
    return RadarFrame(number, t, np.array(points, dtype=np.float32).reshape(-1, 6))


def at(range_m: float, azimuth_deg: float, up_m: float = 0.0) -> np.ndarray:
    """A radar-frame position: azimuth clockwise from boresight."""
    a = math.radians(azimuth_deg)
    return np.array([range_m * math.sin(a), range_m * math.cos(a), up_m])


def plotter(**kw: float) -> RadarPlotter:
    args = {"boresight_azimuth_deg": 0.0, "mount_height_m": 3.0, "mast_heading_deg": 0.0}
    args.update(kw)
    return RadarPlotter(**args)


def test_points_of_one_drone_make_one_plot_on_the_true_bearing() -> None:
    rng = np.random.default_rng(1)
    # Mast heading 90 (east), boresight 30 clockwise from it: the boresight points at 120.
    p = plotter(mast_heading_deg=90.0, boresight_azimuth_deg=30.0)
    drone = at(50.0, 10.0, up_m=20.0)
    plots = p.process(frame_of(1, 100.0, radar_points(drone, -4.0, rng, count=5)))
    assert len(plots) == 1
    plot = plots[0]
    assert plot.point_count == 5
    assert plot.t == 100.0
    assert plot.range_m == pytest.approx(np.linalg.norm(drone), abs=0.3)
    assert plot.azimuth_node_deg == pytest.approx(40.0, abs=1.0)
    assert plot.azimuth_deg == pytest.approx(130.0, abs=1.0)
    assert plot.elevation_deg == pytest.approx(math.degrees(math.atan2(20.0, 50.0)), abs=1.0)
    assert plot.radial_speed_mps == pytest.approx(-4.0, abs=0.1)
    assert plot.height_m == pytest.approx(23.0, abs=0.3)
    assert plot.azimuth_error_deg >= 1.0 and plot.range_error_m > 0.0
    # ENU agrees with the true bearing: 130 degrees is east-south-east.
    assert math.degrees(math.atan2(plot.east_m, plot.north_m)) % 360 == pytest.approx(
        plot.azimuth_deg, abs=0.01)
    assert plot.east_m > 0 > plot.north_m


def test_radar_frame_to_enu_follows_the_boresight_bearing() -> None:
    ahead_and_right = np.array([[1.0, 10.0, 2.0]])
    east = radar_to_enu(ahead_and_right, 90.0)[0]  # boresight east: right of it is south
    assert east == pytest.approx([10.0, -1.0, 2.0])
    north = radar_to_enu(ahead_and_right, 0.0)[0]
    assert north == pytest.approx([1.0, 10.0, 2.0])


def test_two_objects_apart_make_two_plots_and_two_dopplers_split_one_place() -> None:
    rng = np.random.default_rng(2)
    p = plotter()
    pts = radar_points(at(30, -20, 10), 3.0, rng) + radar_points(at(60, 25, 10), -2.0, rng)
    assert len(p.process(frame_of(1, 0.0, pts))) == 2
    # Same place, opposite radial speeds: two objects crossing, not one.
    pts = radar_points(at(40, 0, 10), 2.5, rng) + radar_points(at(40, 0, 10), -2.5, rng)
    plots = p.process(frame_of(2, 0.1, pts))
    speeds = sorted(pl.radial_speed_mps for pl in plots)
    assert speeds == [pytest.approx(-2.5, abs=0.1), pytest.approx(2.5, abs=0.1)]


def test_persistent_static_background_is_learnt_but_a_hovering_drone_is_kept() -> None:
    rng = np.random.default_rng(3)
    p = plotter(clutter_warmup_s=5.0, clutter_time_constant_s=60.0)
    building = at(25.0, -30.0, 2.0)
    drone = at(40.0, 15.0, 25.0)
    first = p.process(frame_of(0, 0.0, radar_points(building, 0.0, rng, spread_m=0.05)))
    assert len(first) == 1  # not background yet: it might be a hovering drone
    for k in range(1, 200):  # 20 s of the building alone
        p.process(frame_of(k, 0.1 * k, radar_points(building, 0.0, rng, spread_m=0.05)))
    assert p.rejected_clutter > 0
    plots = p.process(frame_of(200, 20.0, radar_points(building, 0.0, rng, spread_m=0.05)
                               + radar_points(drone, 0.02, rng)))
    assert len(plots) == 1
    assert plots[0].range_m == pytest.approx(np.linalg.norm(drone), abs=0.5)
    assert abs(plots[0].radial_speed_mps) < 0.2


def test_moving_target_never_becomes_background() -> None:
    rng = np.random.default_rng(4)
    p = plotter(clutter_warmup_s=1.0, clutter_time_constant_s=5.0)
    for k in range(100):  # a fan or a flag flapping in one place, always moving
        plots = p.process(frame_of(k, 0.1 * k, radar_points(at(20, 0, 5), 1.5, rng)))
    assert len(plots) == 1
    assert p.rejected_clutter == 0


def test_static_ground_returns_are_rejected_but_a_car_at_ground_level_is_not() -> None:
    rng = np.random.default_rng(5)
    p = plotter(mount_height_m=3.0)
    ground = radar_points(at(15.0, 5.0, -3.0), 0.0, rng, spread_m=0.05)  # height ~0 m
    car = radar_points(at(30.0, -10.0, -2.2), -12.0, rng, spread_m=0.05)  # ~0.8 m, moving
    plots = p.process(frame_of(1, 0.0, ground + car))
    assert len(plots) == 1
    assert plots[0].radial_speed_mps == pytest.approx(-12.0, abs=0.2)
    assert p.rejected_ground == 3


def test_multipath_ghost_below_the_ground_is_rejected() -> None:
    rng = np.random.default_rng(6)
    p = plotter(mount_height_m=3.0)
    ghost = radar_points(at(10.0, 0.0, -15.0), 3.0, rng, spread_m=0.05)  # 12 m underground
    assert p.process(frame_of(1, 0.0, ghost)) == []
    assert p.rejected_ghost == 3


def test_a_2d_radar_reports_no_elevation() -> None:
    rng = np.random.default_rng(7)
    pts = radar_points(at(20.0, 10.0), 2.0, rng)
    for q in pts:
        q[2] = 0.0  # xWR1642: z is always 0
    plots = plotter().process(frame_of(1, 0.0, pts))
    assert len(plots) == 1
    assert plots[0].elevation_deg is None
    assert plots[0].elevation_error_deg == 20.0
    assert plots[0].to_dict()["elevation_deg"] is None


def test_empty_and_non_finite_points_make_no_plots_and_no_error() -> None:
    p = plotter()
    assert p.process(frame_of(1, 0.0, [])) == []
    nan = [[math.nan, 1.0, 0.0, 0.0, 10.0, 40.0], [math.inf, 5.0, 1.0, 1.0, 10.0, 40.0]]
    assert p.process(frame_of(2, 0.1, nan)) == []


def test_min_points_drops_lone_noise_points() -> None:
    rng = np.random.default_rng(8)
    p = plotter(min_points=3)
    pts = [*radar_points(at(30, 0, 5), 2.0, rng, count=4), [-20.0, 70.0, 3.0, -7.0, 9.0, 40.0]]
    plots = p.process(frame_of(1, 0.0, pts))
    assert [pl.point_count for pl in plots] == [4]


@pytest.mark.parametrize("bad", [[3e38, 10.0, 5.0, -3.0, 20.0, 40.0],
                                 [1e20, -1e20, 0.0, -3.0, 20.0, 40.0],
                                 [5.0, 40.0, 1e25, -3.0, 20.0, 40.0],
                                 [5.0, 40.0, 2.0, 1e30, 20.0, 40.0],
                                 [np.nan, 40.0, 2.0, -3.0, 20.0, 40.0],
                                 [5.0, 40.0, 2.0, -3.0, np.inf, 40.0]])
def test_an_implausible_point_is_dropped_and_the_rest_of_the_frame_kept(
        bad: list[float]) -> None:
    # Issue 22 point 14: one huge coordinate (a corrupt frame) stopped detection: the tracker
    # raised on it. The plotter drops it, counts it, and keeps the frame's good points.
    from edgenode.detect.tracker import Tracker

    p = plotter()
    tracker = Tracker(latitude_deg=0.0, longitude_deg=0.0, altitude_m=0.0,
                      mast_heading_deg=0.0)
    rng = np.random.default_rng(3)
    for k in range(6):
        points = [bad, *radar_points(at(50.0, 10.0, up_m=10.0), -4.0, rng)]
        plots = p.process(frame_of(k, 100.0 + 0.1 * k, points))
        assert len(plots) == 1 and abs(plots[0].range_m - 51.0) < 3.0, plots
        tracker.update(100.0 + 0.1 * k, plots, [])
    assert p.rejected_implausible == 6
