"""Task regions as the tracker's start gates: a plot or bearing in an ignore area (or outside
the area of interest) starts no track; a live track that flies into one is kept."""

from __future__ import annotations

import numpy as np

from edgenode.detect.geo import LocalFrame
from edgenode.detect.regions import IGNORE, INTEREST, Region
from edgenode.detect.tracker import Tracker
from tests.detect.test_tracker import SITE, T0, bearing, noisy_plot

EAST = np.array([80.0, 0.0, 20.0])  # true bearing 90
NORTH = np.array([0.0, 80.0, 20.0])  # true bearing 0
STILL = np.zeros(3)
IGNORE_EAST = Region(IGNORE, cone=(90.0, 30.0, 0.0))  # 75..105 deg, any range


def fly(tracker: Tracker, position: np.ndarray, seconds: float = 2.0,
        velocity: np.ndarray = STILL, start: float = T0) -> list[dict]:
    rng = np.random.default_rng(7)
    events = []
    for k in range(int(seconds * 10)):
        t = start + 0.1 * k
        events += tracker.update(t, [noisy_plot(t, position + velocity * 0.1 * k, velocity,
                                                rng)], [])
    return events


def square_around(position: np.ndarray, half_deg: float = 0.0005) -> Region:
    lat, lon, _ = LocalFrame(SITE["latitude_deg"], SITE["longitude_deg"],
                             SITE["altitude_m"]).to_geodetic(*position)
    corners = ((lon - half_deg, lat - half_deg), (lon + half_deg, lat - half_deg),
               (lon + half_deg, lat + half_deg), (lon - half_deg, lat + half_deg))
    return Region(IGNORE, polygon=corners)


def test_a_plot_in_an_ignore_sector_starts_no_track_and_one_outside_does() -> None:
    tracker = Tracker(**SITE)
    tracker.set_regions((IGNORE_EAST,))
    assert fly(tracker, EAST) == [] and tracker.tracks() == []
    assert tracker.starts_held_back >= 20
    events = fly(tracker, NORTH, start=T0 + 10)
    assert [e["type"] for e in events][:1] == ["new"]
    assert len(tracker.tracks()) == 1


def test_an_ignore_polygon_and_an_area_of_interest_gate_by_place() -> None:
    tracker = Tracker(**SITE)
    tracker.set_regions((square_around(EAST),))
    assert fly(tracker, EAST) == []
    assert fly(tracker, NORTH, start=T0 + 10)[0]["type"] == "new"
    interest = Tracker(**SITE)
    interest.set_regions((Region(INTEREST, polygon=square_around(NORTH).polygon),))
    assert fly(interest, EAST) == []
    assert fly(interest, NORTH, start=T0 + 10)[0]["type"] == "new"


def test_an_acoustic_bearing_in_an_ignore_sector_starts_no_track() -> None:
    rng = np.random.default_rng(3)
    tracker = Tracker(**SITE)
    tracker.set_regions((IGNORE_EAST,))
    for k in range(10):
        tracker.update(T0 + 0.2 * k, [], [bearing(T0 + 0.2 * k, EAST, rng, error_deg=1.0)])
    assert tracker.tracks() == []
    tracker.update(T0 + 3, [], [bearing(T0 + 3, NORTH, rng, error_deg=1.0)])
    assert len(tracker.tracks()) == 1


def test_a_live_track_that_flies_into_an_ignore_sector_keeps_being_tracked() -> None:
    tracker = Tracker(**SITE)
    start = np.array([60.0, 60.0, 20.0])  # bearing 45, heading south-east
    velocity = np.array([8.0, -14.0, 0.0])
    first = fly(tracker, start, seconds=1.0, velocity=velocity)
    track_id = first[0]["object_id"]
    tracker.set_regions((IGNORE_EAST,))
    later = fly(tracker, start + velocity * 1.0, seconds=3.0, velocity=velocity,
                start=T0 + 1.0)
    assert {e["object_id"] for e in later} == {track_id}
    assert all(e["type"] == "update" for e in later)
    final = tracker.tracks()
    assert [s["object_id"] for s in final] == [track_id]
    assert 75 <= final[0]["azimuth_deg"]["value"] <= 105  # inside the ignored sector now
    assert tracker.starts_held_back == 0  # its plots went to the track, none was held back
