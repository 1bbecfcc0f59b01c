"""Bench: events/s through the outbox to a broker and back, against raw paho QoS 1 on the same
broker, and publish-to-receive latency through the outbox. Run by `make bench`.

Targets: outbox path >= 50 % of raw paho; latency p99 <= 20 ms on loopback.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from edgenode.health import Health  # noqa: E402
from edgenode.link import Link  # noqa: E402
from edgenode.link.payloads import Envelope, encode  # noqa: E402
from tests.bench.targets import Targets  # noqa: E402
from tests.conftest import Mosquitto  # noqa: E402
from tests.link.helpers import make_config, track_event  # noqa: E402

N_THROUGHPUT = 5000
N_LATENCY = 1000
LATENCY_RATE_HZ = 200
ROUNDS = 3


class Counter:
    """A subscriber that counts messages on one topic and notes arrival times."""

    def __init__(self, port: int, topic: str):
        self.n = 0
        self.last = 0.0
        self.latencies_ms: list[float] = []
        self.done = threading.Event()
        self.target = 0
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, 1)
        self.client.loop_start()
        time.sleep(0.3)
        self.measure_latency = False

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        now = time.time()
        self.n += 1
        self.last = time.perf_counter()
        if self.measure_latency:
            self.latencies_ms.append((now - json.loads(msg.payload)["t"]) * 1000)
        if self.n >= self.target:
            self.done.set()

    def expect(self, count: int) -> None:
        self.n, self.target = 0, count
        self.done.clear()
        self.latencies_ms.clear()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def raw_paho(port: int, payload: bytes) -> float:
    counter = Counter(port, "raw/#")
    counter.expect(N_THROUGHPUT)
    pub = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    pub.max_inflight_messages_set(20)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    start = time.perf_counter()
    for _ in range(N_THROUGHPUT):
        pub.publish("raw/events", payload, qos=1)
    assert counter.done.wait(60), f"raw: {counter.n} of {N_THROUGHPUT}"
    rate = N_THROUGHPUT / (counter.last - start)
    pub.disconnect()
    pub.loop_stop()
    counter.close()
    return rate


def outbox_path(tmp: Path, broker: Mosquitto) -> tuple[float, list[float]]:
    config = make_config(tmp, broker.url)
    link = Link(config, tmp / "state", Health(), version="bench", capabilities=[],
                config_digest="bench")
    counter = Counter(broker.port, "edgenode/+/+/events")
    link.start()
    while not link.connected:
        time.sleep(0.01)
    events = [track_event("update", updates=i + 1) for i in range(N_THROUGHPUT)]
    counter.expect(N_THROUGHPUT)
    start = time.perf_counter()
    for event in events:
        link.publish_event(event)
    assert counter.done.wait(60), f"outbox: {counter.n} of {N_THROUGHPUT}"
    rate = N_THROUGHPUT / (counter.last - start)

    counter.expect(N_LATENCY)
    counter.measure_latency = True
    period = 1 / LATENCY_RATE_HZ
    next_at = time.perf_counter()
    for event in events[:N_LATENCY]:
        link.publish_event(event)
        next_at += period
        time.sleep(max(0.0, next_at - time.perf_counter()))
    assert counter.done.wait(30)
    latencies = sorted(counter.latencies_ms)
    link.stop()
    counter.close()
    return rate, latencies


def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        # No cap on the subscriber's queue: a slow subscriber must not lose messages.
        broker = Mosquitto(tmp / "broker", extra="max_queued_messages 0\n").start()
        try:
            payload = encode(Envelope("bench", "n1", 1).event(track_event("update"), 0,
                                                               time.time()))
            # Interleaved rounds, best of each path: one round's ratio moved 40-67 % with the
            # machine's moment-to-moment load, across a 50 % target.
            raws, outboxes, latencies = [], [], []
            for i in range(ROUNDS):
                raws.append(raw_paho(broker.port, payload))
                (tmp / f"round{i}").mkdir()
                rate, lat = outbox_path(tmp / f"round{i}", broker)
                outboxes.append(rate)
                latencies += lat
            raw, outbox = max(raws), max(outboxes)
            latencies.sort()
        finally:
            broker.stop()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    ratio = outbox / raw
    targets = Targets("bench_link")
    ratio_ok = targets.at_least("outbox / raw paho throughput", ratio * 100, 50, "%")
    p99_ok = targets.at_most("latency through the outbox, p99", p99, 20, "ms")
    print(f"link: payload {len(payload)} bytes, {N_THROUGHPUT} events, loopback Mosquitto, "
          f"best of {ROUNDS} interleaved rounds")
    print(f"link: raw paho QoS 1 publish->receive      {raw:8.0f} events/s")
    print(f"link: outbox (SQLite WAL) publish->receive {outbox:8.0f} events/s")
    print(f"link: outbox / raw                         {ratio * 100:8.1f} %  (target >= 50 %)"
          f"  {ratio_ok}")
    print(f"link: latency through the outbox at {LATENCY_RATE_HZ} events/s: "
          f"p50 {p50:.2f} ms, p99 {p99:.2f} ms  (target p99 <= 20 ms)  "
          f"{p99_ok}")
    return targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
