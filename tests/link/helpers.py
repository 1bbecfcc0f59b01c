"""Shared pieces of the link tests: a node config, detect-shaped events, a recording
subscriber that checks every message against the topic's schema."""

from __future__ import annotations

import functools
import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import paho.mqtt.client as paho

from edgenode.config import Config, load_config
from edgenode.link.payloads import load_schema
from edgenode.link.topics import schema_for_topic
from edgenode.ulid import new_ulid
from tests.brokers import connect_kwargs, paho_client
from tests.conftest import Mosquitto, free_port

SITE, NODE = "test", "n1"
PREFIX = f"edgenode/{SITE}/{NODE}"


@functools.cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    # Built once per schema: building it per message made the recorder fall seconds behind
    # a replayed backlog on a slow CI machine.
    return jsonschema.Draft202012Validator(load_schema(name))


def write_config(path: Path, url: str, *, site: str = SITE, node: str = NODE,
                 **broker: Any) -> Path:
    """A valid node config file with a [broker] section (fake relay, no sensors)."""
    storage = broker.pop("_storage", None)
    lines = [f'url = "{url}"'] + [f"{k} = {json.dumps(str(v) if isinstance(v, Path) else v)}"
                                  for k, v in broker.items()]
    text = f"""
[node]
site = "{site}"
id = "{node}"
hardware = "test-rig"
latitude_deg = 51.5
longitude_deg = -0.12
altitude_m = 30.0
mast_heading_deg = 90.0

[broker]
{chr(10).join(lines)}

[relay]
backend = "fake"
drive_line = 17
heartbeat_line = 27
aux_line = 22
key_test_line = 5
key_operate_line = 6
max_on_s = 60
"""
    if storage:
        text += "\n[storage]\n" + "\n".join(f"{k} = {v}" for k, v in storage.items()) + "\n"
    path.write_text(text)
    return path


def make_config(tmp_path: Path, url: str, storage: dict[str, Any] | None = None, *,
                site: str = SITE, node: str = NODE, **broker: Any) -> Config:
    if storage:
        broker["_storage"] = storage
    return load_config(write_config(tmp_path / f"{site}-{node}.toml", url, site=site,
                                    node=node, **broker))


def track_state(object_id: str, t: float, status: str = "confirmed",
                updates: int = 1) -> dict[str, Any]:
    return {
        "object_id": object_id, "status": status, "t": t, "first_seen": t - 2.0,
        "range_m": {"value": 412.0, "error": 3.5},
        "azimuth_deg": {"value": 123.4, "error": 1.2},
        "elevation_deg": {"value": 8.1, "error": 2.0},
        "location": {"datum": "WGS84", "latitude_deg": 51.4975, "longitude_deg": -0.1156,
                     "altitude_m": 88.0, "error_m": 6.0},
        "velocity_enu_mps": {"east": 4.0, "north": -3.0, "up": 0.2},
        "speed_mps": 5.0,
        "classification": [{"type": "drone", "confidence": 0.8},
                           {"type": "bird", "confidence": 0.2}],
        "evidence": [{"name": "rotor_harmonics", "value": True, "weight": 0.6},
                     {"name": "rcs_dbsm", "value": -18.5, "weight": 0.4}],
        "sensors": ["radar", "acoustic"],
        "acoustic": {"f0_hz": 187.5, "score": 0.9},
        "updates": updates,
    }


def track_event(kind: str, object_id: str | None = None, t: float | None = None,
                updates: int = 1) -> dict[str, Any]:
    object_id = object_id or new_ulid()
    t = time.time() if t is None else t
    state = track_state(object_id, t, updates=updates)
    before = None if kind == "new" else track_state(object_id, t - 0.1, updates=updates - 1)
    after = ({**state, "status": "ended"} if kind == "end" else state)
    return {"type": kind, "object_id": object_id, "before": before, "after": after}


def wait_until(predicate: Any, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return bool(predicate())


@dataclass
class Received:
    topic: str
    payload: dict[str, Any]
    retain: bool
    t: float
    correlation_data: bytes | None = None
    qos: int = 1


@dataclass
class Recorder:
    """Subscribes to edgenode/#; every message must parse and match its topic's schema."""

    url_port: int
    topic: str = "edgenode/#"
    tls: ssl.SSLContext | None = None
    # A persistent session (the control room's consumer): the broker queues for it while it
    # reconnects after an outage (Mosquitto: a broker started with persistence).
    persistent: bool = False
    mqtt_version: str = "5"  # the broker's: RabbitMQ 3.10 speaks 3.1.1 only
    # Subscribed at QoS 2, a message arrives at the QoS it was published with (up to what the
    # broker grants: RabbitMQ grants 1).
    qos: int = 1
    messages: list[Received] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def for_broker(cls, broker: Any, **kwargs: Any) -> Recorder:
        """A recorder on `broker` (tests/conftest.py's any_broker) in its MQTT version.
        Mind that RabbitMQ hands retained messages only to exact-topic subscriptions."""
        return cls(broker.port, mqtt_version=broker.mqtt_version, **kwargs)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._client_id = f"rec-{new_ulid()}"
        self.client = paho_client(self.mqtt_version, self._client_id,
                                  persistent=self.persistent)
        if self.tls:
            self.client.tls_set_context(self.tls)
        self.client.on_connect = lambda c, u, f, rc, p: (c.subscribe(self.topic, self.qos),
                                                         self._ready.set())
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)

    def start(self) -> Recorder:
        self.client.connect_async("127.0.0.1", self.url_port, 30,
                                  **connect_kwargs(self.mqtt_version, self.persistent))
        self.client.loop_start()
        assert self._ready.wait(10), "recorder could not connect"
        time.sleep(0.1)  # SUBACK
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
        if self.persistent and not self.tls:
            # End the session, or a broker shared by later tests (RabbitMQ's) keeps
            # queueing everything for a recorder that never comes back.
            ender = paho_client(self.mqtt_version, self._client_id)
            try:
                ender.connect("127.0.0.1", self.url_port, **connect_kwargs(self.mqtt_version))
                ender.loop(0.5)
                ender.disconnect()
            except OSError:
                pass  # the broker is gone: nothing to end

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            self.problems.append(f"{msg.topic}: not JSON: {msg.payload[:80]!r}")
            return
        name = schema_for_topic(msg.topic)
        if name is None:
            self.problems.append(f"{msg.topic}: no schema for this topic")
        else:
            errors = sorted(_validator(name).iter_errors(payload), key=str)
            if errors:
                self.problems.append(f"{msg.topic}: {errors[0].message} at "
                                     f"{list(errors[0].absolute_path)}")
        with self._lock:
            self.messages.append(Received(
                msg.topic, payload, bool(msg.retain), time.monotonic(),
                getattr(props, "CorrelationData", None) if props else None, msg.qos))

    def on(self, suffix: str) -> list[Received]:
        with self._lock:
            return [m for m in self.messages if m.topic == f"{PREFIX}/{suffix}"]

    def wait_for(self, predicate: Any, timeout_s: float = 10.0) -> bool:
        return wait_until(predicate, timeout_s)

    def track_events(self) -> list[dict[str, Any]]:
        return [m.payload for m in self.on("events") if m.payload.get("type") != "gap"]

    def unique_events(self) -> dict[str, dict[str, Any]]:
        return {e["event_id"]: e for e in self.track_events()}


def audit_refusing_broker(workdir: Path) -> Mosquitto:
    """A Mosquitto whose ACL lets the node write everything of its own but `audit`: each
    audit record's PUBACK carries 0x87 (not authorized)."""
    acl = workdir / "acl"
    acl.write_text(f"pattern readwrite {PREFIX}/events\npattern readwrite {PREFIX}/status\n"
                   f"pattern readwrite {PREFIX}/health\npattern readwrite {PREFIX}/cmd\n"
                   f"pattern readwrite {PREFIX}/ping\npattern read #\n")
    port = free_port()
    return Mosquitto(workdir / "broker", port=port, extra=(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nacl_file {acl}\n")).start()
