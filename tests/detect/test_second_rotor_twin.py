"""Issue 12 on the twin's own audio: `two-drones-near-far` (a quad holding 50 m north, a
second one coming in from the east to hold 150 m out, 10 dB under it) gives two drone
tracks on their bearings within 30 s of the far drone coming inside 150 m, and no false
track. Rendered offline with fixed seeds (tests/detect/twin_audio.py): the twin itself
varies from run to run (its renderer's seed follows the order clients connect in, and it
skips blocks when the machine is loaded). Seed 2 was found at 40.5 s before the second-rotor
path's bearings bridged a rejection; seed 7's far drone is the weakest of eight renderings."""

from __future__ import annotations

import pytest

from tests.detect.twin_audio import render, run_chain

SCENARIO = "two-drones-near-far"
FAR_INSIDE_150_M_S = 10.0  # it starts 220 m east at 7 m/s and holds at 150 m
WITHIN_S = 30.0


@pytest.mark.long  # ~40 s a seed to render (cached in /tmp), ~5 s to run
@pytest.mark.parametrize("seed", [1, 2, 7])
def test_two_drones_near_and_far_give_two_tracks_on_their_bearings(seed: int) -> None:
    run = run_chain(SCENARIO, render(SCENARIO, seed), second_drone=True)
    near, far = run.score.targets["near"], run.score.targets["far"]
    for target in (near, far):
        assert target.first_detection_s is not None, target.as_dict()
        assert target.first_detection_s <= FAR_INSIDE_150_M_S + WITHIN_S, target.as_dict()
        assert target.bearing_rms_deg is not None and target.bearing_rms_deg < 5.0
    assert run.score.false_tracks == []
