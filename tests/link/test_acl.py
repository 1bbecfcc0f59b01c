"""The shipped broker ACL (hardware/mosquitto/edgenode.acl) on a real Mosquitto: a node
publishes only under its own prefix and reads only its own cmd; operators write cmd."""

from __future__ import annotations

import json
import subprocess
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
