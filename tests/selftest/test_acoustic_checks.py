"""The acoustic checks on the twin's own rendering of a scene (no daemon): a dead, clipping,
swapped or reversed microphone is named, and a clean array passes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edgenode.selftest.acoustic import acoustic_checks
from hal.acoustic import load_geometry
from hal.sim.audio import ArrayRenderer
from hal.sim.scenario import load_scenario
from hal.sim.world import World

FS = 48000
GEOMETRY = load_geometry("uma16")


@pytest.fixture(scope="module")
def scene() -> np.ndarray:
    """1.5 s of one-drone-crossing at the UMA-16, 30 s in, (frames, mics)."""
    scenario = load_scenario("one-drone-crossing")
    renderer = ArrayRenderer(scenario, World(scenario), GEOMETRY.positions_m, FS, seed=3)
    return np.vstack([renderer.render(30 + k * 4096 / FS, 4096) for k in range(18)])


def facts(blocks: int) -> dict[str, Any]:
    return {"t": blocks * 4096 / FS, "device": "sim", "channels": 16, "sample_rate_hz": FS,
            "block_frames": 4096, "open_error": None, "blocks": blocks, "since_block_s": 0.0,
            "channel_map": list(range(16)), "overruns": 0, "stalls": 0, "restarts": 0}


def run(samples: np.ndarray) -> dict[str, dict[str, Any]]:
    checks = acoustic_checks(facts(0), facts(23), samples, GEOMETRY.positions_m)
    return {c["name"]: c for c in checks}


def not_passing(checks: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {n: c["hint"] for n, c in checks.items() if c["result"] != "PASS"}


def test_clean_array_passes(scene: np.ndarray) -> None:
    checks = run(scene)
    assert not_passing(checks) == {}
    assert checks["acoustic.wiring"]["value"] >= 0.9


def test_a_swapped_pair_is_named(scene: np.ndarray) -> None:
    swapped = scene.copy()
    swapped[:, [3, 11]] = swapped[:, [11, 3]]
    bad = not_passing(run(swapped))
    assert list(bad) == ["acoustic.wiring"]
    assert "microphones 3 (capture channel 3), 11 (capture channel 11) appear swapped" in \
        bad["acoustic.wiring"]


def test_a_reversed_microphone_is_named(scene: np.ndarray) -> None:
    flipped = scene.copy()
    flipped[:, 7] *= -1
    bad = not_passing(run(flipped))
    assert list(bad) == ["acoustic.wiring"]
    assert "microphone 7 (capture channel 7) appears reversed in polarity" in \
        bad["acoustic.wiring"]


def test_a_dead_microphone_is_named_and_left_out_of_the_wiring_check(
        scene: np.ndarray) -> None:
    dead = scene.copy()
    dead[:, 12] = 0.0
    checks = run(dead)
    assert list(not_passing(checks)) == ["acoustic.silent"]
    assert "microphone(s) 12 (capture channel 12) silent" in checks["acoustic.silent"]["hint"]
    assert checks["acoustic.wiring"]["result"] == "PASS"


def test_one_clipping_microphone_is_named_and_the_wiring_waits(scene: np.ndarray) -> None:
    loud = scene.copy()
    loud[:, 4] = np.clip(loud[:, 4] * 1e4, -1, 1)
    checks = run(loud)
    assert list(not_passing(checks)) == ["acoustic.clipping", "acoustic.wiring"]
    assert "microphone(s) 4 (capture channel 4) clip" in checks["acoustic.clipping"]["hint"]
    assert checks["acoustic.wiring"]["result"] == "SKIP"
