"""The central service on a real Mosquitto: de-dup, gaps, two instances on one shared
subscription (counted against the fleet simulator's own log), an instance killed and
restarted mid-run, and the twin-equivalent crossing (two masts 400 m apart) on the fleet
simulator."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edgenode.central.fleetsim import FleetSim
from edgenode.central.geometry import LocalFrame
from edgenode.central.service import Central
from edgenode.link.mqtt import BrokerOptions, MqttClient
from edgenode.link.payloads import Envelope, encode
from edgenode.link.topics import Topics
from edgenode.ulid import new_ulid
from tests.central.helpers import TrackWatcher, central_proc, central_ready
from tests.conftest import Mosquitto, terminate
from tests.link.helpers import track_event, wait_until

QUEUE = "max_queued_messages 100000\n"  # a restarting instance must not overflow its queue


def _node(url: str, site: str, node: str, session: int = 5,
          mqtt_version: str = "5") -> tuple[MqttClient, Envelope]:
    client = MqttClient(BrokerOptions(url=url, client_id=f"test-{site}-{node}",
                                      mqtt_version=mqtt_version))
    client.start()
    assert client.connected.wait(10)
    env = Envelope(site, node, session)
    client.publish(Topics(site, node).status, encode(env.online(
        t=time.time(), version="t", hardware="test", capabilities=["acoustic"],
        position={"datum": "WGS84", "latitude_deg": 51.5, "longitude_deg": -0.12,
                  "altitude_m": 0.0}, mast_heading_deg=0.0, config_digest="x",
        client_id="c", mqtt_version=mqtt_version)), retain=True)
    return client, env


@pytest.mark.timeout(300)  # the first RabbitMQ test waits for Erlang to boot
def test_duplicates_are_counted_once_and_holes_in_seq_are_lost_unless_a_gap_explains_them(
        any_broker: Any):
    """On Mosquitto (MQTT 5, shared subscription) and RabbitMQ (3.1.1, plain per site)."""
    version = any_broker.mqtt_version
    central = Central(any_broker.url, instance=f"c-dedup-{new_ulid()[-6:].lower()}",
                      mqtt_version=version, sites=["s1"] if version != "5" else None)
    central.start()
    assert central.wait_ready()
    client, env = _node(any_broker.url, "s1", "n1", mqtt_version=version)
    events = [env.event(track_event("new" if seq == 0 else "update"), seq, time.time())
              for seq in range(6)]
    topic = Topics("s1", "n1").events
    for seq in (0, 1, 1, 3, 5, 5, 5):  # 1 and 5 repeated (QoS 1 redelivery), 2 and 4 missing
        client.publish(topic, encode(events[seq]))
    assert wait_until(lambda: central.events == 4 and central.duplicates == 3)
    assert wait_until(lambda: central.stats()["lost"] == 2)
    # the node says it dropped seq 4 on purpose: only seq 2 is a loss now
    client.publish(topic, encode(env.gap(stream="events", session=5, ranges=[[4, 4]], count=1,
                                         reason="outbox_size_cap", t=time.time())))
    assert wait_until(lambda: central.stats()["lost"] == 1)
    client.publish(topic, encode(events[2]))  # the backlog delivers it late: no loss
    assert wait_until(lambda: central.stats()["lost"] == 0)
    client.stop()
    central.stop()


def test_two_instances_split_the_fleet_without_losing_or_repeating_an_event(tmp_path: Path):
    broker = Mosquitto(tmp_path / "b", extra=QUEUE).start()
    a, b = Central(broker.url, instance="c-a"), Central(broker.url, instance="c-b")
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    a.events_log, b.events_log = logs  # type: ignore[attr-defined]
    try:
        for c in (a, b):
            c.start()
            assert c.wait_ready()
        with TrackWatcher(broker.url) as watch:
            sim = FleetSim(broker.url, nodes=20, drones=4, seconds=6, nodes_per_site=5)
            result = sim.run()
            assert wait_until(lambda: a.events + b.events >= result["events"], 10)
            time.sleep(0.5)
        assert result["events"] == len(sim.published_ids) > 100
        assert a.events + b.events == result["events"]
        assert a.events > result["events"] / 4 and b.events > result["events"] / 4  # split
        assert a.duplicates == b.duplicates == 0
        assert a.stats()["lost"] == b.stats()["lost"] == 0
        # both instances hold the whole picture and name the fused tracks alike
        assert {t["fused_id"] for t in watch.tracks if t["instance"] == "c-a"} & \
            {t["fused_id"] for t in watch.tracks if t["instance"] == "c-b"}
        assert watch.errors == []
        fused = {t["fused_id"] for t in watch.tracks if t["position"] is not None}
        history = {f: [(t["type"], sorted(m["node"] for m in t["members"]))
                       for t in watch.tracks if t["fused_id"] == f] for f in fused}
        assert len(fused) == 4, history  # one per drone: every site's 5 nodes agree
    finally:
        a.stop()
        b.stop()
        broker.stop()


@pytest.mark.timeout(300)
def test_on_mqtt_311_one_instance_per_set_of_sites_sees_all_of_its_sites_and_fuses(
        any_broker: Any):
    """The 3.1.1 fallback (RabbitMQ 3.10 has no MQTT 5): instances split the fleet by site."""
    sites = {"x": ["site000"], "y": ["site001"]}
    tag = new_ulid()[-6:].lower()
    centrals = {k: Central(any_broker.url, instance=f"c311-{k}-{tag}", mqtt_version="3.1.1",
                           sites=v) for k, v in sites.items()}
    for c in centrals.values():
        c.start()
        assert c.wait_ready()
    try:
        with TrackWatcher(any_broker.url, mqtt_version="3.1.1") as watch:
            sim = FleetSim(any_broker.url, nodes=10, drones=2, seconds=5, nodes_per_site=5,
                           mqtt_version="3.1.1")
            result = sim.run()
            assert wait_until(lambda: sum(c.events for c in centrals.values())
                              >= result["events"], 15)
            time.sleep(0.5)
        assert sum(c.events for c in centrals.values()) == result["events"]
        assert all(c.events > 0 and c.duplicates == 0 for c in centrals.values())
        assert all(c.stats()["lost"] == 0 for c in centrals.values())
        assert watch.errors == []
        by_site = {t["site"] for t in watch.tracks if t["position"] is not None}
        assert by_site == {"site000", "site001"}
    finally:
        for c in centrals.values():
            c.stop()


def _central_proc(url: str, name: str, log: Path) -> subprocess.Popen[str]:
    return central_proc(url, name, "--events-log", str(log), "--session-expiry-s", "30")


@pytest.mark.long  # make test budget; also in make bench
def test_an_instance_killed_and_restarted_mid_run_loses_nothing_and_repeats_nothing(
        tmp_path: Path):
    """With a resumable session, Mosquitto keeps the dead instance's share queued in its
    session (it does not move it); the survivor stands in for that session until the instance
    is back (test_central_standin.py shows the hand-overs)."""
    broker = Mosquitto(tmp_path / "b", extra=QUEUE).start()
    logs = {n: tmp_path / f"{n}.log" for n in ("a", "b")}
    procs = {n: _central_proc(broker.url, f"c-{n}", logs[n]) for n in logs}
    try:
        for p in procs.values():
            central_ready(p)
        sim = FleetSim(broker.url, nodes=20, drones=4, seconds=8, nodes_per_site=5)
        result: dict[str, int] = {}
        runner = threading.Thread(target=lambda: result.update(sim.run()))
        runner.start()
        time.sleep(2.5)
        procs["b"].send_signal(signal.SIGKILL)  # no goodbye
        procs["b"].wait()
        time.sleep(1.5)
        procs["b"] = _central_proc(broker.url, "c-b", logs["b"])
        central_ready(procs["b"])
        runner.join()
        time.sleep(1.0)
        outputs = {}
        for n, p in procs.items():
            p.send_signal(signal.SIGTERM)
            out, _ = p.communicate(timeout=10)
            outputs[n] = json.loads(out.strip().splitlines()[-1])
        taken = logs["a"].read_text().split() + logs["b"].read_text().split()
        published = set(sim.published_ids)
        assert result["events"] == len(published)
        assert set(taken) == published  # nothing lost
        assert len(taken) == len(set(taken))  # nothing processed twice
        assert outputs["a"]["lost"] == 0
        assert set(outputs["a"]) == {"events", "duplicates", "lost", "fused_tracks",
                                     "p99_latency_ms", "stood_in", "stood_in_p99_latency_ms"}
    finally:
        for p in procs.values():
            terminate(p)
        broker.stop()


def test_twin_crossing_two_masts_400_m_apart_one_fused_track_median_error_within_15_m(
        mosquitto: Mosquitto):
    """The issue's twin case on the fleet simulator (on the twin itself: test_central_twin):
    one drone flies north to south 250-300 m east of two masts 400 m apart; each mast hears it
    to 500 m, so the ends of the pass are one mast's bearing line and the middle a fix."""
    masts = [(0.0, 200.0), (0.0, -200.0)]
    seconds = 12.0

    def truth(_: int, t: float) -> tuple[float, float]:
        return 280.0, 360.0 - 60.0 * t  # a fast pass (60 m/s) to keep the test short

    central = Central(mosquitto.url, instance="c-twin")
    central.start()
    assert central.wait_ready()
    with TrackWatcher(mosquitto.url) as watch:
        sim = FleetSim(mosquitto.url, nodes=2, drones=1, seconds=seconds, nodes_per_site=2,
                       rate_hz=20.0, detect_m=500.0, radar_m=0.0, noise_deg=2.0,
                       trajectory=truth, node_positions=masts)
        sim.run()
        time.sleep(0.5)
    central.stop()
    assert watch.errors == []
    assert len({t["fused_id"] for t in watch.tracks}) == 1
    frame = LocalFrame(51.5, -0.12)
    errors, lines = [], 0
    for t in watch.tracks:
        if t["position"] is None:
            lines += t["bearing_line"] is not None
            continue
        e, n = frame.to_en(t["position"]["latitude_deg"], t["position"]["longitude_deg"])
        te, tn = truth(0, t["t"] - sim.t0_wall)
        if math.hypot(te, tn) <= 310.0:  # the figure is for ~300 m range
            errors.append(math.hypot(e - te, n - tn))
    assert lines > 5 and len(errors) > 20
    errors.sort()
    assert errors[len(errors) // 2] <= 15.0


def test_a_restarted_instance_recalls_its_journal_so_a_redelivered_event_is_a_duplicate(
        mosquitto: Mosquitto, tmp_path: Path):
    """Regression: after a SIGKILL the broker redelivers what the instance had taken but not
    yet acknowledged; without the journal the new run took those a second time."""
    client, env = _node(mosquitto.url, "s1", "n1")
    event = env.event(track_event("new"), 0, time.time())
    journal = tmp_path / "taken.log"
    journal.write_text(event["event_id"] + "\n")  # the previous run took it, then died
    central = Central(mosquitto.url, instance="c-recall", events_log=journal)
    central.start()
    assert central.wait_ready()
    client.publish(Topics("s1", "n1").events, encode(event))
    assert wait_until(lambda: central.duplicates == 1)
    assert central.events == 0
    assert journal.read_text().split() == [event["event_id"]]
    # ... and relayed again: the previous run may have died before its relay went out
    # (seen in the 500-node kill bench: ~100 such events never fused, lost(seq) ~100)
    assert wait_until(lambda: event["event_id"] in central.fused_ids)
    assert central.seqs.lost == 0
    client.stop()
    central.stop()
