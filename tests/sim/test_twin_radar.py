"""Radar frames from the twin's pty decode, with the real serial port and parser, to exactly
the points the twin emitted."""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from hal.ports.serial import PortUnavailable, SerialPort
from hal.radar import RadarFrame
from hal.radar.ti_mmwave import TiMmwaveParser
from hal.sim.protocol import control


def read_frames(port: SerialPort, parser: TiMmwaveParser, seconds: float) -> list[RadarFrame]:
    frames: list[RadarFrame] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            frames += parser.feed(port.read())
        except PortUnavailable:
            time.sleep(0.05)
    return frames


def emitted(twin) -> dict[int, dict]:
    records = [json.loads(line) for line in
               (twin.out / "radar.jsonl").read_text().splitlines() if line.endswith("}")]
    return {r["frame"]: r for r in records if "points" in r}


def assert_equal_points(frame: RadarFrame, record: dict) -> None:
    sent = np.array(record["points"], dtype=np.float32).reshape(-1, 6)
    assert frame.points.shape == sent.shape, f"frame {frame.frame_number}"
    np.testing.assert_array_equal(frame.points[:, :4], sent[:, :4])
    np.testing.assert_allclose(frame.points[:, 4:], sent[:, 4:], atol=0.051)


def test_radar_frames_decode_to_the_points_the_twin_emitted(twin_factory) -> None:
    twin = twin_factory("one-drone-crossing", "--speed", "8")
    port = SerialPort(twin.endpoints["radar_data"], 921600, name="radar-data")
    parser = TiMmwaveParser()
    try:
        frames = read_frames(port, parser, 2.0)
    finally:
        port.close()
    sent = emitted(twin)
    first, last = frames[0].frame_number, frames[-1].frame_number
    expected = [n for n in sent if first <= n <= last]
    assert len(expected) >= 100, "at 8x speed the radar sends 80 frames/s"
    got = {f.frame_number: f for f in frames}
    equal = 0
    for n in expected:
        if n in got:
            assert_equal_points(got[n], sent[n])
            equal += 1
    assert equal / len(expected) >= 0.99
    assert parser.frames_rejected == 0
    # The drone flies east along y = 35 m, 9 m above the radar (boresight north, heading 0):
    # the radar reports points where it truly is.
    near = 0
    for n in expected:
        east = -70.0 + 6.0 * sent[n]["sim_t"]
        pts = np.array(sent[n]["points"]).reshape(-1, 6)
        near += int(np.any(np.linalg.norm(pts[:, :3] - [east, 35.0, 9.0], axis=1) < 3.0))
    assert near >= 10, f"only {near} frames saw the drone"


def test_cli_port_answers_like_the_radar(twin_factory) -> None:
    twin = twin_factory()
    port = SerialPort(twin.endpoints["radar_cli"], 115200, name="radar-cli", timeout_s=0.2)
    try:
        port.write(b"sensorStop\n")
        answer = b""
        end = time.monotonic() + 3
        while b"Done" not in answer and time.monotonic() < end:
            answer += port.readline(0.5)
    finally:
        port.close()
    assert b"Done" in answer


def test_radar_garbage_fault_leaves_intact_frames_decodable(twin_factory) -> None:
    twin = twin_factory("one-drone-crossing", "--speed", "5", "--fault", "radar-garbage")
    port = SerialPort(twin.endpoints["radar_data"], 921600, name="radar-data")
    parser = TiMmwaveParser()
    try:
        frames = read_frames(port, parser, 2.0)
    finally:
        port.close()
    sent = emitted(twin)
    intact = [n for n, r in sent.items() if r["intact"]
              and frames[0].frame_number <= n <= frames[-1].frame_number]
    # A bit flip may land in a damaged frame's number: match every intact frame by content.
    got: dict[int, list[RadarFrame]] = {}
    for f in frames:
        got.setdefault(f.frame_number, []).append(f)
    for n in intact:
        sent_pts = np.array(sent[n]["points"], dtype=np.float32).reshape(-1, 6)
        assert any(f.points.shape == sent_pts.shape
                   and np.array_equal(f.points[:, :4], sent_pts[:, :4])
                   for f in got.get(n, [])), f"intact frame {n} not decoded"
    assert len(intact) > 50
    assert parser.bytes_skipped > 0


def test_radar_unplugged_fault_removes_the_port_and_brings_it_back(twin_factory) -> None:
    twin = twin_factory("empty-sky", "--speed", "5")
    link = twin.endpoints["radar_data"]
    port = SerialPort(link, 921600, name="radar-data", reopen_every_s=0.1)
    parser = TiMmwaveParser()
    try:
        assert read_frames(port, parser, 0.5)
        control(twin.socket, "fault.start", name="radar-unplugged")
        time.sleep(0.2)
        assert not os.path.exists(link)
        assert not read_frames(port, parser, 0.5)
        control(twin.socket, "fault.stop", name="radar-unplugged")
        assert read_frames(port, parser, 1.0), "frames again after replugging"
        assert port.reconnects >= 1
    finally:
        port.close()


def test_false_points_are_cfar_alarms_spread_over_range_and_never_static() -> None:
    from hal.sim.radar import DOPPLER_BIN_MPS, RadarModel
    from hal.sim.scenario import load_scenario
    from hal.sim.world import World

    scenario = load_scenario("empty-sky")
    model = RadarModel(scenario, World(scenario), 0.0)
    rng = np.random.default_rng(1)
    pts = np.concatenate([model.frame(0.1 * k, rng) for k in range(2000)])
    cfg = scenario.radar
    assert len(pts) == pytest.approx(2000 * cfg.clutter_points_per_frame, rel=0.1)
    rng_m = np.linalg.norm(pts[:, :3], axis=1)
    # Evenly over the range bins: as many near the mast as in any other 8 m.
    near = float(np.mean(rng_m < 8.0))
    assert near == pytest.approx(7.5 / (cfg.max_range_m - 0.5), abs=0.02)
    assert float(np.median(rng_m)) == pytest.approx(cfg.max_range_m / 2, rel=0.1)
    # Static clutter removal empties the zero-Doppler bin: nothing static is reported.
    assert float(np.abs(pts[:, 3]).min()) >= DOPPLER_BIN_MPS - 1e-3
    az = np.degrees(np.arctan2(pts[:, 0], pts[:, 1]))
    assert float(np.abs(az).max()) <= cfg.fov_azimuth_deg


def test_radial_speed_follows_the_daemons_clock_at_speed() -> None:
    from hal.sim.radar import RadarModel
    from hal.sim.scenario import load_scenario
    from hal.sim.world import World

    scenario = load_scenario("drone-hover-approach").model_copy(
        update={"radar": load_scenario("empty-sky").radar.model_copy(
            update={"clutter_points_per_frame": 0.0})})
    t = 25.0  # approaching the mast at 4 m/s
    speeds = []
    for scale in (1.0, 3.0):
        model = RadarModel(scenario, World(scenario), 0.0, time_scale=scale)
        pts = model.frame(t, np.random.default_rng(2))
        speeds.append(float(np.median(pts[:, 3])))
    assert speeds[0] < -2.0
    assert speeds[1] == pytest.approx(3.0 * speeds[0], rel=0.05)
