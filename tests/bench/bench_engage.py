"""Engage latency: from publishing a signed `engage` to the relay drive line going high,
p50/p99 over 200 engagements on loopback, beside a bare MQTT publish-to-receive round trip
measured in the same run. Target: engage p99 <= bare p99 + 5 ms.

HARNESS: until the daemon wiring lands, the node side is an in-process stand-in (an Effector
on a FakeGpio board answering through MqttClient, exactly what the daemon's command intake
does). The main session swaps it for `edgenode run` on the twin (GPIO record file timestamps).
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from edgenode.config import Config  # noqa: E402
from edgenode.control import Effector  # noqa: E402
from edgenode.control.keys import OperatorIdentity  # noqa: E402
from edgenode.control.operator import build_command, encode  # noqa: E402
from edgenode.health import Health  # noqa: E402
from edgenode.link.mqtt import BrokerOptions, InboundMessage, MqttClient  # noqa: E402
from hal.ports.gpio.fake import FakeGpio  # noqa: E402
from hal.relay import JammerRelay  # noqa: E402
from tests.conftest import Mosquitto  # noqa: E402

N = 200
SITE, NODE = "bench", "node-01"
CMD = f"edgenode/{SITE}/{NODE}/cmd"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def connect(url: str, client_id: str) -> MqttClient:
    client = MqttClient(BrokerOptions(url=url, client_id=client_id))
    client.start()
    if not client.connected.wait(5):
        raise SystemExit(f"bench: broker {url} unreachable")
    return client


def bare_round_trip(url: str) -> list[float]:
    sender, receiver = connect(url, "bench-bare-tx"), connect(url, "bench-bare-rx")
    got = threading.Event()
    receiver.subscribe("bench/bare", lambda _m: got.set())
    time.sleep(0.2)
    out = []
    for _ in range(N):
        got.clear()
        t0 = time.monotonic()
        sender.publish("bench/bare", b'{"x":1}')
        got.wait(2)
        out.append(time.monotonic() - t0)
    sender.stop()
    receiver.stop()
    return out


def main() -> int:
    operator = OperatorIdentity("bench", "operator", Ed25519PrivateKey.generate())
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(Path(tmp) / "broker", extra="set_tcp_nodelay true").start()
        try:
            bare = bare_round_trip(broker.url)
            config = Config.model_validate({
                "node": {"site": SITE, "id": NODE, "latitude_deg": 0, "longitude_deg": 0,
                         "altitude_m": 0, "mast_heading_deg": 0},
                "broker": {"url": broker.url},
                "relay": {"backend": "fake", "drive_line": 17, "heartbeat_line": 27,
                          "aux_line": 22, "key_test_line": 5, "key_operate_line": 6,
                          "max_on_s": 60},
                # The bench's own duty budget: 200 short engagements must not spend it.
                "effector": {"enabled": True, "duty_window_s": 10, "duty_max_on_s": 86400,
                             "keys": [{"id": operator.id, "role": "operator",
                                       "public_key": operator.public_b64}]},
            })
            gpio = FakeGpio(inputs={6: True})
            relay = JammerRelay(gpio, drive_line=17, heartbeat_line=27, aux_line=22,
                                key_test_line=5, key_operate_line=6)
            effector = Effector(relay, config, Health(), Path(tmp) / "state",
                                publish_audit=lambda _r: None, publish_state=lambda _s: None,
                                clock_synced=lambda: True)
            effector.start()
            node = connect(broker.url, "bench-node")

            def on_command(msg: InboundMessage) -> None:
                result = effector.handle_command(msg)
                # The aux contact follows the drive (a real relay takes ~10 ms: not counted).
                gpio.drive_input(22, gpio.level(17))
                node.publish(f"{CMD}/result", json.dumps(result).encode())

            node.subscribe(CMD, on_command)
            ctl = connect(broker.url, "bench-ctl")
            results: dict[str, dict[str, object]] = {}
            arrived = threading.Condition()

            def on_result(msg: InboundMessage) -> None:
                value = json.loads(msg.payload)
                with arrived:
                    results[value["id"]] = value
                    arrived.notify_all()

            ctl.subscribe(f"{CMD}/result", on_result)
            time.sleep(0.3)

            def send(action: str, params: dict[str, object]) -> tuple[float, dict[str, object]]:
                env = build_command(operator, SITE, NODE, action, params)
                payload = encode(env)
                t0 = time.monotonic()
                ctl.publish(CMD, payload)
                with arrived:
                    arrived.wait_for(lambda: env["id"] in results, 5)
                return t0, results.get(env["id"], {"status": "timeout"})

            latencies = []
            for i in range(N):
                if i % 50 == 0:
                    send("arm", {"ttl_s": 300})
                t0, result = send("engage", {"duration_s": 5, "bearing_deg": 10})
                if result.get("status") != "ok":
                    raise SystemExit(f"bench: engage {i} not ok: {result}")
                t_on = [t for t, level in gpio.history(17) if level][-1]
                latencies.append(t_on - t0)
                send("disengage", {})
            ctl.stop()
            node.stop()
            effector.stop()
        finally:
            broker.stop()
    bare_p99 = percentile(bare, 99) * 1e3
    engage_p99 = percentile(latencies, 99) * 1e3
    print(f"bare MQTT publish->receive: p50 {statistics.median(bare) * 1e3:.2f} ms, "
          f"p99 {bare_p99:.2f} ms (n={N})")
    print(f"engage publish->relay on:   p50 {statistics.median(latencies) * 1e3:.2f} ms, "
          f"p99 {engage_p99:.2f} ms (n={N}; in-process node stand-in)")
    verdict = "met" if engage_p99 <= bare_p99 + 5 else "NOT met"
    print(f"target engage p99 <= bare p99 + 5 ms = {bare_p99 + 5:.2f} ms: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
