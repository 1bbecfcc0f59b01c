"""The link against a real Mosquitto: the topic contract, outages, caps, commands."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgenode.control.audit import record_hash
from edgenode.health import Health
from edgenode.link import InboundMessage, Link
from edgenode.ulid import new_ulid
from tests.conftest import Mosquitto
from tests.link.helpers import (
    NODE,
    PREFIX,
    SITE,
    Recorder,
    make_config,
    persistent_broker_extra,
    track_event,
    wait_until,
)

MakeLink = Callable[..., Link]


@pytest.fixture
def make_link(tmp_path: Path) -> Iterator[MakeLink]:
    links: list[Link] = []

    def make(url: str, *, state_dir: Path | None = None, storage: dict[str, Any] | None = None,
             **broker: Any) -> Link:
        broker.setdefault("reconnect_min_s", 0.2)
        broker.setdefault("reconnect_max_s", 1)
        config = make_config(tmp_path, url, storage=storage, **broker)
        link = Link(config, state_dir or tmp_path / "state", Health(), version="0.1.0",
                    capabilities=["radar", "acoustic"], config_digest="sha256:abc")
        links.append(link)
        return link

    yield make
    for link in links:
        link.stop()


def _operator(port: int) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"op-{new_ulid()}",
                         protocol=paho.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _command(action: str = "safe") -> dict[str, Any]:
    now = time.time()
    return {"v": 1, "id": new_ulid(), "site": SITE, "node": NODE, "action": action,
            "params": {}, "issued_at": now, "expires_at": now + 30, "key_id": "op1",
            "signature": "c2ln"}


def test_every_payload_on_every_topic_matches_its_schema(mosquitto: Mosquitto,
                                                         make_link: MakeLink) -> None:
    recorder = Recorder(mosquitto.port).start()
    link = make_link(mosquitto.url)
    seen: list[InboundMessage] = []

    def handler(message: InboundMessage) -> dict[str, Any]:
        seen.append(message)
        command = json.loads(message.payload)
        return {"id": command["id"], "action": command["action"], "status": "ok",
                "reason": "relay off"}

    link.on_command(handler)
    link.start()
    assert recorder.wait_for(lambda: recorder.on("status"))
    event = track_event("new")
    link.publish_event(event)
    link.publish_event(track_event("update", event["object_id"], updates=2))
    link.publish_event(track_event("end", event["object_id"], updates=3))
    record = {"seq": 0, "t": time.time(), "kind": "start", "data": {}, "prev": "0" * 64}
    link.publish_audit({**record, "hash": record_hash(record)})
    link.set_state("effector", {"state": "SAFE", "since": time.time(), "reason": "start-up",
                                "enabled": False, "armed_until": None, "armed_by": None,
                                "engaged_until": None, "engagement": None, "key_switch": "off",
                                "aux_closed": False, "fault": None, "alarm": None,
                                "keys_version": 0})
    link.set_state("selftest", {"ok": True, "checks": [
        {"name": "relay", "state": "ok", "reason": "heartbeat toggles"}]})
    link.set_state("health", {"system": {"cpu_temp_c": 55.0, "throttled": 0,
                                         "clock_synced": True}, "effector": "SAFE"})
    operator = _operator(mosquitto.port)
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = f"{PREFIX}/cmd/result/ctl-1"
    props.CorrelationData = b"corr-42"
    command = _command()
    operator.publish(f"{PREFIX}/cmd", json.dumps(command), qos=1, properties=props)
    assert recorder.wait_for(lambda: len(recorder.on("cmd/result/ctl-1")) == 1)
    assert recorder.wait_for(lambda: len(recorder.track_events()) == 3)
    link.stop()
    assert recorder.wait_for(lambda: recorder.on("status")[-1].payload["state"] == "offline")
    operator.loop_stop()
    recorder.stop()

    assert recorder.problems == []
    topics = {m.topic.removeprefix(PREFIX + "/") for m in recorder.messages}
    assert topics == {"status", "health", "events", "audit", "effector", "selftest", "cmd",
                      "cmd/result", "cmd/result/ctl-1", "ping"}
    birth = recorder.on("status")[0]
    assert birth.retain is False or birth.payload["state"] == "online"
    assert birth.payload | {"t": 0} == {
        "v": 1, "site": SITE, "node": NODE, "session": 1, "t": 0, "state": "online",
        "version": "0.1.0", "hardware": "test-rig", "capabilities": ["radar", "acoustic"],
        "position": {"datum": "WGS84", "latitude_deg": 51.5, "longitude_deg": -0.12,
                     "altitude_m": 30.0},
        "mast_heading_deg": 90.0, "config_digest": "sha256:abc",
        "client_id": "edgenode-test-n1", "mqtt_version": "5"}
    assert [e["type"] for e in recorder.track_events()] == ["new", "update", "end"]
    assert [e["seq"] for e in recorder.track_events()] == [0, 1, 2]
    result = recorder.on("cmd/result")[0].payload
    assert result["id"] == command["id"] and result["status"] == "ok"
    assert recorder.on("cmd/result/ctl-1")[0].correlation_data == b"corr-42"
    assert seen[0].retain is False and seen[0].correlation_data == b"corr-42"
    health = recorder.on("health")[-1].payload
    assert health["system"]["cpu_temp_c"] == 55.0 and health["link"]["session"] == 1


def _publish_steadily(link: Link, stop: threading.Event, rate_hz: float) -> list[int]:
    sent: list[int] = []
    object_id = None
    while not stop.is_set():
        kind = "new" if len(sent) % 20 == 0 else "update"
        event = track_event(kind, object_id if kind == "update" else None,
                            updates=len(sent) % 20 + 1)
        object_id = event["object_id"]
        link.publish_event(event)
        sent.append(len(sent))
        stop.wait(1 / rate_hz)
    return sent


def _outage(tmp_path: Path, make_link: MakeLink, outage_s: float) -> None:
    broker = Mosquitto(tmp_path / "broker", extra=persistent_broker_extra(tmp_path / "db"))
    broker.start()
    recorder = Recorder(broker.port, persistent=True).start()
    link = make_link(broker.url, keepalive_s=2)
    changes: list[bool] = []
    link.on_link_change(changes.append)
    link.start()
    # Up for the link-loss rule once pings have come back for a second (link/watch.py).
    assert recorder.wait_for(lambda: link.counters()["carries_commands"])
    stop = threading.Event()
    sent: list[int] = []
    worker = threading.Thread(target=lambda: sent.extend(_publish_steadily(link, stop, 50)))
    worker.start()
    try:
        time.sleep(1.0)
        broker.stop()
        assert recorder.wait_for(lambda: not link.connected, 5)
        time.sleep(outage_s)
        broker.start()
        assert recorder.wait_for(lambda: link.connected, 10)
        back_at = time.time()
        assert recorder.wait_for(lambda: link.counters()["carries_commands"], 5)
    finally:
        stop.set()
        worker.join()
    total = len(sent)
    assert recorder.wait_for(lambda: len(recorder.unique_events()) >= total, 30), (
        f"received {len(recorder.unique_events())} of {total}")
    assert recorder.wait_for(lambda: link.counters()["backlog"] == 0, 10)
    recorder.stop()
    events = recorder.unique_events()
    assert sorted(e["seq"] for e in events.values()) == list(range(total))
    assert {e["session"] for e in events.values()} == {link.session}
    replayed = [e for e in events.values() if e.get("replayed")]
    assert len(replayed) >= outage_s * 50 * 0.5, "events from the outage must be replayed"
    # Replayed events keep the time they were made (before the link came back).
    assert all(e["t"] <= back_at + 0.5 for e in replayed)
    assert not [m for m in recorder.on("events") if m.payload.get("type") == "gap"]
    assert recorder.problems == []
    assert changes[:3] == [True, False, True]
    counters = link.counters()
    assert counters["dropped"] == 0 and counters["replayed"] >= len(replayed)
    broker.stop()


def test_events_survive_a_broker_outage_exactly_once(tmp_path: Path,
                                                     make_link: MakeLink) -> None:
    _outage(tmp_path, make_link, outage_s=3.0)


@pytest.mark.long
def test_events_survive_a_30_s_broker_outage(tmp_path: Path, make_link: MakeLink) -> None:
    _outage(tmp_path, make_link, outage_s=30.0)


def test_cap_drops_become_gap_records_so_nothing_is_lost_silently(
        mosquitto: Mosquitto, make_link: MakeLink) -> None:
    link = make_link(mosquitto.url, storage={"outbox_max_mb": 1})
    object_id = new_ulid()
    link.publish_event(track_event("new", object_id))
    for n in range(1, 900):  # ~1.5 MB of updates while the link is not started
        link.publish_event(track_event("update", object_id, updates=n))
    link.publish_event(track_event("end", object_id, updates=900))
    assert link.flush()
    assert link.counters()["dropped"] > 0
    recorder = Recorder(mosquitto.port).start()
    link.start()
    assert recorder.wait_for(lambda: link.counters()["backlog"] == 0, 20)

    def accounted() -> tuple[set[int], set[int]]:
        gaps = [m.payload for m in recorder.on("events") if m.payload["type"] == "gap"]
        explained = {seq for gap in gaps for lo, hi in gap["dropped"]["ranges"]
                     for seq in range(lo, hi + 1)}
        return {e["seq"] for e in recorder.unique_events().values()}, explained

    # The broker acknowledged everything; the consumer may still be catching up.
    recorder.wait_for(lambda: set.union(*accounted()) == set(range(901)), 20)
    time.sleep(0.3)  # a duplicate or stray record would arrive now
    recorder.stop()
    assert recorder.problems == []
    received, explained = accounted()
    gaps = [m.payload for m in recorder.on("events") if m.payload["type"] == "gap"]
    assert received | explained == set(range(901)) and not received & explained
    assert 0 in received and 900 in received, "new and end outlive the updates"
    assert all(g["reason"] == "outbox_size_cap" for g in gaps)
    assert sum(g["dropped"]["count"] for g in gaps) == link.counters()["dropped"]


def test_retained_command_reaches_the_handler_marked_retained(mosquitto: Mosquitto,
                                                              make_link: MakeLink) -> None:
    operator = _operator(mosquitto.port)
    operator.publish(f"{PREFIX}/cmd", json.dumps(_command()), qos=1, retain=True
                     ).wait_for_publish(5)
    link = make_link(mosquitto.url)
    got: list[InboundMessage] = []
    link.on_command(lambda m: (got.append(m), {
        "id": json.loads(m.payload)["id"], "status": "rejected",
        "reason": "retained command refused"})[1])
    recorder = Recorder(mosquitto.port, topic=f"{PREFIX}/cmd/result").start()
    link.start()
    assert recorder.wait_for(lambda: len(recorder.messages) == 1)
    assert got[0].retain is True
    assert recorder.messages[0].payload["status"] == "rejected"
    operator.publish(f"{PREFIX}/cmd", b"", qos=1, retain=True).wait_for_publish(5)
    operator.loop_stop()
    recorder.stop()


def test_handler_failure_still_answers_with_the_command_id(mosquitto: Mosquitto,
                                                            make_link: MakeLink) -> None:
    link = make_link(mosquitto.url)

    def broken(message: InboundMessage) -> dict[str, Any]:
        raise RuntimeError("verifier exploded")

    link.on_command(broken)
    recorder = Recorder(mosquitto.port, topic=f"{PREFIX}/cmd/result").start()
    link.start()
    assert recorder.wait_for(lambda: link.connected)
    command = _command()
    operator = _operator(mosquitto.port)
    operator.publish(f"{PREFIX}/cmd", json.dumps(command), qos=1)
    assert recorder.wait_for(lambda: len(recorder.messages) == 1)
    result = recorder.messages[0].payload
    assert (result["id"], result["status"]) == (command["id"], "error")
    assert "verifier exploded" in result["reason"]
    operator.loop_stop()
    recorder.stop()


def test_mqtt_311_fallback_carries_birth_events_and_commands(mosquitto: Mosquitto,
                                                             make_link: MakeLink) -> None:
    recorder = Recorder(mosquitto.port).start()
    link = make_link(mosquitto.url, mqtt_version="3.1.1")
    link.on_command(lambda m: {"id": json.loads(m.payload)["id"], "status": "ok",
                               "reason": "done"})
    link.start()
    link.publish_event(track_event("new"))
    assert recorder.wait_for(lambda: len(recorder.track_events()) == 1)
    operator = _operator(mosquitto.port)
    operator.publish(f"{PREFIX}/cmd", json.dumps(_command()), qos=1)
    assert recorder.wait_for(lambda: len(recorder.on("cmd/result")) == 1)
    assert recorder.on("status")[0].payload["mqtt_version"] == "3.1.1"
    assert recorder.problems == []
    operator.loop_stop()
    recorder.stop()


def test_state_set_while_offline_is_retained_after_reconnect(tmp_path: Path,
                                                             make_link: MakeLink) -> None:
    broker = Mosquitto(tmp_path / "b").start()
    link = make_link(broker.url)
    link.start()
    assert wait_until(lambda: link.connected)
    broker.stop()
    link.set_state("effector", {"state": "FAULT", "reason": "aux contact disagrees"})
    broker.start()
    probe = Recorder(broker.port).start()  # live or retained: the state reached the broker
    assert probe.wait_for(lambda: probe.on("effector"), 10)
    probe.stop()
    late = Recorder(broker.port).start()
    assert late.wait_for(lambda: late.on("effector") and late.on("status"))
    assert late.on("effector")[-1].retain and late.on("effector")[-1].payload["state"] == "FAULT"
    assert late.on("status")[-1].payload["state"] == "online"
    late.stop()
    link.stop()
    broker.stop()


def test_a_slow_command_never_holds_up_a_quick_one(mosquitto: Mosquitto,
                                                   make_link: MakeLink) -> None:
    link = make_link(mosquitto.url)
    release = threading.Event()

    def handler(message: InboundMessage) -> dict[str, Any]:
        command = json.loads(message.payload)
        if command["action"] == "selftest":
            release.wait(10)  # a self-test that takes its time
        return {"id": command["id"], "status": "ok", "reason": None}

    link.on_command(handler, slow=lambda message: b"selftest" in message.payload)
    recorder = Recorder(mosquitto.port, topic=f"{PREFIX}/cmd/result").start()
    link.start()
    assert wait_until(lambda: link.connected)
    operator = _operator(mosquitto.port)
    slow, quick = _command("selftest"), _command("safe")
    operator.publish(f"{PREFIX}/cmd", json.dumps(slow), qos=1)
    operator.publish(f"{PREFIX}/cmd", json.dumps(quick), qos=1)
    # The quick one is answered while the self-test still runs, then the self-test too.
    assert recorder.wait_for(lambda: len(recorder.messages) == 1)
    assert recorder.messages[0].payload["id"] == quick["id"]
    release.set()
    assert recorder.wait_for(lambda: len(recorder.messages) == 2)
    assert recorder.messages[1].payload["id"] == slow["id"]
    operator.loop_stop()
    recorder.stop()
