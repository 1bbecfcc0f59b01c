"""Helpers for the central service's broker tests: a subscriber to fused tracks, and
`edgenode central` as a subprocess."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import jsonschema

from edgenode.central.tracks import load_schema
from edgenode.link.mqtt import BrokerOptions, InboundMessage, MqttClient
from edgenode.ulid import new_ulid
from tests.conftest import EDGENODE


class TrackWatcher:
    """Subscribes to edgenode/+/central/tracks; every payload must match the schema."""

    def __init__(self, url: str, mqtt_version: str = "5"):
        self.tracks: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self.client = MqttClient(BrokerOptions(url=url, client_id=f"watch-{new_ulid()[-8:]}",
                                               mqtt_version=mqtt_version))
        self.client.subscribe("edgenode/+/central/tracks", self._on)
        self._validator = jsonschema.Draft202012Validator(load_schema())

    def _on(self, msg: InboundMessage) -> None:
        payload = json.loads(msg.payload)
        for error in self._validator.iter_errors(payload):
            self.errors.append(f"{msg.topic}: {error.message}")
        with self._lock:
            self.tracks.append(payload)

    def __enter__(self) -> TrackWatcher:
        self.client.start()
        assert self.client.connected.wait(10) and self.client.subscribed.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.stop()


def central_proc(url: str, name: str, *args: str,
                 log: Path | None = None) -> subprocess.Popen[str]:
    """`edgenode central` as a real process; SIGTERM makes it print its stats as JSON on
    stdout. Its log goes to a pipe (read by central_ready), or to `log` for a long run that
    nobody reads while it goes (a full pipe would stall it)."""
    argv = [*EDGENODE, "central", "--broker", url, "--instance", name, *args]
    if log is None:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with log.open("a") as fh:
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=fh, text=True)


def central_ready(proc: subprocess.Popen[str], log: Path | None = None,
                  timeout_s: float = 30.0) -> None:
    """Wait for the instance's `ready on` line (its subscriptions are in place)."""
    if log is None:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "ready on" in line:
                return
    else:
        deadline = time.monotonic() + timeout_s
        while proc.poll() is None and time.monotonic() < deadline:
            if "ready on" in log.read_text():
                return
            time.sleep(0.1)
    raise AssertionError(f"central did not start (exit {proc.poll()})")
