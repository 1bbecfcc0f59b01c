"""Issue 22: no unsigned message may silence the node. A real broker, a node wired as the
daemon wires it (tests/link/linked_node.py), an attacker who may publish to the broker. Each
test runs on Mosquitto and, under `make test-long`, on RabbitMQ (MQTT 3.1.1, the node in its
3.1.1 mode); tests of MQTT 5 properties skip there, naming them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgenode.config import Config
from edgenode.link.mqtt import BrokerOptions, InboundMessage, MqttClient
from edgenode.ulid import new_ulid
from tests.brokers import (
    bom_properties,
    connect_kwargs,
    connected_client,
    needs_mqtt5,
    paho_client,
)
from tests.link.linked_node import (
    PREFIX,
    Console,
    LinkedNode,
    engage,
    linked_config,
    start_node,
    wait,
)

BOM_PROPERTIES = "PUBLISH properties (user property, response topic, content type)"


def attacker(broker: Any, client_id: str | None = None) -> paho.Client:
    return connected_client(broker.port, broker.mqtt_version, client_id or f"x-{new_ulid()}")


def node_config(broker: Any, **effector: Any) -> Config:
    """The node's config on `broker`, in the highest MQTT version it speaks."""
    return linked_config(broker.url, {"mqtt_version": broker.mqtt_version}, **effector)


def console(broker: Any) -> Console:
    return Console(broker.port, mqtt_version=broker.mqtt_version)


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator:
    made: list[LinkedNode] = []

    def factory(config: Config) -> LinkedNode:
        node = start_node(tmp_path / f"state-{len(made)}", config)
        made.append(node)
        return node

    yield factory
    for node in made:
        node.stop()


def test_a_retained_bom_message_on_cmd_does_not_stop_a_signed_safe(
        any_broker: Any, node_factory) -> None:
    needs_mqtt5(any_broker, BOM_PROPERTIES)
    node = node_factory(node_config(any_broker, link_loss_grace_s=3))
    ops = console(any_broker)
    bad = attacker(any_broker)
    try:
        engage(node, ops)
        info = bad.publish(f"{PREFIX}/cmd", b'{"v":1,"junk":true}', qos=1, retain=True,
                           properties=bom_properties(PREFIX))
        info.wait_for_publish(5)
        time.sleep(1.5)  # the old node dropped the connection here, and again on each return
        sent = time.monotonic()
        safe = ops.send("alice", "safe")
        assert wait(lambda: not node.drive(), 1.0), "a signed safe was not obeyed within 1 s"
        result = ops.wait_result(safe, 2)
        assert result is not None and result["status"] == "ok", result
        assert ops.arrived[safe] - sent < 1.0
        counters = node.link.counters()
        assert counters["connects"] == 1, "the node lost its connection"
        assert counters["properties_repaired"] >= 1
        assert counters["carries_commands"] is True
    finally:
        bad.loop_stop()
        ops.stop()


def test_ctl_client_receives_a_bom_status_and_stays_connected(any_broker: Any) -> None:
    needs_mqtt5(any_broker, BOM_PROPERTIES)
    bad = attacker(any_broker)
    got: list[InboundMessage] = []
    client = MqttClient(BrokerOptions(url=any_broker.url, client_id=f"ctl-{new_ulid()}"))
    drops: list[str] = []
    client._on_disconnect_cb = drops.append
    client.subscribe(f"{PREFIX}/status", got.append)
    try:
        bad.publish(f"{PREFIX}/status", b'{"state":"online"}', qos=1, retain=True,
                    properties=bom_properties(PREFIX)).wait_for_publish(5)
        client.start()
        assert wait(lambda: len(got) == 1, 5), "the retained status never arrived"
        assert got[0].retain and got[0].payload == b'{"state":"online"}'
        assert got[0].response_topic is None  # the response topic held U+FEFF: left out
        bad.publish(f"{PREFIX}/status", b'{"state":"x"}', qos=1,
                    properties=bom_properties(PREFIX)).wait_for_publish(5)
        assert wait(lambda: len(got) == 2, 5)
        time.sleep(0.3)
        assert drops == [] and client.connected.is_set()
        assert client.repaired == 2
    finally:
        client.stop()
        bad.loop_stop()


def test_a_live_command_published_with_the_retain_flag_is_refused(
        any_broker: Any, node_factory) -> None:
    # On 3.1.1 a live message never shows its retain flag; what the node can refuse there,
    # the copy handed over on (re)subscribing, is test_link_broker.py's
    # test_retained_command_reaches_the_handler_marked_retained.
    needs_mqtt5(any_broker, "retain-as-published (a subscription option)")
    node = node_factory(node_config(any_broker))
    ops = console(any_broker)
    try:
        assert wait(lambda: node.link.connected, 10)
        time.sleep(0.2)
        from edgenode.control.operator import encode as encode_command
        from tests.control.conftest import OPERATORS, command
        env = command(OPERATORS["alice"], "arm", {"ttl_s": 60})
        ops.client.publish(f"{PREFIX}/cmd", encode_command(env), qos=1, retain=True)
        result = ops.wait_result(env["id"])
        assert result is not None and result["status"] == "rejected", result
        assert result["reason"].startswith("retained"), result
        assert node.effector.state == "SAFE"
    finally:
        ops.client.publish(f"{PREFIX}/cmd", b"", qos=1, retain=True)  # clear it
        ops.stop()


def test_a_frozen_broker_drops_the_relay_within_the_grace_plus_a_second(
        any_broker: Any, node_factory) -> None:
    grace = 1.0
    node = node_factory(node_config(any_broker, link_loss_grace_s=grace))
    ops = console(any_broker)
    try:
        engage(node, ops)
        frozen = time.monotonic()
        any_broker.freeze()
        assert wait(lambda: not node.drive(), grace + 1.0), (
            f"relay still on {time.monotonic() - frozen:.1f} s after the broker froze")
    finally:
        any_broker.thaw()
        ops.stop()


def test_a_link_that_keeps_being_taken_over_counts_as_lost(
        any_broker: Any, node_factory) -> None:
    grace = 2.0
    node = node_factory(node_config(any_broker, link_loss_grace_s=grace))
    ops = console(any_broker)
    stop = threading.Event()

    def usurp() -> None:  # a second client with the node's client id, again and again
        while not stop.is_set():
            rogue = paho_client(any_broker.mqtt_version, node.link.topics.client_id)
            try:
                rogue.connect("127.0.0.1", any_broker.port,
                              **connect_kwargs(any_broker.mqtt_version))
                rogue.loop(0.3)
                rogue.disconnect()
            except OSError:
                pass
            stop.wait(0.3)

    thread = threading.Thread(target=usurp, daemon=True)
    try:
        engage(node, ops)
        start = time.monotonic()
        thread.start()
        assert wait(lambda: not node.drive(), grace + 2.0), (
            f"relay still on {time.monotonic() - start:.1f} s into the flapping")
    finally:
        stop.set()
        thread.join()
        ops.stop()


def test_commands_that_overflow_the_slow_queue_are_answered_busy(
        tmp_path: Path, any_broker: Any) -> None:
    from edgenode.health import Health
    from edgenode.link import Link
    from edgenode.link.link import COMMAND_QUEUE
    from edgenode.ulid import new_ulid
    from tests.link.helpers import PREFIX as LINK_PREFIX
    from tests.link.helpers import Recorder, make_config

    release = threading.Event()

    def slow_handler(message: InboundMessage) -> dict:
        release.wait(30)
        return {"id": None, "status": "ok", "reason": None}

    link = Link(make_config(tmp_path, any_broker.url, mqtt_version=any_broker.mqtt_version),
                tmp_path / "state", Health(), version="0.0-test", capabilities=[],
                config_digest="sha256:test")
    link.on_command(slow_handler, slow=lambda message: True)
    recorder = Recorder.for_broker(any_broker, topic=f"{LINK_PREFIX}/cmd/result").start()
    sender = attacker(any_broker)
    link.start()
    try:
        assert wait(lambda: link.connected, 10)
        count = COMMAND_QUEUE + 40
        ids = [new_ulid() for _ in range(count)]
        for command_id in ids:
            sender.publish(f"{LINK_PREFIX}/cmd",
                           b'{"id":"%s","action":"selftest"}' % command_id.encode(), qos=1)
        # One is being handled, COMMAND_QUEUE wait: the rest are answered at once.
        busy = count - COMMAND_QUEUE - 1
        assert recorder.wait_for(lambda: len(recorder.on("cmd/result")) >= busy, 10), (
            f"{len(recorder.on('cmd/result'))} answers for {busy} overflowing commands")
        answers = [m.payload for m in recorder.on("cmd/result")]
        assert all(a["status"] == "rejected" and a["reason"].startswith("busy:")
                   for a in answers), answers[:2]
        # each names the command it answers (the last ones sent: the queue took the first)
        assert sorted(a["id"] for a in answers) == sorted(ids[COMMAND_QUEUE + 1:]), answers[:2]
        release.set()
        assert recorder.wait_for(lambda: len(recorder.on("cmd/result")) == count, 10)
        assert link.counters()["cmd_overflow"] == busy
    finally:
        release.set()
        sender.loop_stop()
        recorder.stop()
        link.stop()


def test_ctl_status_shows_the_effector_despite_a_bom_status_message(
        any_broker: Any, tmp_path: Path) -> None:
    from tests.control.test_ctl import ctl

    needs_mqtt5(any_broker, BOM_PROPERTIES)
    bad = attacker(any_broker)
    try:
        for topic, body in ((f"{PREFIX}/status", b'{"status":"online"}'),
                            (f"{PREFIX}/effector", b'{"state":"SAFE","reason":"boot"}')):
            bad.publish(topic, body, qos=1, retain=True).wait_for_publish(5)
        # Another "node" whose retained status carries U+FEFF in a property.
        bad.publish("edgenode/test/aaa/status", b'{"status":"online"}', qos=1, retain=True,
                    properties=bom_properties(PREFIX)).wait_for_publish(5)
        out = ctl(tmp_path, any_broker.url, "--json", "status", "--wait", "0.5",
                  site_node=False)
        assert out.returncode == 0, out.stderr
        rows = {row["node"]: row for row in map(json.loads, out.stdout.splitlines())}
        assert rows["mast-01"]["effector"] == "SAFE", rows
    finally:
        bad.loop_stop()


def test_a_short_silence_costs_no_engagement(any_broker: Any, node_factory) -> None:
    # A broker (or a loaded node) silent for a moment: the link counts as lost while no echo
    # comes, and as back with the first echo on the same connection, so the grace is spent
    # only on the silence itself, not on proving the connection again.
    grace = 2.0
    node = node_factory(node_config(any_broker, link_loss_grace_s=grace))
    ops = console(any_broker)
    try:
        engage(node, ops)
        any_broker.freeze()
        assert wait(lambda: not node.link.counters()["carries_commands"], 1.5)
        time.sleep(0.4)
        any_broker.thaw()
        thawed = time.monotonic()
        assert wait(lambda: node.link.counters()["carries_commands"], 2)
        assert time.monotonic() - thawed < 0.6
        time.sleep(grace)
        assert node.drive(), "a 1.2 s silence ended an engagement with a 2 s grace"
        assert node.link.counters()["connects"] == 1
    finally:
        any_broker.thaw()
        ops.stop()


def test_a_junk_flood_is_answered_under_a_rate_limit_without_a_log_line_each(
        tmp_path: Path, any_broker: Any, caplog) -> None:
    import logging

    from edgenode.health import Health
    from edgenode.link import Link
    from edgenode.link.ratelimit import TokenBucket
    from tests.link.helpers import PREFIX as LINK_PREFIX
    from tests.link.helpers import Recorder, make_config

    # Small bounds so that the limit bites at any speed (the shipped ones are 1000/s, 2000).
    limit = TokenBucket(20.0, 20.0)
    v5 = any_broker.mqtt_version == "5"
    link = Link(make_config(tmp_path, any_broker.url, mqtt_version=any_broker.mqtt_version),
                tmp_path / "state", Health(), version="0.0-test", capabilities=[],
                config_digest="sha256:test", rejected_results=limit)
    link.on_command(lambda m: {"id": None, "reason": "signed" if b"signed" in m.payload
                               else "junk", "status": "ok" if b"signed" in m.payload
                               else "rejected"}, slow=lambda m: False)
    recorder = Recorder.for_broker(any_broker, topic=f"{LINK_PREFIX}/cmd/result").start()
    sender = attacker(any_broker)
    props = None
    if v5:  # junk asking for its answer elsewhere: refused, and not one log line each
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "elsewhere/inbox"
    link.start()
    try:
        assert wait(lambda: link.connected, 10)
        caplog.clear()
        caplog.set_level(logging.INFO, logger="edgenode.link")
        start = time.monotonic()
        for i in range(400):
            body = b'{"signed":1}' if i == 300 else b'{"junk":%d}' % i
            sender.publish(f"{LINK_PREFIX}/cmd", body, qos=1, properties=props)
        assert wait(lambda: link.counters()["cmd_received"] == 400, 10)
        elapsed = time.monotonic() - start
        counters = link.counters()
        assert counters["cmd_results"] + counters["results_suppressed"] == 400
        assert counters["cmd_results"] <= 20 + 20 * elapsed + 2, (counters, elapsed)
        assert counters["responses_refused"] == (counters["cmd_results"] if v5 else 0)
        # The one `ok` among the junk is never held back.
        assert recorder.wait_for(lambda: any(m.payload["status"] == "ok"
                                             for m in recorder.on("cmd/result")), 5)
        lines = [r for r in caplog.records if r.name.startswith("edgenode.link")]
        assert len(lines) <= 3, [r.getMessage() for r in lines]
    finally:
        sender.loop_stop()
        recorder.stop()
        link.stop()
