"""The airspace rules through the real daemon on the twin: `edgenode run --sim
helicopter-crossing` (the twin serves a helicopter 4 km out at 300 m and an airliner 60 km out
as Beast on a loopback port; the node config reads it), operators using `edgenode ctl`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import jsonschema
import pytest

from edgenode.link.payloads import load_schema
from tests.conftest import Mosquitto
from tests.simdaemon import SimDaemon, ctl, radiating_changes, wait_radiating

REASON = "medevac request: known emergency, police on site"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimDaemon]:
    tmp = tmp_path_factory.mktemp("airspace-e2e")
    broker = Mosquitto(tmp / "broker").start()
    daemon = SimDaemon("helicopter-crossing", tmp / "state", broker,
                       env={"EDGENODE_SIM_ADMIN_KEY": "1"})
    daemon.status()
    yield daemon
    daemon.stop()
    broker.stop()


def airspace(daemon: SimDaemon) -> dict:
    return daemon.status()["health"].get("airspace", {})


def test_engage_is_refused_while_the_helicopter_is_near_and_an_admin_may_override(
        node: SimDaemon, tmp_path: Path) -> None:
    def helicopter() -> dict | None:
        return next((a for a in airspace(node).get("aircraft", []) if a["icao"] == "3C6DD1"
                     and a["callsign"]), None)  # its identification comes every 5 s

    deadline = time.monotonic() + 15
    while (heli := helicopter()) is None:
        assert time.monotonic() < deadline, airspace(node)
        time.sleep(0.3)
    assert heli["callsign"] == "CHX24" and heli["in_volume"]
    assert 2500 < heli["distance_m"] < 4100
    assert heli["height_m"] == pytest.approx(300, abs=15)
    assert node.status()["stages"]["adsb"]["state"] == "ok"
    # what goes into the health report matches the MQTT contract (docs/mqtt.md, health)
    jsonschema.validate(airspace(node), load_schema("health")["properties"]["airspace"])
    report = node.control({"cmd": "selftest"})["report"]
    assert next(c for c in report["checks"] if c["name"] == "adsb.feed")["result"] == "PASS"

    assert ctl(node, node.broker, "arm", "--ttl", "60").returncode == 0
    refused = ctl(node, node.broker, "engage", "--duration", "5", "--bearing", "90")
    assert refused.returncode != 0
    assert "manned_aircraft: CHX24 (3C6DD1)" in refused.stdout + refused.stderr
    assert not [t for t, on in radiating_changes(node) if on]

    started = time.time()
    ok = ctl(node, node.broker, "engage", "--duration", "2", "--bearing", "90",
             "--airspace-override", REASON, key="admin.key")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wait_radiating(node, started)
    audit = (node.state / "audit").glob("*")
    text = "".join(p.read_text(errors="replace") for p in audit if p.is_file())
    assert "airspace_override" in text and REASON in text


@pytest.mark.long  # make test budget; the refusal on the twin stays in make test
def test_aircraft_are_tracks_of_class_manned_aircraft_and_never_engageable(
        node: SimDaemon) -> None:
    watch = ctl(node, node.broker, "--json", "watch", "--for", "3")
    assert watch.returncode == 0, watch.stderr
    tracks = [t for line in watch.stdout.splitlines() for t in json.loads(line)["tracks"]]
    heli = [t for t in tracks if (t.get("adsb") or {}).get("icao") == "3C6DD1"]
    assert heli, tracks
    assert heli[-1]["classification"][0]["type"] == "manned_aircraft"
    assert heli[-1]["sensors"] == ["adsb"]
    # not even an admin's override engages a manned aircraft
    assert ctl(node, node.broker, "arm", "--ttl", "60").returncode == 0
    refused = ctl(node, node.broker, "engage", "--duration", "2", "--track",
                  heli[-1]["object_id"], "--airspace-override", REASON, key="admin.key")
    assert refused.returncode != 0
    assert "never_engageable: track" in refused.stdout + refused.stderr
    assert "is the manned aircraft 3C6DD1" in refused.stdout + refused.stderr
