"""The daemon on the twin keeps every event through a broker outage and a kill -9."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

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


def test_broker_down_for_30_s_then_kill_9_loses_no_event(tmp_path: Path) -> None:
    mosquitto = Mosquitto(tmp_path / "broker", persistent=True).start()
    consumer = EventLog(mosquitto)
    state = tmp_path / "state"
    daemon = SimDaemon("two-drones-crossing", state, mosquitto, "--speed", "2")
    try:
        session = daemon.status()["session"]
        wait_until(lambda: len(consumer.seqs(session)) >= 5, 60, "the first track events")

        mosquitto.stop()  # the broker is gone for 30 s while the twin keeps producing tracks
        time.sleep(30)
        produced_offline = daemon.status()["link"]["backlog"]
        mosquitto.start()
        wait_until(lambda: drained(daemon), 60, "the outbox to drain after the outage")
        assert produced_offline > 0, "no event was produced during the outage"

        # Power cut in the middle of the stream: kill -9, then start again on the same state.
        daemon.stop(signal.SIGKILL)
        daemon = SimDaemon("two-drones-crossing", state, mosquitto, "--speed", "2",
                           log_path=tmp_path / "state-after-kill.log")
        second = daemon.status()["session"]
        assert second == session + 1
        wait_until(lambda: drained(daemon) and len(consumer.seqs(second)) >= 1, 60,
                   "the restarted daemon to replay its outbox")
        time.sleep(1)  # the last acknowledged publishes reach the consumer
    finally:
        daemon.stop()
        consumer.client.stop()
        mosquitto.stop()

    # Every event of the first session arrived exactly once (after de-duplication by id),
    # and the sequence has no hole that a gap record would have to explain.
    seqs = consumer.seqs(session)
    assert seqs == list(range(len(seqs))), "sequence gap in the first session"
    assert not consumer.gaps(), "events were deliberately dropped"
    assert consumer.deliveries >= len(consumer.by_id)
