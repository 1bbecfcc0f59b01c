"""Helpers for the central service's broker tests: a subscriber to fused tracks."""

from __future__ import annotations

import json
import threading
from typing import Any

import jsonschema

from edgenode.central.tracks import load_schema
from edgenode.link.mqtt import BrokerOptions, InboundMessage, MqttClient
from edgenode.ulid import new_ulid


class TrackWatcher:
    """Subscribes to edgenode/+/central/tracks; every payload must match the schema."""

    def __init__(self, url: str, mqtt_version: str = "5"):
        self.tracks: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self.client = MqttClient(BrokerOptions(url=url, client_id=f"watch-{new_ulid()[-8:]}",
                                               mqtt_version=mqtt_version))
        self.client.subscribe("edgenode/+/central/tracks", self._on)
        self._validator = jsonschema.Draft202012Validator(load_schema())

    def _on(self, msg: InboundMessage) -> None:
        payload = json.loads(msg.payload)
        for error in self._validator.iter_errors(payload):
            self.errors.append(f"{msg.topic}: {error.message}")
        with self._lock:
            self.tracks.append(payload)

    def __enter__(self) -> TrackWatcher:
        self.client.start()
        assert self.client.connected.wait(10) and self.client.subscribed.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.stop()
