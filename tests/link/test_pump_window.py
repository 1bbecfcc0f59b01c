"""Issue 21: the in-flight windows, shown on a real Mosquitto that hangs (SIGSTOP) with the
node's connection open, so that no PUBACK comes: the pump hands the client at most
PUMP_WINDOW outbox rows not yet acknowledged, and the client puts at most
`broker.max_inflight` QoS 1 publishes on the wire (counted by a relay in front of the
broker, tests/link/wire.py)."""

from __future__ import annotations

import time
from pathlib import Path

from edgenode.health import Health
from edgenode.link import Link
from edgenode.link.link import PUMP_WINDOW
from tests.conftest import Mosquitto
from tests.link.helpers import make_config, track_event, wait_until
from tests.link.wire import WireCount

BACKLOG = 3 * PUMP_WINDOW  # rows waiting behind the window
MAX_INFLIGHT = 7  # not paho's default (20), so the setting is what is seen


def test_a_frozen_broker_holds_the_windows_full_and_no_fuller(tmp_path: Path,
                                                             mosquitto: Mosquitto) -> None:
    wire = WireCount(mosquitto.port)
    link = Link(make_config(tmp_path, wire.url, max_inflight=MAX_INFLIGHT),
                tmp_path / "state", Health(), version="0.0-test", capabilities=[],
                config_digest="sha256:test")
    seen: list[int] = []

    def in_flight() -> int:
        counters = link.counters()
        seen.append(counters["in_flight"])
        return int(counters["in_flight"])

    try:
        link.start()
        assert wait_until(lambda: link.connected, 10)
        assert wait_until(lambda: wire.unacked == 0, 5)  # birth, states acknowledged
        mosquitto.freeze()
        for _ in range(BACKLOG // 64):
            link.publish_events([track_event("update") for _ in range(64)])
        assert link.flush(10)
        # The pump fills its window and stops there; the client fills the wire and stops.
        assert wait_until(lambda: in_flight() >= PUMP_WINDOW, 10), seen[-5:]
        assert max(seen) == PUMP_WINDOW, f"{max(seen)} rows in flight"
        assert wait_until(lambda: wire.unacked == MAX_INFLIGHT, 5), wire.unacked
        for _ in range(25):  # and it stays so
            time.sleep(0.02)
            assert in_flight() == PUMP_WINDOW
        assert max(seen) == PUMP_WINDOW
        assert wire.max_unacked == wire.unacked == MAX_INFLIGHT
        counters = link.counters()
        assert counters["published"] == 0
        assert counters["backlog"] == BACKLOG
        mosquitto.thaw()
        # The windows move on as PUBACKs come, and never grow past their size.
        assert wait_until(lambda: in_flight() == 0 and link.counters()["backlog"] == 0, 30), (
            link.counters())
        assert link.counters()["published"] == BACKLOG
        assert max(seen) == PUMP_WINDOW
        assert wire.max_unacked == MAX_INFLIGHT
    finally:
        mosquitto.thaw()
        link.stop()
        wire.close()
