"""The shipped broker ACL (hardware/mosquitto/edgenode.acl) on a real Mosquitto: a node
publishes only under its own prefix and reads only its own cmd; operators write cmd."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edgenode.health import Health
from edgenode.link import InboundMessage, Link
from edgenode.ulid import new_ulid
from tests.conftest import ROOT, Mosquitto, free_port
from tests.link.helpers import make_config, track_event, wait_until
from tests.link.linked_node import Console, engage, linked_config, start_node, wait

ACL = ROOT / "hardware" / "mosquitto" / "edgenode.acl"
USERS = ["node-dev-fake-01", "node-dev-fake-02", "operator-alice", "observer-bob"]


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    passwd = tmp_path / "passwd"
    for i, user in enumerate(USERS):
        flags = ["-b", "-c"] if i == 0 else ["-b"]
        subprocess.run(["mosquitto_passwd", *flags, str(passwd), user, f"pw-{user}"],
                       check=True, capture_output=True)
    passwd.chmod(0o644)
    port = free_port()
    broker = Mosquitto(tmp_path / "broker", port=port, extra=(
        f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
        f"acl_file {ACL}\n")).start()
    yield broker
    broker.stop()


class Client:
    def __init__(self, port: int, user: str):
        self.got: list[tuple[str, dict[str, Any]]] = []
        self.acks: dict[int, int] = {}
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-{new_ulid()}",
                             protocol=paho.MQTTv5)
        self.c.username_pw_set(user, f"pw-{user}")
        self.c.on_message = lambda c, u, m: self.got.append((m.topic, json.loads(m.payload)))
        self.c.on_publish = lambda c, u, mid, rc, p: self.acks.__setitem__(mid, rc.value)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def subscribe(self, topic: str) -> None:
        self.c.subscribe(topic, 1)
        time.sleep(0.2)

    def publish(self, topic: str, payload: dict[str, Any]) -> int:
        info = self.c.publish(topic, json.dumps(payload), qos=1)
        info.wait_for_publish(5)
        wait_until(lambda: info.mid in self.acks, 5)
        return self.acks[info.mid]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def _command() -> dict[str, Any]:
    now = time.time()
    return {"v": 1, "id": new_ulid(), "site": "dev", "node": "fake-01", "action": "safe",
            "params": {}, "issued_at": now, "expires_at": now + 30, "key_id": "op1",
            "signature": "c2ln"}


def test_node_link_works_inside_its_acl_and_nowhere_else(tmp_path: Path,
                                                         broker: Mosquitto) -> None:
    pw = tmp_path / "node.pw"
    pw.write_text("pw-node-dev-fake-01\n")
    config = make_config(tmp_path, broker.url, site="dev", node="fake-01",
                         username="node-dev-fake-01", password_file=pw)
    link = Link(config, tmp_path / "state", Health(), version="0.1.0", capabilities=[],
                config_digest="sha256:x")
    commands: list[InboundMessage] = []
    link.on_command(lambda m: (commands.append(m), {
        "id": json.loads(m.payload)["id"], "status": "ok", "reason": "done"})[1])
    operator = Client(broker.port, "operator-alice")
    observer = Client(broker.port, "observer-bob")
    intruder = Client(broker.port, "node-dev-fake-01")  # the same node's credentials
    try:
        operator.subscribe("edgenode/#")
        intruder.subscribe("edgenode/dev/fake-02/cmd")
        link.start()
        link.publish_event(track_event("new"))
        assert wait_until(lambda: any(t.endswith("/events") for t, _ in operator.got))
        assert link.counters()["refused"] == 0

        # A node cannot speak for another node, nor issue commands.
        assert intruder.publish("edgenode/dev/fake-02/events", {"forged": True}) == 0x87
        assert intruder.publish("edgenode/dev/fake-01/cmd", _command()) == 0x87
        # An observer cannot command; an operator can, and the node answers.
        assert observer.publish("edgenode/dev/fake-01/cmd", _command()) == 0x87
        assert operator.publish("edgenode/dev/fake-02/cmd", _command()) < 0x80
        assert operator.publish("edgenode/dev/fake-01/cmd", _command()) < 0x80
        assert wait_until(lambda: any(t.endswith("fake-01/cmd/result")
                                      for t, _ in operator.got))
        time.sleep(0.3)
        assert len(commands) == 1
        assert not [t for t, p in operator.got if "fake-02/events" in t]
        assert not intruder.got, "a node read another node's cmd"
    finally:
        link.stop()
        for client in (operator, observer, intruder):
            client.close()


def _flood(port: int, users: list[str], topic: str, rate_per_s: float, seconds: float,
           stop: threading.Event) -> int:
    """Unsigned junk on `topic` from each of `users` (QoS 0, as fast as a flood goes),
    `rate_per_s` in all; returns how many were published."""
    clients = [Client(port, user) for user in users]
    sent = 0
    start = time.monotonic()
    try:
        while not stop.is_set() and time.monotonic() - start < seconds:
            due = int((time.monotonic() - start) * rate_per_s)
            while sent < due:
                clients[sent % len(clients)].c.publish(topic, b'{"v":1,"junk":%d}' % sent,
                                                       qos=0)
                sent += 1
            time.sleep(0.002)
    finally:
        for client in clients:
            client.close()
    return sent


def _safe_through_flood(tmp_path: Path, broker: Mosquitto, rate_per_s: float,
                        seconds: float) -> None:
    pw = tmp_path / "node.pw"
    pw.write_text("pw-node-dev-fake-01\n")
    config = linked_config(broker.url, {"username": "node-dev-fake-01", "password_file": str(pw)},
                           node={"site": "dev", "id": "fake-01"}, link_loss_grace_s=3)
    node = start_node(tmp_path / "state", config)
    console = Console(broker.port, "operator-alice", site="dev", node="fake-01")
    stop = threading.Event()
    flooded: list[int] = []
    flood = threading.Thread(target=lambda: flooded.append(_flood(
        broker.port, ["observer-bob", "node-dev-fake-02", "node-dev-fake-01"],
        "edgenode/dev/fake-01/cmd", rate_per_s, seconds, stop)))
    try:
        engage(node, console)
        received_before = node.link.counters()["cmd_received"]
        flood.start()
        time.sleep(seconds / 2)
        sent = time.monotonic()
        safe = console.send("alice", "safe")
        assert wait(lambda: not node.drive(), 1.0), "a signed safe was not obeyed within 1 s"
        result = console.wait_result(safe, 2)
        assert result is not None and result["status"] == "ok", result
        assert console.arrived[safe] - sent < 1.0
        flood.join()
        # The flooder's own pace (a loaded test machine may not reach the full rate).
        assert flooded[0] >= rate_per_s * seconds * 0.5, f"only {flooded[0]} junk sent"
        # The broker kept the junk from the node: only the safe reached it.
        assert node.link.counters()["cmd_received"] - received_before == 1
    finally:
        stop.set()
        if flood.is_alive():
            flood.join()
        console.stop()
        node.stop()


def test_a_signed_safe_gets_through_a_junk_flood_on_the_shipped_acl(
        tmp_path: Path, broker: Mosquitto) -> None:
    _safe_through_flood(tmp_path, broker, rate_per_s=2000, seconds=2.0)


@pytest.mark.long
def test_a_signed_safe_gets_through_10000_junk_messages_a_second(
        tmp_path: Path, broker: Mosquitto) -> None:
    _safe_through_flood(tmp_path, broker, rate_per_s=10_000, seconds=6.0)
