"""PCM from the sim audio backend: true inter-microphone delays, levels, and mic faults."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from hal.acoustic import load_geometry
from hal.ports.audio import AudioBlock, open_audio
from hal.sim.acoustics import PA_TO_FS, a_weight, db_to_pa, speed_of_sound
from hal.sim.protocol import control
from tests.sim.conftest import write_scenario

TONE_HZ = 700.0
FS = 48000
# A pump-like steady tone 20 m away at a bearing of 60 deg (mast heading 30 deg: 30 deg off
# the array's x axis), 4 m below the array.
SOURCE = np.array([20 * math.sin(math.radians(60)), 20 * math.cos(math.radians(60)), 2.0])
SCENARIO = f"""
[node]
mast_heading_deg = 30.0
mast_height_m = 6.0
[ambient]
level_dba = 15.0
temperature_c = 20.0
[[machinery]]
name = "tone"
position_m = [{SOURCE[0]}, {SOURCE[1]}]
height_m = {SOURCE[2]}
fundamental_hz = {TONE_HZ}
harmonics = 1
level_dba_1m = 80.0
"""


def read_blocks(source, count: int) -> list[AudioBlock]:
    blocks = []
    while len(blocks) < count:
        block = source.read_block(3.0)
        assert block is not None, "the twin stopped sending audio"
        blocks.append(block)
    return blocks


def expected_delays(heading_deg: float) -> np.ndarray:
    """Arrival time at each mic minus arrival at the array's reference point (s)."""
    mics = load_geometry("uma16").positions_m
    h = math.radians(heading_deg)
    # Node frame (x along the heading, y left) to east/north/up.
    east = mics[:, 0] * math.sin(h) - mics[:, 1] * math.cos(h)
    north = mics[:, 0] * math.cos(h) + mics[:, 1] * math.sin(h)
    mics_enu = np.stack([east, north, mics[:, 2] + 6.0], axis=1)
    ref = np.array([0.0, 0.0, 6.0])
    c = speed_of_sound(20.0)
    return (np.linalg.norm(SOURCE - mics_enu, axis=1) - np.linalg.norm(SOURCE - ref)) / c


def test_tone_arrives_with_the_true_inter_mic_delays(twin_factory, tmp_path: Path) -> None:
    twin = twin_factory(write_scenario(tmp_path / "tone-bearing.toml", SCENARIO))
    source = open_audio("sim", device=twin.socket, channels=16, sample_rate_hz=FS,
                        block_frames=4096)
    try:
        blocks = read_blocks(source, 4)
    finally:
        source.close()
    assert [b.index for b in blocks] == list(range(blocks[0].index, blocks[0].index + 4))
    assert blocks[1].t_capture - blocks[0].t_capture == pytest.approx(4096 / FS, abs=1e-4)
    x = np.concatenate([b.samples for b in blocks[1:]]).astype(np.float64)
    n = x.shape[0]
    t = np.arange(n) / FS
    # Cross-correlate every mic with mic 0 at the tone (the cross-spectrum's phase).
    z = (x * np.exp(-2j * math.pi * TONE_HZ * t)[:, None]).mean(axis=0)
    measured = -np.angle(z * np.conj(z[0])) / (2 * math.pi * TONE_HZ)
    expected = expected_delays(30.0)
    expected -= expected[0]
    np.testing.assert_allclose(measured, expected, atol=2e-6)
    # Level: 80 dB(A) at 1 m (most of it in the line), spherical spreading to ~20.5 m,
    # little absorption at 700 Hz: the line arrives within 1 dB of that.
    r = float(np.linalg.norm(SOURCE - [0, 0, 6.0]))
    amp_fs = db_to_pa(80.0 - 20 * math.log10(r)) * math.sqrt(2) / a_weight(TONE_HZ) * PA_TO_FS
    assert abs(20 * math.log10(2 * abs(z[0]) / amp_fs)) < 1.0


def test_mic_faults_clip_then_silence_the_array(twin_factory) -> None:
    twin = twin_factory("one-drone-crossing")
    # The stall timeout must outlast the twin's start of a stream on a loaded machine (at 0.5 s
    # it reconnected every half second and never got a block).
    source = open_audio("sim", device=twin.socket, channels=16, sample_rate_hz=FS,
                        block_frames=2048, stall_timeout_s=1.5)
    try:
        clean = read_blocks(source, 1)[0]
        assert np.abs(clean.samples).max() < 0.1
        control(twin.socket, "fault.start", name="mic-clipping")
        # Blocks already on their way are clean; the next ones are clipped.
        clipped = [np.mean(np.abs(b.samples) >= 1.0) for b in read_blocks(source, 10)]
        assert max(clipped) > 0.05
        control(twin.socket, "fault.stop", name="mic-clipping")
        control(twin.socket, "fault.start", name="mic-dead")
        while source.read_block(0.3) is not None:
            pass  # drain
        assert source.read_block(2.5) is None
        assert source.stalls >= 1
    finally:
        source.close()


def test_wrong_channel_count_is_refused_naming_the_array(twin_factory) -> None:
    twin = twin_factory()
    with pytest.raises(Exception, match="'uma16' has 16 microphones"):
        open_audio("sim", device=twin.socket, channels=4, sample_rate_hz=FS,
                   block_frames=1024)


def test_machine_level_at_10_m_and_its_slow_drift() -> None:
    """A generator given in dB(A) at 10 m sounds as one given 20 dB higher at 1 m; its
    fundamental drifts by at most drift_pct, slowly (issue 12)."""
    from pydantic import ValidationError

    from hal.sim.scenario import Ambient, Machinery
    from hal.sim.sounds import make_machinery_source

    common = {"name": "gen", "position_m": [25.0, 0.0], "fundamental_hz": 125.0,
              "drift_pct": 0.3, "drift_period_s": 30.0,
              "harmonic_levels_db": [0.0, -2.0, -4.0]}
    at_10 = Machinery(**common, level_dba_10m=44.0)
    at_1 = Machinery(**common, level_dba_1m=64.0)
    t = np.arange(0, 60.0, 1 / 4000.0)
    a = make_machinery_source(at_10, 8000, np.random.default_rng(1), Ambient()).tonal(t, 10.0)
    b = make_machinery_source(at_1, 8000, np.random.default_rng(1), Ambient()).tonal(t, 10.0)
    assert np.allclose(a, b)
    source = make_machinery_source(at_10, 8000, np.random.default_rng(2), Ambient())
    wander = source.wander[0]
    rate = np.gradient(wander.cycles(125.0, t), t) / 125.0 - 1.0  # relative frequency
    assert 0.0005 < float(np.ptp(rate)) / 2 <= 0.003 + 1e-6
    assert float(np.max(np.abs(np.diff(rate)))) * 4000.0 < 0.003  # under 0.3 % per second
    with pytest.raises(ValidationError, match="exactly one of level_dba_1m and level_dba_10m"):
        Machinery(**common)
