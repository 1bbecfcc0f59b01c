"""`edgenode ctl watch`, the operator's live view, as a real subprocess on a real broker:
a node's retained state and its track events (published here as a node publishes them)
become the table of nodes, the table of live tracks and the ticker of recent events."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edgenode.link.mqtt import BrokerOptions, MqttClient
from edgenode.link.payloads import Envelope, encode
from edgenode.ulid import new_ulid
from tests.conftest import EDGENODE, ROOT, Mosquitto
from tests.link.helpers import track_event, wait_until

SITE, NODE = "north", "mast-07"
PREFIX = f"edgenode/{SITE}/{NODE}"
ENV = Envelope(SITE, NODE, 3)


class Node:
    """Publishes what a node publishes: retained status, health, effector; events."""

    def __init__(self, broker: Mosquitto):
        self.client = MqttClient(BrokerOptions(url=broker.url, client_id=f"node-{new_ulid()}"))
        self.client.start()
        assert self.client.connected.wait(5)
        self.seq = 0

    def retained(self, leaf: str, body: dict[str, Any]) -> None:
        self.client.publish(f"{PREFIX}/{leaf}", encode(body), qos=1,
                            retain=True).wait_for_publish(5)

    def event(self, event: dict[str, Any]) -> None:
        body = ENV.event(event, self.seq, time.time())
        self.seq += 1
        self.client.publish(f"{PREFIX}/events", encode(body), qos=1).wait_for_publish(5)


def _publish_node_state(node: Node) -> None:
    now = time.time()
    node.retained("status", ENV.online(
        t=now, version="0.1.0", hardware="pi5", capabilities=["radar"],
        position={"datum": "WGS84", "latitude_deg": 1.0, "longitude_deg": 2.0,
                  "altitude_m": 3.0}, mast_heading_deg=0.0, config_digest="sha256:0",
        client_id="edgenode-north-mast-07", mqtt_version="5"))
    node.retained("health", ENV.state({"state": "failed", "parts": {
        "radar": {"state": "failed", "reason": "no frame"}, "link": {"state": "ok",
                                                                      "reason": ""}}}, now))
    node.retained("effector", ENV.state({"state": "ARMED", "reason": "armed by alice",
                                         "alarm": None}, now))


class Watch:
    """`edgenode ctl watch` running, its output collected line by line."""

    def __init__(self, broker: Mosquitto, *args: str, as_json: bool = False):
        env = {**os.environ, "EDGENODE_CTL_CONFIG": "/nonexistent/ctl.toml"}
        flags = ["--json"] if as_json else []
        self.proc = subprocess.Popen(
            [*EDGENODE, "ctl", "--broker", broker.url, *flags, "watch", *args], cwd=ROOT,
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_drawn(self) -> None:
        """Until the first redraw: ctl is connected and subscribed."""
        assert wait_until(lambda: self.lines, 20), "ctl watch drew nothing"

    def end(self) -> tuple[int, str, str]:
        rc = self.proc.wait(20)
        self._reader.join(5)
        assert self.proc.stderr is not None
        return rc, "\n".join(self.lines), self.proc.stderr.read()


def _play_tracks(node: Node) -> tuple[str, str]:
    """One drone that stays, one that comes and goes: (staying id, ended id)."""
    staying, gone = track_event("new"), track_event("new")
    node.event(staying)
    node.event(gone)
    node.event(track_event("update", staying["object_id"], updates=2))
    node.event(track_event("end", gone["object_id"], updates=2))
    time.sleep(1.5)  # at least two redraws after the last event
    return staying["object_id"], gone["object_id"]


def test_watch_shows_the_node_its_live_tracks_and_recent_events(mosquitto: Mosquitto) -> None:
    node = Node(mosquitto)
    _publish_node_state(node)
    watch = Watch(mosquitto, "--for", "5")
    watch.wait_drawn()
    staying, gone = _play_tracks(node)
    rc, out, err = watch.end()
    node.client.stop()
    assert rc == 0, err
    assert "\x1b[" not in out, "no terminal control codes when the output is not a terminal"
    last = out[out.rindex("edgenode watch  "):].splitlines()
    rows = [line.split() for line in last]
    assert [SITE, NODE, "online", "ARMED", "armed", "by", "alice;", "parts", "not", "ok:",
            "radar"] in rows
    tracks = [r for r in rows if r and r[0] == NODE]
    assert tracks == [[NODE, staying[-8:], "confirmed", "drone", "0.80", "123", "412",
                       "5.0"]], "the ended track is gone from the table"
    ticker = last[last.index("recent track events:") + 1:]
    assert [(line.split()[1], line.split()[3]) for line in ticker] == [
        ("new", staying[-8:]), ("new", gone[-8:]), ("end", gone[-8:])]


@pytest.mark.long  # make test budget; the live view itself stays in make test
def test_watch_json_gives_one_object_per_redraw(mosquitto: Mosquitto) -> None:
    node = Node(mosquitto)
    _publish_node_state(node)
    watch = Watch(mosquitto, "--for", "5", as_json=True)
    watch.wait_drawn()
    staying, _gone = _play_tracks(node)
    rc, out, err = watch.end()
    node.client.stop()
    assert rc == 0, err
    frames = [json.loads(line) for line in out.splitlines()]
    assert len(frames) >= 6  # one every 0.5 s
    last = frames[-1]
    assert abs(last["t"] - time.time()) < 10
    assert last["nodes"] == [{"site": SITE, "node": NODE, "status": "online",
                              "effector": "ARMED", "alarm": None,
                              "effector_reason": "armed by alice", "not_ok": ["radar"]}]
    assert [t["object_id"] for t in last["tracks"]] == [staying]


def test_watch_with_no_broker_fails_naming_it(tmp_path: Path) -> None:
    env = {**os.environ, "EDGENODE_CTL_CONFIG": "/nonexistent/ctl.toml"}
    run = subprocess.run([*EDGENODE, "ctl", "--broker", "mqtt://127.0.0.1:9", "--timeout", "1",
                          "watch", "--for", "1"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=30)
    assert run.returncode != 0 and "mqtt://127.0.0.1:9" in run.stderr
