"""The link against a real broker: the topic contract, outages, caps, commands. Each test
runs on Mosquitto (MQTT 5) and, under `make test-long`, on RabbitMQ (MQTT 3.1.1, the link in
its 3.1.1 mode): tests/conftest.py's `any_broker`."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgenode.control.audit import record_hash
from edgenode.health import Health
from edgenode.link import InboundMessage, Link
from edgenode.ulid import new_ulid
from tests.brokers import connected_client
from tests.conftest import Mosquitto
from tests.link.helpers import (
    NODE,
    PREFIX,
    SITE,
    Recorder,
    make_config,
    track_event,
    wait_until,
)
from tests.link.test_schemas import selftest_report

MakeLink = Callable[..., Link]


@pytest.fixture
def make_link(tmp_path: Path) -> Iterator[MakeLink]:
    links: list[Link] = []

    def make(on: Any, *, state_dir: Path | None = None, storage: dict[str, Any] | None = None,
             **broker: Any) -> Link:
        """A link to broker `on`, in the highest MQTT version it speaks."""
        broker.setdefault("reconnect_min_s", 0.2)
        broker.setdefault("reconnect_max_s", 1)
        broker.setdefault("mqtt_version", on.mqtt_version)
        config = make_config(tmp_path, on.url, storage=storage, **broker)
        link = Link(config, state_dir or tmp_path / "state", Health(), version="0.1.0",
                    capabilities=["radar", "acoustic"], config_digest="sha256:abc")
        links.append(link)
        return link

    yield make
    for link in links:
        link.stop()


def _operator(broker: Any) -> paho.Client:
    return connected_client(broker.port, broker.mqtt_version, f"op-{new_ulid()}")


def _command(action: str = "safe") -> dict[str, Any]:
    now = time.time()
    return {"v": 1, "id": new_ulid(), "site": SITE, "node": NODE, "action": action,
            "params": {}, "issued_at": now, "expires_at": now + 30, "key_id": "op1",
            "signature": "c2ln"}


def test_every_payload_on_every_topic_matches_its_schema(any_broker: Any,
                                                         make_link: MakeLink) -> None:
    v5 = any_broker.mqtt_version == "5"
    recorder = Recorder.for_broker(any_broker, qos=2).start()
    link = make_link(any_broker)
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
    link.set_state("selftest", selftest_report())
    link.set_state("health", {"system": {"cpu_temp_c": 55.0, "throttled": 0,
                                         "clock_synced": True}, "effector": "SAFE"})
    operator = _operator(any_broker)
    command = _command()
    if v5:  # the answer also goes to the command's response topic, with its correlation data
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"{PREFIX}/cmd/result/ctl-1"
        props.CorrelationData = b"corr-42"
        operator.publish(f"{PREFIX}/cmd", json.dumps(command), qos=1, properties=props)
        assert recorder.wait_for(lambda: len(recorder.on("cmd/result/ctl-1")) == 1)
    else:  # MQTT 3.1.1 has no response topic: the answer goes to cmd/result only
        operator.publish(f"{PREFIX}/cmd", json.dumps(command), qos=1)
        assert recorder.wait_for(lambda: len(recorder.on("cmd/result")) == 1)
    assert recorder.wait_for(lambda: len(recorder.track_events()) == 3)
    # The birth is retained: a consumer that comes later is told the node is online.
    late = Recorder.for_broker(any_broker, topic=f"{PREFIX}/status").start()
    assert late.wait_for(lambda: late.on("status"))
    retained = late.on("status")[0]
    late.stop()
    assert retained.retain is True and retained.payload["state"] == "online"
    link.stop()
    assert recorder.wait_for(lambda: recorder.on("status")[-1].payload["state"] == "offline")
    operator.loop_stop()
    recorder.stop()

    assert recorder.problems == []
    topics = {m.topic.removeprefix(PREFIX + "/") for m in recorder.messages}
    assert topics == {"status", "health", "events", "audit", "effector", "selftest", "cmd",
                      "cmd/result", "ping"} | ({"cmd/result/ctl-1"} if v5 else set())
    # Each topic at the QoS docs/mqtt.md's table gives it (the broker may grant less).
    granted = 2 if isinstance(any_broker, Mosquitto) else 1
    qos = {m.topic.removeprefix(PREFIX + "/"): m.qos for m in recorder.messages
           if not m.topic.endswith("/cmd")}  # the operator's own publish
    assert qos == {topic: min(0 if topic == "ping" else 1, granted) for topic in qos}, qos
    birth = recorder.on("status")[0]
    # delivered live to a subscriber that was there: the retain flag is not set
    assert birth.retain is False and birth.payload["state"] == "online"
    assert birth.payload | {"t": 0} == {
        "v": 1, "site": SITE, "node": NODE, "session": 1, "t": 0, "state": "online",
        "version": "0.1.0", "hardware": "test-rig", "capabilities": ["radar", "acoustic"],
        "position": {"datum": "WGS84", "latitude_deg": 51.5, "longitude_deg": -0.12,
                     "altitude_m": 30.0},
        "mast_heading_deg": 90.0, "config_digest": "sha256:abc",
        "client_id": "edgenode-test-n1", "mqtt_version": any_broker.mqtt_version}
    assert [e["type"] for e in recorder.track_events()] == ["new", "update", "end"]
    assert [e["seq"] for e in recorder.track_events()] == [0, 1, 2]
    result = recorder.on("cmd/result")[0].payload
    assert result["id"] == command["id"] and result["status"] == "ok"
    assert len(recorder.on("cmd/result")) == 1
    if v5:
        assert recorder.on("cmd/result/ctl-1")[0].correlation_data == b"corr-42"
    assert seen[0].retain is False
    assert seen[0].correlation_data == (b"corr-42" if v5 else None)
    health = recorder.on("health")[-1].payload
    assert health["system"]["cpu_temp_c"] == 55.0 and health["link"]["session"] == 1
    assert health["link"]["silences"] == 0  # its pings came back


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


def _outage(broker: Any, make_link: MakeLink, outage_s: float) -> None:
    recorder = Recorder.for_broker(broker, persistent=True).start()
    link = make_link(broker, keepalive_s=2)
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
        broker.take_down()
        assert recorder.wait_for(lambda: not link.connected, 5)
        time.sleep(outage_s)
        broker.bring_back()
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


def test_events_survive_a_broker_outage_exactly_once(any_broker: Any,
                                                     make_link: MakeLink) -> None:
    _outage(any_broker, make_link, outage_s=3.0)


@pytest.mark.long
def test_events_survive_a_30_s_broker_outage(any_broker: Any, make_link: MakeLink) -> None:
    _outage(any_broker, make_link, outage_s=30.0)


def test_cap_drops_become_gap_records_so_nothing_is_lost_silently(
        any_broker: Any, make_link: MakeLink) -> None:
    link = make_link(any_broker, storage={"outbox_max_mb": 1})
    object_id = new_ulid()
    link.publish_event(track_event("new", object_id))
    for n in range(1, 900):  # ~1.5 MB of updates while the link is not started
        link.publish_event(track_event("update", object_id, updates=n))
    link.publish_event(track_event("end", object_id, updates=900))
    assert link.flush()
    assert link.counters()["dropped"] > 0
    recorder = Recorder.for_broker(any_broker).start()
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


def test_retained_command_reaches_the_handler_marked_retained(any_broker: Any,
                                                              make_link: MakeLink) -> None:
    # Also the MQTT 3.1.1 fallback for retain-as-published: the copy a broker hands over on
    # subscribing carries the retain flag in every version, so the node refuses it.
    operator = _operator(any_broker)
    operator.publish(f"{PREFIX}/cmd", json.dumps(_command()), qos=1, retain=True
                     ).wait_for_publish(5)
    link = make_link(any_broker)
    got: list[InboundMessage] = []
    link.on_command(lambda m: (got.append(m), {
        "id": json.loads(m.payload)["id"], "status": "rejected",
        "reason": "retained command refused"})[1])
    recorder = Recorder.for_broker(any_broker, topic=f"{PREFIX}/cmd/result").start()
    try:
        link.start()
        assert recorder.wait_for(lambda: len(recorder.messages) == 1)
        assert got[0].retain is True
        assert recorder.messages[0].payload["status"] == "rejected"
    finally:  # RabbitMQ's broker lives on for the next tests
        operator.publish(f"{PREFIX}/cmd", b"", qos=1, retain=True).wait_for_publish(5)
        operator.loop_stop()
        recorder.stop()


def test_handler_failure_still_answers_with_the_command_id(any_broker: Any,
                                                            make_link: MakeLink) -> None:
    link = make_link(any_broker)

    def broken(message: InboundMessage) -> dict[str, Any]:
        raise RuntimeError("verifier exploded")

    link.on_command(broken)
    recorder = Recorder.for_broker(any_broker, topic=f"{PREFIX}/cmd/result").start()
    link.start()
    assert recorder.wait_for(lambda: link.connected)
    command = _command()
    operator = _operator(any_broker)
    operator.publish(f"{PREFIX}/cmd", json.dumps(command), qos=1)
    assert recorder.wait_for(lambda: len(recorder.messages) == 1)
    result = recorder.messages[0].payload
    assert (result["id"], result["status"]) == (command["id"], "error")
    assert "verifier exploded" in result["reason"]
    operator.loop_stop()
    recorder.stop()


def test_mqtt_311_fallback_carries_birth_events_and_commands(any_broker: Any,
                                                             make_link: MakeLink) -> None:
    recorder = Recorder.for_broker(any_broker).start()
    link = make_link(any_broker, mqtt_version="3.1.1")
    link.on_command(lambda m: {"id": json.loads(m.payload)["id"], "status": "ok",
                               "reason": "done"})
    link.start()
    link.publish_event(track_event("new"))
    assert recorder.wait_for(lambda: len(recorder.track_events()) == 1)
    operator = _operator(any_broker)
    operator.publish(f"{PREFIX}/cmd", json.dumps(_command()), qos=1)
    assert recorder.wait_for(lambda: len(recorder.on("cmd/result")) == 1)
    assert recorder.on("status")[0].payload["mqtt_version"] == "3.1.1"
    assert recorder.problems == []
    operator.loop_stop()
    recorder.stop()


def test_state_set_while_offline_is_retained_after_reconnect(any_broker: Any,
                                                             make_link: MakeLink) -> None:
    link = make_link(any_broker)
    link.start()
    assert wait_until(lambda: link.connected)
    link.set_state("effector", {"state": "SAFE", "reason": "start-up"})
    any_broker.take_down()
    link.set_state("effector", {"state": "FAULT", "reason": "aux contact disagrees"})
    any_broker.bring_back()
    # Live or retained, the state reached the broker. One recorder per topic: RabbitMQ hands
    # retained messages to exact-topic subscriptions only.
    probe = Recorder.for_broker(any_broker, topic=f"{PREFIX}/effector").start()
    assert probe.wait_for(lambda: [m for m in probe.on("effector")
                                   if m.payload["state"] == "FAULT"], 10)
    probe.stop()
    late = Recorder.for_broker(any_broker, topic=f"{PREFIX}/effector").start()
    late_status = Recorder.for_broker(any_broker, topic=f"{PREFIX}/status").start()
    assert late.wait_for(lambda: late.on("effector") and late_status.on("status"))
    assert late.on("effector")[-1].retain and late.on("effector")[-1].payload["state"] == "FAULT"
    assert late_status.on("status")[-1].payload["state"] == "online"
    late.stop()
    late_status.stop()
    link.stop()


def test_a_state_unacknowledged_when_the_broker_went_is_not_retained_over_a_newer_one(
        mosquitto: Any, make_link: MakeLink) -> None:
    # ARMED goes out while the broker hangs (no PUBACK), the broker dies, FAULT is set while
    # it is down. On reconnect the link publishes FAULT, and paho would re-send the
    # unacknowledged ARMED after it: the broker would then retain ARMED for a FAULTed node.
    link = make_link(mosquitto)
    link.start()
    assert wait_until(lambda: link.connected)
    link.set_state("effector", {"state": "SAFE", "reason": "start-up"})
    probe = Recorder.for_broker(mosquitto, topic=f"{PREFIX}/effector").start()
    assert probe.wait_for(lambda: probe.on("effector"))
    probe.stop()
    mosquitto.freeze()
    link.set_state("effector", {"state": "ARMED", "reason": "armed by alice"})
    time.sleep(0.3)  # sent into the hung broker's socket, never acknowledged
    mosquitto.take_down()
    assert wait_until(lambda: not link.connected)
    link.set_state("effector", {"state": "FAULT", "reason": "aux contact disagrees"})
    mosquitto.bring_back()
    assert wait_until(lambda: link.connected, 10)
    time.sleep(0.5)  # paho's re-send of what was in flight comes right after the connect
    late = Recorder.for_broker(mosquitto, topic=f"{PREFIX}/effector").start()
    assert late.wait_for(lambda: late.on("effector"))
    time.sleep(0.2)
    states = [m.payload["state"] for m in late.on("effector")]
    late.stop()
    assert states == ["FAULT"], f"retained after the reconnect: {states}"


def test_a_slow_command_never_holds_up_a_quick_one(any_broker: Any,
                                                   make_link: MakeLink) -> None:
    link = make_link(any_broker)
    release = threading.Event()

    def handler(message: InboundMessage) -> dict[str, Any]:
        command = json.loads(message.payload)
        if command["action"] == "selftest":
            release.wait(10)  # a self-test that takes its time
        return {"id": command["id"], "status": "ok", "reason": None}

    link.on_command(handler, slow=lambda message: b"selftest" in message.payload)
    recorder = Recorder.for_broker(any_broker, topic=f"{PREFIX}/cmd/result").start()
    link.start()
    assert wait_until(lambda: link.connected)
    operator = _operator(any_broker)
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


def test_a_graceful_stop_waits_for_the_brokers_acks_and_leaves_nothing_to_resend(
        mosquitto: Any, make_link: MakeLink, tmp_path: Path) -> None:
    """What was handed over before `stop` is sent and acknowledged within the stop's flush:
    the outbox file is empty after it, so the next start resends nothing."""
    recorder = Recorder.for_broker(mosquitto, topic=f"{PREFIX}/events").start()
    link = make_link(mosquitto)
    link.start()
    assert wait_until(lambda: link.connected, 10)
    ids = []
    for _ in range(60):
        event = track_event("new")
        ids.append(event["object_id"])
        link.publish_event(event)
    link.stop()
    rows = sqlite3.connect(tmp_path / "state" / "outbox.sqlite3").execute(
        "SELECT COUNT(*) FROM outbox").fetchone()[0]
    assert rows == 0
    assert recorder.wait_for(lambda: len(recorder.track_events()) == 60)
    assert sorted(e["object_id"] for e in recorder.track_events()) == sorted(ids)
    recorder.stop()
