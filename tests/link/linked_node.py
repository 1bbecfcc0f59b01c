"""A node as the daemon wires it, minus sensors: an Effector on a fake relay board (the coil
model of tests/control/conftest.py) behind a real Link to a real broker, and an operator's
console (raw paho) that sends signed commands and collects results."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from edgenode.config import Config
from edgenode.control import Effector
from edgenode.control.operator import encode as encode_command
from edgenode.health import Health
from edgenode.link import Link
from edgenode.ulid import new_ulid
from hal.ports.gpio.fake import FakeGpio
from hal.relay import JammerRelay
from tests.brokers import connect_kwargs, paho_client
from tests.control.conftest import (
    AUX,
    DRIVE,
    HEARTBEAT,
    KEY_OPERATE,
    KEY_TEST,
    NODE,
    OPERATORS,
    SITE,
    RelayCoil,
    command,
    make_config,
)

PREFIX = f"edgenode/{SITE}/{NODE}"


def linked_config(url: str, broker: dict[str, Any] | None = None,
                  node: dict[str, Any] | None = None, **effector: Any) -> Config:
    base = make_config(**effector).model_dump(mode="json", exclude_none=True)
    base["broker"] = {"url": url, **(broker or {})}
    base["node"].update(node or {})
    return Config.model_validate(base)


@dataclass
class LinkedNode:
    gpio: FakeGpio
    coil: RelayCoil
    effector: Effector
    link: Link

    def drive(self) -> bool:
        return self.gpio.level(DRIVE)

    def stop(self) -> None:
        self.effector.stop()  # its last state and audit go out through the link
        self.link.stop()
        self.coil.stop()


def start_node(state_dir: Path, config: Config) -> LinkedNode:
    gpio = FakeGpio(inputs={KEY_OPERATE: True, KEY_TEST: False})
    relay = JammerRelay(gpio, drive_line=DRIVE, heartbeat_line=HEARTBEAT, aux_line=AUX,
                        key_test_line=KEY_TEST, key_operate_line=KEY_OPERATE)
    coil = RelayCoil(gpio)
    health = Health()
    link = Link(config, state_dir, health, version="0.0-test", capabilities=["effector"],
                config_digest="sha256:test")
    effector = Effector(relay, config, health, state_dir, publish_audit=link.publish_audit,
                        publish_state=lambda state: link.set_state("effector", state),
                        clock_synced=lambda: True)
    effector.start()
    link.on_command(effector.handle_command, slow=effector.may_be_slow)
    link.on_link_change(effector.link_changed)
    link.start()
    return LinkedNode(gpio, coil, effector, link)


@dataclass
class Console:
    """An operator's MQTT client: signs, publishes, collects results by command id."""

    port: int
    user: str | None = None
    site: str = SITE
    node: str = NODE
    mqtt_version: str = "5"  # the broker's (RabbitMQ 3.10: "3.1.1")
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    arrived: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._ready = threading.Event()
        self.client = paho_client(self.mqtt_version, f"op-{new_ulid()}")
        if self.user:
            self.client.username_pw_set(self.user, f"pw-{self.user}")
        self.client.on_connect = lambda c, u, f, rc, p: (
            c.subscribe(f"{self.prefix}/cmd/result", 1), self._ready.set())
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", self.port, **connect_kwargs(self.mqtt_version))
        self.client.loop_start()
        assert self._ready.wait(10), "console could not connect"
        time.sleep(0.2)  # SUBACK

    @property
    def prefix(self) -> str:
        return f"edgenode/{self.site}/{self.node}"

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        if body.get("id"):
            self.results[body["id"]] = body
            self.arrived[body["id"]] = time.monotonic()

    def send(self, who: str, action: str, params: dict[str, Any] | None = None) -> str:
        env = command(OPERATORS[who], action, params, site=self.site, node=self.node)
        self.client.publish(f"{self.prefix}/cmd", encode_command(env), qos=1)
        return str(env["id"])

    def wait_result(self, command_id: str, timeout_s: float = 5.0) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and command_id not in self.results:
            time.sleep(0.005)
        return self.results.get(command_id)

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait(predicate: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())


def engage(node: LinkedNode, console: Console, duration_s: float = 30) -> None:
    assert wait(lambda: node.link.connected, 10), "link never came up"
    time.sleep(1.2)  # a new connection proves itself for a second (edgenode/link/watch.py)
    assert (console.wait_result(console.send("alice", "arm", {"ttl_s": 60})) or {}).get(
        "status") == "ok"
    result = console.wait_result(console.send("alice", "engage",
                                              {"duration_s": duration_s, "bearing_deg": 90}))
    assert result is not None and result["status"] == "ok", result
    assert wait(node.drive, 1)
