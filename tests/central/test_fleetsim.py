"""The fleet simulator's one event loop (edgenode/central/netloop.py): many nodes on one
thread, sockets past file descriptor 1024, and the node's contract as the central service
reads it, counted against the simulator's own log."""

from __future__ import annotations

import json
import os
import resource
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from edgenode.central.fleetsim import FleetSim
from edgenode.link.mqtt import BrokerOptions, InboundMessage, MqttClient
from tests.conftest import Mosquitto
from tests.link.helpers import wait_until


class Recorder:
    """Every message under edgenode/, with the retain flag as published (MQTT 5)."""

    def __init__(self, url: str, name: str, *, subscribe: bool = True):
        self.messages: list[tuple[str, dict[str, Any], bool]] = []
        self.client = MqttClient(BrokerOptions(url=url, client_id=name))
        if subscribe:
            self.subscribe()

    def subscribe(self) -> None:
        self.client.subscribe("edgenode/#", self._on, retain_as_published=True)

    def _on(self, msg: InboundMessage) -> None:
        self.messages.append((msg.topic, json.loads(msg.payload), msg.retain))

    def __enter__(self) -> Recorder:
        self.client.start()
        assert self.client.connected.wait(10)
        assert self.client.subscribed.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.stop()

    def on(self, suffix: str) -> list[tuple[str, dict[str, Any], bool]]:
        return [m for m in self.messages if m[0].endswith("/" + suffix)]


@contextmanager
def sockets_above_1024() -> Iterator[None]:
    """Hold ~1100 descriptors open, so every socket opened meanwhile lands above 1024, where
    select() (paho's own loop, the test's recorders) fails."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2048:
        pytest.skip(f"hard limit on open files is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2048), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_forty_nodes_on_one_thread_keep_the_contract_counted_against_the_sims_log(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    log = tmp_path / "sim.log"
    sim = FleetSim(mosquitto.url, nodes=40, drones=8, seconds=5, rate_hz=2.0,
                   health_period_s=1.0, events_log=log)
    late_rec = Recorder(mosquitto.url, "rec-late", subscribe=False)  # subscribes mid-run
    with Recorder(mosquitto.url, "rec-early") as rec, late_rec, sockets_above_1024():
        before = threading.active_count()
        runner = threading.Thread(target=sim.run)
        runner.start()
        assert wait_until(lambda: len(rec.on("events")) > 40, 15)
        assert threading.active_count() - before == 1  # the runner only: no thread per node
        fds = [n.client.socket().fileno() for n in sim.nodes if n.client.socket() is not None]
        late_rec.subscribe()
        assert wait_until(lambda: len(late_rec.on("status")) >= 40, 5)
        late = list(late_rec.messages)
        runner.join(30)
        assert not runner.is_alive()
        time.sleep(0.3)
    assert len(fds) == 40 and min(fds) > 1024  # beyond select()'s reach

    # births: retained, one per node, with a position, seen by a subscriber that came late
    births = {(p["site"], p["node"]): p for _, p, retained in late
              if p.get("state") == "online" and retained}
    assert len(births) == 40
    assert all(-90 <= b["position"]["latitude_deg"] <= 90 for b in births.values())
    assert all(r for _, p, r in rec.on("health"))  # health is retained too
    assert {(p["site"], p["node"]) for _, p, _ in rec.on("health")} == set(births)
    # a clean stop says so (retained), and no last will went out
    offline = [p for _, p, _ in rec.on("status") if p.get("state") == "offline"]
    assert len(offline) == 40 and {p["reason"] for p in offline} == {"stopped"}

    # events: exactly the simulator's log, each once, seq contiguous per session
    events = [p for _, p, _ in rec.on("events")]
    ids = [e["event_id"] for e in events]
    assert len(ids) == len(set(ids)) == len(sim.published_ids) > 300
    assert set(ids) == set(sim.published_ids) == set(log.read_text().split())
    seqs: dict[tuple[str, str, int], list[int]] = defaultdict(list)
    for e in events:
        seqs[(e["site"], e["node"], e["session"])].append(e["seq"])
    assert len(seqs) == 40
    for key, got in seqs.items():
        assert sorted(got) == list(range(len(got))), key
    # every node track starts with `new` and ends with `end` within the run
    kinds: dict[str, list[str]] = defaultdict(list)
    for e in sorted(events, key=lambda e: (e["site"], e["node"], e["seq"])):
        kinds[e["object_id"]].append(e["type"])
    assert all(k[0] == "new" and k[-1] == "end" and "end" not in k[:-1]
               for k in kinds.values()), kinds


def test_a_node_whose_connection_drops_leaves_its_will_comes_back_and_loses_nothing(
        mosquitto: Mosquitto) -> None:
    sim = FleetSim(mosquitto.url, nodes=5, drones=1, seconds=6, rate_hz=5.0)
    with Recorder(mosquitto.url, "rec-drop") as rec:
        runner = threading.Thread(target=sim.run)
        runner.start()
        assert wait_until(lambda: len(rec.on("events")) > 20, 15)
        victim = sim.nodes[2]
        sock = victim.client.socket()
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)  # the line drops: no DISCONNECT
        runner.join(30)
        time.sleep(0.3)
    mine = [(p.get("state"), p.get("reason")) for t, p, _ in rec.on("status")
            if p["node"] == victim.name]
    assert mine[:3] == [("online", None), ("offline", "connection_lost"), ("online", None)]
    # QoS 1: what was in flight when the line dropped may come twice, but none is missing
    assert set(sim.published_ids) == {p["event_id"] for _, p, _ in rec.on("events")}
    seqs = sorted({p["seq"] for _, p, _ in rec.on("events") if p["node"] == victim.name})
    assert seqs == list(range(len(seqs))) and len(seqs) > 20
