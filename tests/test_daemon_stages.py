"""The daemon's stages fail safe: errors are logged with where they came from (once per
distinct error, not once per loop), a stage that will not stop keeps what it uses, and
counters shared between threads are exact."""

from __future__ import annotations

import logging
import sys
import threading
import time

import pytest

from edgenode.config import Config
from edgenode.config.models import I2CDevice, SensorsSection
from edgenode.daemon.sensing import I2CStage, ReadingQueue, _Stage
from edgenode.health import ErrorLog, Health, LoopThread

HEALTH_LOG = "edgenode.health"


def _raise(exc: Exception) -> None:
    raise exc


def test_an_error_is_logged_with_its_traceback_once_per_period_then_with_its_count(
        caplog: pytest.LogCaptureFixture) -> None:
    errors = ErrorLog(logging.getLogger("test.errors"), period_s=0.3)
    caplog.set_level(logging.WARNING, "test.errors")
    for _ in range(5):
        try:
            _raise(OSError(5, "bus error"))
        except OSError as exc:
            errors.report(logging.WARNING, "i2c 'compass'", exc)
    try:
        _raise(ValueError("other"))
    except ValueError as exc:
        assert errors.report(logging.ERROR, "i2c 'compass'", exc)  # a new kind of error
    time.sleep(0.35)
    assert errors.report(logging.WARNING, "i2c 'compass'", OSError(5, "bus error"))
    records = caplog.records
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.WARNING, "i2c 'compass': OSError: [Errno 5] bus error"),
        (logging.ERROR, "i2c 'compass': ValueError: other"),
        (logging.WARNING,
         "i2c 'compass': OSError: [Errno 5] bus error (and 4 more since last logged)")]
    assert records[0].exc_info and "_raise" in caplog.text  # the traceback, to the raise


def test_a_failing_step_is_an_error_with_its_traceback_not_a_debug_line(
        caplog: pytest.LogCaptureFixture) -> None:
    health = Health()
    stage = health.register("flaky", deadline_s=5)
    stop = threading.Event()
    calls = []

    def step() -> None:
        calls.append(1)
        if len(calls) >= 6:
            stop.set()
        raise RuntimeError("decoder bug")

    caplog.set_level(logging.DEBUG, HEALTH_LOG)
    thread = LoopThread(stage, step, stop, error_backoff_s=0.01)
    thread.start()
    thread.join(5)
    assert len(calls) == 6 and stage.state == "failed"
    failures = [r for r in caplog.records if "decoder bug" in r.getMessage()
                and r.name == HEALTH_LOG and r.exc_info]
    assert [(r.levelno, r.getMessage()) for r in failures] == [
        (logging.ERROR, "flaky: step failed: RuntimeError: decoder bug")], "once, at ERROR"


def test_an_absent_i2c_part_is_a_warning_with_its_traceback_once_not_every_second(
        caplog: pytest.LogCaptureFixture) -> None:
    sensors = SensorsSection(i2c_backend="fake", i2c=[
        I2CDevice(name="board-temp", kind="tmp102", address=0x48)])
    stage = I2CStage(sensors, 0.0, Health())
    stage.PERIOD_S = 0.0
    caplog.set_level(logging.DEBUG, "edgenode.daemon.sensing")
    for _ in range(3):
        stage.step()
    assert stage.failures == 3 and stage.health.state == "degraded"
    assert "tmp102 'board-temp'" in stage.errors["board-temp"]
    logged = [r for r in caplog.records
              if r.name == "edgenode.daemon.sensing" and "board-temp" in r.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.WARNING and logged[0].exc_info
    assert "no ACK" in logged[0].getMessage()


class _StuckStage(_Stage):
    """A reader whose device read never returns until the test lets it."""

    name = "stuck"
    STOP_TIMEOUT_S = 0.3

    def __init__(self) -> None:
        super().__init__(Health(), deadline_s=5)
        self.release = threading.Event()
        self.in_step = threading.Event()
        self.closed_while_running = None

    def step(self) -> None:
        self.in_step.set()
        self.release.wait(10)

    def close(self) -> None:
        self.closed_while_running = self._thread.is_alive()


def test_a_stage_that_does_not_stop_keeps_its_device_and_says_so(
        caplog: pytest.LogCaptureFixture) -> None:
    stage = _StuckStage()
    stage.start()
    assert stage.in_step.wait(5)
    with caplog.at_level(logging.ERROR, "edgenode.daemon.sensing"):
        stage.stop()
    assert stage.closed_while_running is None, "closed what a live thread still uses"
    assert "stuck: the stage's thread did not stop within 0.3 s" in caplog.text
    stage.release.set()
    stage._thread.join(5)


def test_a_stage_that_stops_closes_its_device() -> None:
    stage = _StuckStage()
    stage.release.set()
    stage.start()
    assert stage.in_step.wait(5)
    stage.stop()
    assert stage.closed_while_running is False


def test_drops_counted_by_several_readers_at_once_are_exact() -> None:
    readings = ReadingQueue(maxsize=2)
    per_thread, threads = 20_000, 4
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show
    try:
        workers = [threading.Thread(target=lambda: [readings.put("radar", i)
                                                    for i in range(per_thread)])
                   for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        sys.setswitchinterval(old)
    assert readings.dropped + readings.depth() == per_thread * threads


UMA16 = {"backend": "fake", "device": "x", "geometry": "uma16", "channels": 16}


def node_config(**sections: dict[str, object]) -> Config:
    """A node's config with a fake relay and the given sensor sections."""
    return Config.model_validate({
        "node": {"site": "s", "id": "n", "latitude_deg": 57.0, "longitude_deg": 11.9,
                 "altitude_m": 10, "mast_heading_deg": 0},
        "broker": {"url": "mqtt://127.0.0.1:1883"},
        "relay": {"backend": "fake", "drive_line": 17, "heartbeat_line": 27, "aux_line": 22,
                  "key_test_line": 5, "key_operate_line": 6, "max_on_s": 60},
        **sections})


def test_one_radar_frames_track_events_go_to_the_outbox_together() -> None:
    """Two drones in every frame: each frame's events (both tracks' news or updates) reach
    the link in one call, so they commit in one outbox transaction or not at all."""
    import numpy as np

    from edgenode.daemon.tracking import DetectionStage
    from tests.detect.test_plots import frame_of, radar_points

    config = node_config(radar={"model": "ti-mmwave", "data_port": "/dev/null",
                                "mount_height_m": 3.0})
    readings = ReadingQueue()
    batches: list[list[str]] = []
    stage = DetectionStage(config, Health(), readings,
                           lambda events: batches.append([e["object_id"] for e in events]))
    rng = np.random.default_rng(3)
    a, b = np.array([-20.0, 30.0, 12.0]), np.array([25.0, 45.0, 15.0])
    stage.start()
    try:
        t0 = time.time()
        for k in range(60):
            pts = radar_points(a, 0.5, rng) + radar_points(b, -0.5, rng)
            readings.put("radar", frame_of(k, t0 + 0.1 * k, pts))
            time.sleep(0.005)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(len(set(b)) == 2 for b in batches):
            time.sleep(0.05)
    finally:
        stage.stop()
    assert any(len(set(batch)) == 2 for batch in batches), batches


def test_audio_blocks_lost_on_the_way_are_holes_to_the_detector() -> None:
    """The audio port numbers its blocks; where the numbers jump (an overrun, blocks the
    reading queue dropped) the detector must not join the samples either side."""
    import numpy as np

    from edgenode.daemon.tracking import DetectionStage
    from hal.acoustic import load_geometry
    from hal.ports.audio import AudioBlock

    config = node_config(acoustic=UMA16)
    readings = ReadingQueue()
    stage = DetectionStage(config, Health(), readings, lambda events: None,
                           geometry_m=load_geometry("uma16").positions_m)
    rng = np.random.default_rng(5)
    indices = [0, 1, 2, 5, 6, 7, 8, 12, 13]  # two holes
    stage.start()
    try:
        t0 = time.time()
        for i in indices:
            samples = (0.01 * rng.standard_normal((4096, 16))).astype(np.float32)
            block = AudioBlock(samples, 48000, t0 + i * 4096 / 48000, i)
            readings.put("audio", (block, samples))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and stage.blocks < len(indices):
            time.sleep(0.02)
    finally:
        stage.stop()
    assert stage.blocks == len(indices)
    assert stage.detector is not None and stage.detector.holes == 2


def test_the_second_drone_path_follows_the_nodes_config() -> None:
    from edgenode.daemon.tracking import DetectionStage
    from hal.acoustic import load_geometry

    def stage(**acoustic: object) -> DetectionStage:
        config = node_config(acoustic={**UMA16, **acoustic})
        return DetectionStage(config, Health(), ReadingQueue(), lambda events: None,
                              geometry_m=load_geometry("uma16").positions_m)

    assert stage().detector.p.second_drone is False  # type: ignore[union-attr]
    assert stage(second_drone=True).detector.p.second_drone is True  # type: ignore[union-attr]
