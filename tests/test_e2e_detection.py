"""Detection on the digital twin, end to end: the real daemon (`edgenode run --sim`) as a
subprocess, its track events collected from a real Mosquitto, scored against the twin's ground
truth by `edgenode eval`'s runner (edgenode.cli.eval_twin)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from edgenode.cli.eval_twin import read_json_lines, run_twin
from tests.conftest import Mosquitto

# A quad 150 m out, in 45 dB(A): the acoustic range target of issue 5.
FAR_DRONE = """
# Source level: EU 2019/945 class C1 limit LWA 85 dB(A), Lp(1 m) = 74 dB(A) free field.
# Ambient 45 dB(A): suburban daytime, WHO "Guidelines for Community Noise" (1999).
name = "drone-150m"
description = "a quadcopter drifts 150 m north-east of the mast in 45 dB(A)"
hardware = "pi5-iwr6843-uma16"
duration_s = 600
seed = 21

[node]
mast_heading_deg = 0.0
mast_height_m = 6.0

[ambient]
level_dba = 45.0
spectrum = "pink"

[[targets]]
id = "drone-far"
kind = "quad"
rotor_rpm = 5400
level_dba_1m = 74.0
rcs_m2 = 0.02
after_end = "hold"
waypoints = [
  { position_m = [129.9, 75.0], altitude_m = 20.0, speed_mps = 2.0 },
  { position_m = [124.9, 83.7], altitude_m = 20.0, speed_mps = 2.0 },
]
"""


def test_one_drone_crossing_is_one_drone_track_on_its_bearing(tmp_path: Path,
                                                               mosquitto: Mosquitto) -> None:
    # Real time: at 2x on a starved shared machine the daemon sees radar frames late and in
    # bursts (stamped on arrival) and splits the drone into 4-7 tracks; at 1x it keeps one.
    score = run_twin("one-drone-crossing", tmp_path, speed=1.0, seconds=32.0,
                     broker=mosquitto.url)
    drone = score.targets["drone-1"]
    assert drone.pd >= 0.5, score.as_dict()
    # Acquisition can split the drone for a few seconds between an acoustic-only bearing
    # track and radar tracks before they fuse (before the track-score work: 7 tracks). A
    # split that never held the drone is a redundant track of it, not a false track.
    ids = len(drone.track_ids) + len(drone.redundant_ids)
    assert ids <= 4, f"one drone, {ids} tracks"
    assert drone.id_swaps == 0
    assert drone.class_right >= 0.6 * drone.detected, "tracked, but not as a drone"
    # The fused track's bearing (radar azimuth noise, frames stamped on arrival).
    # The acoustic direction-finding target (<= 3 deg RMS above 10 dB per-mic SNR) is shown by
    # tests/detect/test_doa.py and test_e2e_twin.py's static-source test.
    assert drone.bearing_rms_deg is not None and drone.bearing_rms_deg <= 5.0
    assert score.false_drone_tracks == 0, score.false_tracks
    assert len(score.false_tracks) <= 1, score.false_tracks


def test_two_drones_crossing_keep_their_ids(tmp_path: Path, mosquitto: Mosquitto) -> None:
    # Real time: until the twin reports radial speeds on the daemon's clock at --speed X
    # (RadarModel's time_scale), a faster run halves the Doppler that tells the two apart.
    score = run_twin("two-drones-crossing", tmp_path, speed=1.0, seconds=27.0,
                     broker=mosquitto.url)
    for name in ("drone-a", "drone-b"):
        assert score.targets[name].pd >= 0.5, score.as_dict()
    assert score.id_swaps == 0, score.as_dict()
    assert score.false_drone_tracks == 0, score.false_tracks


def test_empty_sky_gives_no_confirmed_drone_track(tmp_path: Path, mosquitto: Mosquitto) -> None:
    score = run_twin("empty-sky", tmp_path, speed=4.0, seconds=40.0, broker=mosquitto.url)
    assert score.false_drone_tracks == 0, score.false_tracks
    assert len(score.false_tracks) <= 1, score.false_tracks


# Issue 5's acoustic range target. No single 90 ms block shows this drone's lines; the faint
# path (edgenode/detect/faint.py) hears it in the 8 s average, about 15 s into the run, and
# takes its bearing from the snapshots of that average.
@pytest.mark.long  # make test budget: 50 s of twin time
def test_a_drone_150_m_out_in_45_dba_is_heard_on_its_bearing(tmp_path: Path,
                                                             mosquitto: Mosquitto) -> None:
    scenario = tmp_path / "drone-150m.toml"
    scenario.write_text(FAR_DRONE)
    # Real time: rendering 16 channels faster than that would skip audio on a loaded core.
    score = run_twin(str(scenario), tmp_path / "run", speed=1.0, seconds=45.0,
                     broker=mosquitto.url)
    truth = [r for r in read_json_lines(tmp_path / "run" / "truth.jsonl")
             if r.get("id") == "drone-far"]
    assert truth and all(149.0 <= r["range_m"] <= 152.0 for r in truth)
    bearing = truth[-1]["bearing_deg"]
    heard = [e["after"] for e in read_json_lines(tmp_path / "run" / "events.jsonl")
             if e.get("after") and "acoustic" in e["after"].get("sensors", [])
             and e["after"]["status"] in ("confirmed", "coasting")]
    assert heard, f"no acoustic track; {score.as_dict()}"
    errors = [abs((s["azimuth_deg"]["value"] - bearing + 180.0) % 360.0 - 180.0) for s in heard]
    assert sorted(errors)[len(errors) // 2] <= 5.0, (bearing, errors)
    assert score.targets["drone-far"].pd > 0.0
    assert math.isfinite(score.targets["drone-far"].bearing_rms_deg or math.nan)


@pytest.mark.long  # a minute of twin time at 1x
def test_a_drone_past_a_generator_is_one_drone_track_and_the_generator_none(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    # The generator 25 m from the mast is as loud there as the drone at 80 m (issue 12).
    score = run_twin("drone-past-generator", tmp_path, speed=1.0, seconds=45.0,
                     broker=mosquitto.url)
    drone = score.targets["drone-1"]
    print(score.as_dict())
    assert drone.pd >= 0.5, score.as_dict()
    assert len(drone.track_ids) == 1, score.as_dict()
    assert drone.bearing_median_abs_deg is not None and drone.bearing_median_abs_deg <= 3.0
    generator_deg = math.degrees(math.atan2(20.0, -15.0)) % 360.0
    on_generator = [f for f in score.false_tracks
                    if abs((f["bearing_deg"] - generator_deg + 180.0) % 360.0 - 180.0) <= 15.0]
    assert not on_generator, on_generator
    assert score.false_drone_tracks == 0, score.false_tracks
