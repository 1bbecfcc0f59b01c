"""The real daemon on the digital twin, both as subprocesses (`edgenode run --sim`)."""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hal.radar import points_digest
from tests.conftest import Mosquitto
from tests.simdaemon import SimDaemon, engage, radiating_changes

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


@pytest.mark.long  # make test budget; decoding is pinned frame by frame in tests/hal
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


def test_sigterm_with_live_tracks_stops_without_an_error(sim_daemon) -> None:
    # Detection publishes into the link until it stops: the link must outlive it.
    daemon = sim_daemon("one-drone-crossing", "--speed", "2")
    deadline = time.monotonic() + 30
    while not any(t["status"] == "confirmed" for t in daemon.status()["tracks"]):
        assert time.monotonic() < deadline, f"no track; log:\n{daemon.log_text()}"
        time.sleep(0.5)
    assert daemon.stop() == 0
    log = daemon.log_path.read_text()
    assert "Traceback" not in log and "step failed" not in log, log[-3000:]
    stopped = [line.split("node: ")[-1] for line in log.splitlines() if line.endswith(" stopped")]
    assert stopped.index("detect stopped") < stopped.index("link stopped"), stopped


@pytest.mark.parametrize("heading", [0.0, pytest.param(70.0, marks=pytest.mark.long)])
def test_static_source_bearing_from_the_daemons_direction_finding_is_within_3_deg_rms(
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
    # Issue 5: bearing error RMS <= 3 degrees at this SNR (17 m, 16 mics). The reported
    # uncertainty means something: nearly every block lies within 3 sigma + 1 degree (a block
    # may straddle an audio hiccup when the shared machine starves the twin).
    rms = float(np.sqrt(np.mean(errors ** 2)))
    assert rms <= 3.0, (rms, true_bearing, bearings)
    sigmas = np.array([max(e, 0.5) for _, _, e in bearings])
    inside = np.abs(errors) <= 3 * sigmas + 1.0
    assert inside.mean() >= 0.8, (true_bearing, bearings)


def test_jammer_stops_radiating_within_dropout_when_daemon_is_sigkilled_while_on(
        sim_daemon, mosquitto: Mosquitto) -> None:
    daemon = sim_daemon("empty-sky")
    # discover=False: finding the one node online is `ctl`'s own test (tests/control/test_ctl.py)
    engage(daemon, mosquitto, discover=False)
    killed_at = time.time()
    daemon.proc.send_signal(signal.SIGKILL)
    daemon.proc.wait(5)
    # The twin outlives its parent long enough to record the board; the record is read as soon
    # as it is there (the bound below is on its timestamp, not on when it was read).
    deadline = time.monotonic() + 3.0
    while True:
        off = [t for t, radiating in radiating_changes(daemon) if not radiating and t > killed_at]
        if off or time.monotonic() > deadline:
            break
        time.sleep(0.02)
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
        parts = {name.split(".")[0] for name in status["health"].get("readings", {})}
        if parts >= PARTS:
            break
        time.sleep(0.5)
    readings = status["health"]["readings"]
    assert {name.split(".")[0] for name in readings} >= PARTS, readings
    assert status["stages"]["i2c"]["state"] == "ok", status["stages"]["i2c"]
    assert status["health"]["counters"]["i2c"]["failures"] == 0
    assert 0 <= readings["jammer-power.current_a"] < 0.5  # jammer not radiating
