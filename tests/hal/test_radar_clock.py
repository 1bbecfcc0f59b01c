"""Radar frames are stamped on the radar's own schedule, not when a busy reader got them."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from edgenode.config import RadarSection
from edgenode.daemon.sensing import RadarStage, ReadingQueue
from edgenode.health import Health
from hal.radar.clock import MAX_LAG_S, FrameClock, chirp_frame_period_s
from hal.radar.ti_mmwave import encode_frame
from tests.hal.test_serial import pty

HARDWARE = Path(__file__).resolve().parents[2] / "hardware"
PERIOD = 0.05


def late_arrivals(n: int, rate: float = 1.0, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(capture, arrival) times of n frames through a reader that is starved for 50-300 ms
    every second or so (the frames of a stall all arrive in one read at its end) and
    otherwise gets them 2-5 ms late; the radar's clock runs `rate` times ours."""
    rng = np.random.default_rng(seed)
    capture = 1000.0 + np.arange(1, n + 1) * PERIOD * rate
    arrival = capture + rng.uniform(0.002, 0.005, n)
    for start in rng.uniform(capture[0], capture[-1], n // 20):
        end = start + rng.uniform(0.05, 0.3)
        arrival[(arrival >= start) & (arrival < end)] = end
    return capture, arrival


def stamps(clock: FrameClock, arrival: np.ndarray, first: int = 1) -> np.ndarray:
    return np.array([clock.stamp(first + i, float(a)) for i, a in enumerate(arrival)])


def test_bursty_late_frames_get_their_capture_times_back() -> None:
    capture, arrival = late_arrivals(400)
    clock = FrameClock(PERIOD)
    t = stamps(clock, arrival)
    assert np.all(t <= arrival)
    # Every stamp is within the quickest delivery (2-5 ms) of the capture time...
    assert np.max(np.abs(t - capture)) < 0.005
    assert np.allclose(np.diff(t), PERIOD, atol=0.003)
    # ...where arrival stamps would be up to 0.3 s off, and some frames 0 s apart.
    assert np.max(arrival - capture) > 0.2 and np.min(np.diff(arrival)) == 0.0
    assert clock.resets == 0


def test_stamps_follow_a_radar_crystal_100_ppm_slow() -> None:
    capture, arrival = late_arrivals(3000, rate=1.0001)
    t = stamps(FrameClock(PERIOD), arrival)
    assert np.max(np.abs(t - capture)) < 0.005 + 100 * PERIOD * 1e-4


def test_a_radar_restart_re_anchors_on_the_new_numbers() -> None:
    clock = FrameClock(PERIOD)
    stamps(clock, late_arrivals(50)[1])
    assert clock.stamp(1, 5000.0) == 5000.0
    assert clock.resets == 1
    assert clock.stamp(2, 5000.06) == pytest.approx(5000.05)


def test_a_wrong_period_never_lets_stamps_lag_arrival_by_more_than_the_limit() -> None:
    _, arrival = late_arrivals(400)
    clock = FrameClock(PERIOD * 0.8)
    t = stamps(clock, arrival)
    assert np.all(arrival - t <= MAX_LAG_S)
    assert clock.resets > 0


def test_the_frame_period_comes_from_the_chirp_configs_frame_cfg(tmp_path: Path) -> None:
    assert chirp_frame_period_s(HARDWARE / "radar" / "iwr6843-drone.cfg") == 0.05
    other = tmp_path / "adv.cfg"
    other.write_text("sensorStop\nadvFrameCfg 2 0 0 1 0\n")
    assert chirp_frame_period_s(other) is None


def test_the_radar_stage_stamps_a_burst_of_frames_a_period_apart() -> None:
    with pty() as (master, path):
        section = RadarSection(model="ti-mmwave", data_port=path, frame_period_ms=PERIOD * 1000)
        out = ReadingQueue()
        stage = RadarStage(section, HARDWARE, Health(), out)
        stage.port.open()
        try:
            stage.step()  # nothing yet
            os.write(master, encode_frame(1, np.zeros((0, 6), np.float32)))
            deadline = time.monotonic() + 3
            while stage.parser.frames < 1 and time.monotonic() < deadline:
                stage.step()
            time.sleep(0.3)  # the reader is "starved": three frames wait in the pty
            os.write(master, b"".join(encode_frame(n, np.zeros((0, 6), np.float32))
                                      for n in (2, 3, 4)))
            while stage.parser.frames < 4 and time.monotonic() < deadline:
                stage.step()
        finally:
            stage.close()
    frames = [out.get(0.1) for _ in range(4)]
    t = [reading.t_capture for _kind, reading in frames]
    assert np.allclose(np.diff(t), PERIOD, atol=1e-6), t


def test_without_a_period_frames_are_stamped_on_arrival() -> None:
    section = RadarSection(model="ti-mmwave", data_port="/dev/null-radar")
    assert RadarStage(section, HARDWARE, Health(), ReadingQueue()).clock is None
