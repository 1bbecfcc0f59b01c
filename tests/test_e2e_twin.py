"""The real daemon on the digital twin, both as subprocesses (`edgenode run --sim`)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edgenode.control_socket import request
from hal.radar import points_digest
from tests.conftest import EDGENODE, ROOT, Mosquitto

HOVER_SCENARIO = """
name = "hover-doa"
description = "a quadcopter holds still at a known bearing, 35 m out"
hardware = "pi5-iwr6843-uma16"
duration_s = 600
seed = 11

[node]
mast_heading_deg = {heading}
mast_height_m = 6.0

[ambient]
level_dba = 38.0
spectrum = "road"

[[targets]]
id = "drone-1"
kind = "quad"
rotor_rpm = 5700
level_dba_1m = 76.0
rcs_m2 = 0.03
after_end = "hold"
waypoints = [
  {{ position_m = [{east}, {north}], altitude_m = 12.0, speed_mps = 1.0, hold_s = 600.0 }},
]
"""


class SimDaemon:
    """`edgenode run --sim` as a real subprocess, with its control socket and truth file."""

    def __init__(self, scenario: str | Path, state: Path, broker: Mosquitto, *args: str):
        self.state = state
        env = dict(os.environ, EDGENODE_ALLOW_FAULTS="1")
        env.pop("STATE_DIRECTORY", None)
        self.log = open(state.parent / f"{state.name}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*EDGENODE, "run", "--sim", str(scenario), "--broker", broker.url, "--state-dir",
             str(state), *args], cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def status(self, timeout_s: float = 30) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return request(self.state / "control.sock", {"cmd": "status"})
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError(f"daemon not answering; log:\n{self.log_text()}") from None
                time.sleep(0.2)

    def log_text(self) -> str:
        return (self.state.parent / f"{self.state.name}.log").read_text()[-4000:]

    def truth(self) -> list[dict]:
        path = self.state / "sim" / "truth.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture
def sim_daemon(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[callable]:
    started: list[SimDaemon] = []

    def start(scenario: str | Path, *args: str) -> SimDaemon:
        daemon = SimDaemon(scenario, tmp_path / f"state{len(started)}", mosquitto, *args)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


def test_daemon_decodes_at_least_99_percent_of_the_twins_radar_frames_exactly(
        sim_daemon) -> None:
    daemon = sim_daemon("one-drone-crossing", "--speed", "2")
    daemon.status()
    time.sleep(12)
    decoded = {n: d for n, d in daemon.status()["radar_frames"]}
    log = daemon.state / "sim" / "radar.jsonl"
    emitted = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert decoded, f"no radar frame decoded; log:\n{daemon.log_text()}"
    # Frames emitted while the daemon was listening: from its first decoded frame to a
    # second before the query (still in flight).
    first, last = min(decoded), max(decoded) - 20
    window = [f for f in emitted if first <= f["frame"] <= last and f["intact"]]
    assert len(window) > 100
    equal = sum(1 for f in window
                if decoded.get(f["frame"]) == points_digest(np.array(f["points"], np.float32)))
    assert equal / len(window) >= 0.99, f"{equal} of {len(window)} frames decoded equal"


@pytest.mark.parametrize("heading", [0.0, 70.0])
def test_static_source_bearing_comes_out_of_the_daemons_direction_finding_within_2_deg(
        sim_daemon, tmp_path: Path, heading: float) -> None:
    east, north = 12.0, -12.5  # true bearing 136.2 degrees from north, 17 m out
    scenario = tmp_path / f"hover-{heading:.0f}.toml"
    scenario.write_text(HOVER_SCENARIO.format(heading=heading, east=east, north=north))
    daemon = sim_daemon(scenario)
    daemon.status()
    bearings: list[tuple[float, float, float]] = []
    deadline = time.monotonic() + 40
    while len(bearings) < 8 and time.monotonic() < deadline:
        time.sleep(1)
        bearings = daemon.status()["recent_bearings"]
    assert len(bearings) >= 5, f"too few acoustic bearings: {bearings}"
    truth = [r for r in daemon.truth() if r.get("id") == "drone-1"][-1]
    true_bearing = math.degrees(math.atan2(truth["enu_m"][0], truth["enu_m"][1])) % 360
    errors = np.array([(b - true_bearing + 180) % 360 - 180 for _, b, _ in bearings])
    # The daemon's estimate is the median over its blocks; each block is within 3 sigma.
    assert abs(float(np.median(errors))) <= 2.0, (true_bearing, bearings)
    sigmas = np.array([max(e, 0.5) for _, _, e in bearings])
    assert np.all(np.abs(errors) <= 3 * sigmas + 1.0), (true_bearing, bearings)


def radiating_changes(daemon: SimDaemon) -> list[tuple[float, bool]]:
    return [(r["t"], r["radiating"]) for r in daemon.truth() if "radiating" in r]


def ctl(daemon: SimDaemon, broker: Mosquitto, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGENODE, "ctl", "--broker", broker.url, "--key",
                           str(daemon.state / "operator.key"), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)


def engage(daemon: SimDaemon, broker: Mosquitto, duration_s: int = 30) -> float:
    """Arm and engage through the operator tool; return when the twin radiates."""
    daemon.status()
    for attempt in ("arm", "engage"):
        args = ["arm", "--ttl", "60"] if attempt == "arm" else [
            "engage", "--duration", str(duration_s), "--bearing", "90"]
        proc = ctl(daemon, broker, *args)
        assert proc.returncode == 0, f"ctl {attempt}: {proc.stdout}{proc.stderr}"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        on = [t for t, radiating in radiating_changes(daemon) if radiating]
        if on:
            return on[-1]
        time.sleep(0.05)
    raise AssertionError(f"the twin's jammer never radiated; log:\n{daemon.log_text()}")


def test_jammer_stops_radiating_within_dropout_when_daemon_is_sigkilled_while_on(
        sim_daemon, mosquitto: Mosquitto) -> None:
    daemon = sim_daemon("empty-sky")
    engage(daemon, mosquitto)
    killed_at = time.time()
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait(5)
    time.sleep(1.5)  # the twin outlives its parent long enough to record the board
    off = [t for t, radiating in radiating_changes(daemon) if not radiating and t > killed_at]
    assert off, "the jammer kept radiating after the daemon died"
    # Board dropout: 200 ms monostable (+20 %) and the contactor's release time.
    assert off[0] - killed_at <= 0.26


PARTS = {"jammer-power", "compass", "enclosure-temp"}


def test_i2c_parts_are_read_and_the_compass_confirms_the_mast_heading(sim_daemon) -> None:
    daemon = sim_daemon("empty-sky")
    daemon.status()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status = daemon.status()
        if status["health"]["i2c"]["readings"].keys() >= PARTS:
            break
        time.sleep(0.5)
    i2c = status["health"]["i2c"]
    assert set(i2c["readings"]) >= PARTS, i2c
    assert i2c["errors"] == {}
    assert status["stages"]["i2c"]["state"] == "ok", status["stages"]["i2c"]
    assert 0 <= i2c["readings"]["jammer-power"]["current_a"] < 0.5  # jammer not radiating
