"""The daemon on the twin puts its drone and itself on a TAK server's map (taky), keeps
detecting while the server is gone, and marks itself stale when it stops."""

from __future__ import annotations

import math
import time

import pytest

from edgenode.detect.geo import LocalFrame
from tests.conftest import Mosquitto
from tests.interop.cotschema import validate, when
from tests.interop.taky import Listener, Taky
from tests.simdaemon import SimDaemon

NODE_UID = "edgenode-sim-twin-01"


def bearing_of(event, frame: LocalFrame) -> float:
    if event.get("type") == "u-rb-a":
        return float(event.find("detail/bearing").get("value"))
    point = event.find("point")
    e, n, _ = frame.to_enu(float(point.get("lat")), float(point.get("lon")),
                           float(point.get("hae")))
    return math.degrees(math.atan2(e, n)) % 360.0


@pytest.mark.parametrize("outage_s", [
    5.0, pytest.param(20.0, marks=pytest.mark.long)])
def test_the_twins_drone_on_a_tak_map_through_a_server_outage(tmp_path, outage_s):
    broker = Mosquitto(tmp_path).start()
    taky = Taky(tmp_path / "taky").start()
    listener = Listener(taky)
    daemon = SimDaemon("one-drone-crossing", tmp_path / "state", broker, "--cot", taky.url)
    try:
        marker = listener.wait_for(lambda e: e.get("uid") == NODE_UID, timeout_s=30)
        validate(marker)
        assert marker.get("type") == "a-f-G-E-S"
        drone = listener.wait_for(lambda e: e.get("uid", "").startswith(NODE_UID + "-")
                                  and e.get("type") in ("a-u-A-M-H-Q", "u-rb-a"),
                                  timeout_s=40)
        validate(drone)
        assert when(drone.get("stale")) > when(drone.get("start"))
        truth = [r for r in daemon.truth() if r.get("id") == "drone-1"]
        seen_at = when(drone.get("time"))
        nearest = min(truth, key=lambda r: abs(r["t"] - seen_at))
        frame = LocalFrame(57.0, 11.9, 12.0)
        error = (bearing_of(drone, frame) - nearest["bearing_deg"] + 180.0) % 360.0 - 180.0
        assert abs(error) <= 10.0, (drone.get("type"), bearing_of(drone, frame), nearest)

        # The server goes away: detection carries on, events resume after it returns.
        listener.close()
        frames_before = daemon.status()["health"]["counters"]
        taky.stop()
        time.sleep(outage_s)
        status = daemon.status()
        assert status["stages"]["detect"]["state"] == "ok"
        assert status["stages"]["cot"]["state"] == "degraded"
        assert status["health"]["counters"] != frames_before  # the stages kept counting
        taky.start()
        back = time.monotonic()
        listener = Listener(taky)
        listener.wait_for(lambda e: e.get("uid", "").startswith(NODE_UID), timeout_s=35)
        assert time.monotonic() - back <= 31.0  # reconnect_max_s (30) plus a send
    finally:
        daemon.stop()
        stopped = time.time()
    gone = listener.wait_for(lambda e: e.get("uid") == NODE_UID
                             and "stopped" in e.find("detail/remarks").text, timeout_s=10)
    assert when(gone.get("stale")) <= stopped + 1.0
    listener.close()
    taky.stop()
    broker.stop()
