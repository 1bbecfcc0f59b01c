"""`edgenode selftest --local` with the daemon stopped: the command opens the parts itself
(on a twin the test owns) and finds a fault; with a daemon answering it refuses."""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgenode.cli.selftest import cmd_selftest
from tests.conftest import EDGENODE, ROOT, Mosquitto
from tests.simdaemon import SimDaemon, SimTwin


@pytest.fixture
def twin(tmp_path: Path, shared_broker: Mosquitto) -> Iterator[SimTwin]:
    twin = SimTwin("one-drone-crossing", tmp_path / "state", shared_broker)
    yield twin
    twin.stop()


def _local(twin: SimTwin, *args: str) -> tuple[int, dict, str]:
    proc = subprocess.run([*EDGENODE, "selftest", "--local", "--json", "--config",
                           str(twin.config), "--state-dir", str(twin.state), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, json.loads(proc.stdout or "{}"), proc.stderr


def test_local_selftest_opens_the_parts_and_names_a_dead_microphone(twin: SimTwin) -> None:
    twin.control("fault.start", name="mic-channel-dead")
    code, report, err = _local(twin)
    assert code == 1, err
    assert report["mode"] == "local"
    bad = {c["name"]: c for c in report["checks"] if c["result"] in ("WARN", "FAIL")}
    assert list(bad) == ["acoustic.silent"], bad
    assert "microphone(s) 5 (capture channel 5) silent" in bad["acoustic.silent"]["hint"]
    results = {c["name"]: c["result"] for c in report["checks"]}
    # The parts it opened itself pass; the broker is left to the daemon's link.
    for name in ("radar.port", "radar.framing", "radar.rate", "acoustic.stream",
                 "acoustic.wiring", "relay.inputs", "relay.key", "i2c:compass.heading"):
        assert results[name] == "PASS", (name, report)
    assert results["broker.connection"] == "SKIP"


def test_local_refuses_while_the_daemon_answers(twin: SimTwin,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    daemon: SimDaemon = twin.daemon()
    try:
        daemon.status(timeout_s=60)
        args = argparse.Namespace(local=True, config=str(twin.config),
                                  state_dir=str(twin.state), part=None, json=True,
                                  pulse_relay=False)
        started = time.monotonic()
        assert cmd_selftest(args) == 2
        assert "the daemon answers" in capsys.readouterr().err
        assert time.monotonic() - started < 5  # it asked, it did not open anything
    finally:
        daemon.stop()
