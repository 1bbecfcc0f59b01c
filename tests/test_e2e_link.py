"""The daemon on the twin keeps every committed event through a broker outage and a kill -9
in the middle of the stream."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from pathlib import Path

from edgenode.link.link import OUTBOX_FILE
from edgenode.link.mqtt import BrokerOptions, InboundMessage, MqttClient
from tests.conftest import Mosquitto
from tests.simdaemon import SIM_NODE, SIM_SITE, SimDaemon

EVENTS = f"edgenode/{SIM_SITE}/{SIM_NODE}/events"


class EventLog:
    """A control-room consumer: de-duplicates by event_id, keeps (session, seq)."""

    def __init__(self, broker: Mosquitto):
        self.lock = threading.Lock()
        self.by_id: dict[str, dict] = {}
        self.deliveries = 0
        # A persistent session (on a broker that persists it), so QoS 1 events wait for this
        # consumer while it is away, as a control room's consumer is configured.
        self.client = MqttClient(BrokerOptions(url=broker.url, client_id="control-room",
                                               mqtt_version="3.1.1", clean_start=False,
                                               reconnect_min_s=0.2, reconnect_max_s=1.0))
        self.client.subscribe(EVENTS, self._on_event, qos=1)
        self.client.start()
        assert self.client.connected.wait(10)

    def _on_event(self, message: InboundMessage) -> None:
        event = json.loads(message.payload)
        with self.lock:
            self.deliveries += 1
            self.by_id.setdefault(event["event_id"], event)

    def seqs(self, session: int) -> list[int]:
        with self.lock:
            return sorted(e["seq"] for e in self.by_id.values() if e["session"] == session)

    def gaps(self) -> list[dict]:
        with self.lock:
            return [e for e in self.by_id.values() if e.get("type") == "gap"]


def wait_until(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def drained(daemon: SimDaemon) -> bool:
    link = daemon.status()["link"]
    return bool(link["connected"]) and link["backlog"] == 0 and link["in_flight"] == 0


def committed_event_seqs(state: Path, session: int) -> list[int]:
    """The session's events in the outbox as the kill left them: committed, not yet sent."""
    db = sqlite3.connect(state / OUTBOX_FILE)
    try:
        rows = db.execute("SELECT seq FROM outbox WHERE stream = 'events' AND session = ? "
                          "ORDER BY seq", (session,)).fetchall()
    finally:
        db.close()
    return [seq for (seq,) in rows]


def test_broker_down_then_kill_9_while_producing_loses_no_committed_event(
        tmp_path: Path) -> None:
    mosquitto = Mosquitto(tmp_path / "broker", persistent=True).start()
    consumer = EventLog(mosquitto)
    state = tmp_path / "state"
    daemon = SimDaemon("two-drones-crossing", state, mosquitto, "--speed", "2")
    try:
        session = daemon.status()["session"]
        wait_until(lambda: len(consumer.seqs(session)) >= 5, 60, "the first track events")
        delivered_before = consumer.seqs(session)

        # The broker goes away while the twin keeps producing tracks; once events pile up in
        # the outbox, a power cut (kill -9) in the middle of the stream, nothing drained.
        mosquitto.stop()
        wait_until(lambda: daemon.status()["link"]["backlog"] >= 5, 60,
                   "events to pile up in the outbox during the outage")
        daemon.stop(signal.SIGKILL)
        committed = committed_event_seqs(state, session)
        assert committed, "no event was committed during the outage"
        high_water = committed[-1]
        assert high_water > max(delivered_before)

        mosquitto.start()
        daemon = SimDaemon("two-drones-crossing", state, mosquitto, "--speed", "2",
                           log_path=tmp_path / "state-after-kill.log")
        second = daemon.status()["session"]
        assert second == session + 1
        wait_until(lambda: set(consumer.seqs(session)) >= set(range(high_water + 1)), 60,
                   f"every committed event of the first session (to seq {high_water})")
    finally:
        daemon.stop()
        consumer.client.stop()
        mosquitto.stop()

    # Every committed event of the first session arrived, with no hole that a gap record
    # would have to explain; an event committed in the instant of the kill (after the outbox
    # was read) may arrive too.
    seqs = consumer.seqs(session)
    assert seqs == list(range(len(seqs))), "sequence gap in the first session"
    assert len(seqs) >= high_water + 1
    assert not consumer.gaps(), "events were deliberately dropped"
    # A replayed event is the same event (same id), not a new one for the same seq.
    with consumer.lock:
        keys = [(e["session"], e["seq"]) for e in consumer.by_id.values() if "seq" in e]
    assert len(keys) == len(set(keys)), "an event replayed under a new event_id"
