"""A real publishing process killed (-9) or frozen (SIGSTOP): nothing lost, offline seen. On
Mosquitto and, under `make test-long`, on RabbitMQ (MQTT 3.1.1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Mosquitto, mosquitto_version, terminate
from tests.link.helpers import Recorder, write_config


class Publisher:
    """`python -m tests.link.publisher` with its stdout lines collected."""

    def __init__(self, config: Path, state_dir: Path, count: int, rate: float = 400):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.link.publisher", "--config", str(config),
             "--state-dir", str(state_dir), "--count", str(count), "--rate", str(rate)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def committed(self) -> list[tuple[int, int]]:
        return [(int(a), int(b)) for a, b in
                (line.split() for line in list(self.lines) if line != "drained")]

    def wait_line(self, predicate, timeout_s: float = 15) -> bool:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.lines):
                return True
            time.sleep(0.02)
        return False

    def end(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            terminate(self.proc)


@pytest.fixture
def publishers() -> Iterator[list[Publisher]]:
    started: list[Publisher] = []
    yield started
    for pub in started:
        pub.end()


def test_kill_9_mid_stream_then_restart_loses_nothing(tmp_path: Path, any_broker: Any,
                                                      publishers: list[Publisher]) -> None:
    config = write_config(tmp_path / "node.toml", any_broker.url, reconnect_min_s=0.2,
                          reconnect_max_s=1, mqtt_version=any_broker.mqtt_version)
    state = tmp_path / "state"
    recorder = Recorder.for_broker(any_broker).start()
    first = Publisher(config, state, count=100_000)
    publishers.append(first)
    assert first.wait_line(lambda lines: len(lines) >= 400), "publisher did not get going"
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait(5)
    committed = first.committed()
    assert committed and {session for session, _ in committed} == {1}

    second = Publisher(config, state, count=0)
    publishers.append(second)
    assert second.wait_line(lambda lines: "drained" in lines, 20)
    assert recorder.wait_for(
        lambda: {e["seq"] for e in recorder.unique_events().values()
                 if e["session"] == 1} >= {seq for _, seq in committed}, 10)
    second.end()
    recorder.stop()
    assert recorder.problems == []
    first_session = sorted(e["seq"] for e in recorder.unique_events().values()
                           if e["session"] == 1)
    # Everything committed arrived; an event committed in the instant of the kill (not yet
    # printed) may arrive too, but the sequence never has a hole.
    assert first_session == list(range(len(first_session)))
    assert len(first_session) >= len(committed)
    births = [m.payload for m in recorder.on("status") if m.payload["state"] == "online"]
    assert [b["session"] for b in births] == [1, 2]
    offline = [m.payload for m in recorder.on("status") if m.payload["state"] == "offline"]
    assert offline[0]["reason"] == "connection_lost", "kill -9 fires the last will"


def test_last_will_offline_within_1_5_keepalive_plus_1_s_when_frozen(
        tmp_path: Path, any_broker: Any, publishers: list[Publisher]) -> None:
    keepalive_s = 2
    config = write_config(tmp_path / "node.toml", any_broker.url, keepalive_s=keepalive_s,
                          mqtt_version=any_broker.mqtt_version)
    recorder = Recorder.for_broker(any_broker).start()
    pub = Publisher(config, tmp_path / "state", count=0)
    publishers.append(pub)
    assert recorder.wait_for(lambda: recorder.on("status"), 15)
    assert pub.wait_line(lambda lines: "drained" in lines)
    time.sleep(0.5)
    os.kill(pub.proc.pid, signal.SIGSTOP)
    frozen_at = time.monotonic()
    assert recorder.wait_for(
        lambda: recorder.on("status")[-1].payload["state"] == "offline", 15)
    will = recorder.on("status")[-1]
    elapsed = will.t - frozen_at
    assert will.payload["reason"] == "connection_lost"
    print(f"last will after {elapsed:.2f} s frozen")
    # The bound is 1.5 x keepalive + 1 s. Mosquitto before 2.1 scans for expired
    # keepalives only every 5-6 s (keepalive.c: `last_keepalive_check + 5 < now`; measured
    # here with a raw paho client: 1.7-6.2 s after a freeze with keepalive 2), so with it the
    # will may come up to 6 s later whatever the node does; 2.1's per-second ring meets it.
    # RabbitMQ 3.10 sent the will 5.4-5.5 s after the freeze in every run here (keepalive 2):
    # a frozen client is noticed one more 1.5 x keepalive period late, whatever the node does.
    if isinstance(any_broker, Mosquitto):
        scan_period_s = 6.0 if mosquitto_version() < (2, 1) else 0.0
    else:
        scan_period_s = 1.5 * keepalive_s
    assert elapsed <= 1.5 * keepalive_s + 1 + scan_period_s, f"offline after {elapsed:.2f} s"
    recorder.stop()
    assert recorder.problems == []
