"""`edgenode ctl` and the fused tracks: the watch lists them; `engage --fused ID` sends the
signed engage to the node central names best placed, for that node's own track."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

from edgenode.central.fleetsim import FleetSim
from edgenode.central.service import Central
from edgenode.link.mqtt import BrokerOptions, InboundMessage, MqttClient
from tests.central.helpers import TrackWatcher
from tests.conftest import EDGENODE, Mosquitto
from tests.link.helpers import wait_until


def test_watch_lists_fused_tracks_and_engage_fused_targets_the_best_placed_node(
        mosquitto: Mosquitto, tmp_path: Path):
    key = tmp_path / "op.key"
    subprocess.run([*EDGENODE, "ctl", "--key", str(key), "keygen", "--id", "op"], check=True,
                   capture_output=True)
    central = Central(mosquitto.url, instance="c-ctl")
    central.start()
    assert central.wait_ready()
    commands: list[tuple[str, dict]] = []
    spy = MqttClient(BrokerOptions(url=mosquitto.url, client_id="spy"))
    spy.subscribe("edgenode/+/+/cmd",
                  lambda m: commands.append((m.topic, json.loads(m.payload))))
    spy.start()
    assert spy.subscribed.wait(10)
    # Flies until the test is done (at most 30 s): two `edgenode ctl` start-ups under load
    # took longer than the 9 s flight this had, and the fused track ended before ctl asked.
    sim = FleetSim(mosquitto.url, nodes=3, drones=1, seconds=30, nodes_per_site=3)
    done = threading.Event()
    runner = threading.Thread(target=sim.run, args=(done,))
    try:
        with TrackWatcher(mosquitto.url) as watch:
            runner.start()
            assert wait_until(lambda: any(t["position"] for t in watch.tracks), 10)
            fused = next(t for t in watch.tracks if t["position"])
            out = subprocess.run([*EDGENODE, "ctl", "--broker", mosquitto.url, "--json",
                                  "watch", "--for", "2"], capture_output=True, text=True,
                                 timeout=30)
            frames = [json.loads(line) for line in out.stdout.splitlines() if line]
            assert any(f["fused"] for f in frames), out.stderr[-500:]
            engage = subprocess.run(
                [*EDGENODE, "ctl", "--broker", mosquitto.url, "--key", str(key),
                 "--timeout", "2", "engage", "--duration", "5",
                 "--fused", fused["fused_id"][-10:]],
                capture_output=True, text=True, timeout=30)
        assert wait_until(lambda: commands, 5), engage.stderr[-800:]
        topic, command = commands[0]
        # The best-placed node changes as the drone flies: ctl takes the one central names
        # when it asks, so judge against the fused track's updates, not the first one.
        site, node = topic.split("/")[1:3]
        updates = [t for t in watch.tracks if t["fused_id"] == fused["fused_id"]]
        chosen = [t for t in updates if t["engage_node"] == node]
        assert site == fused["site"] and chosen, (topic, [t["engage_node"] for t in updates])
        own = {m["node"]: m["object_id"] for m in chosen[-1]["members"]}
        assert command["action"] == "engage" and command["params"]["track"] == own[node]
        assert engage.returncode != 0  # no node answers here: ctl says so, nothing engages
    finally:
        done.set()
        runner.join()
        spy.stop()
        central.stop()


def test_engage_fused_with_an_unknown_id_names_the_id_and_sends_nothing(
        mosquitto: Mosquitto, tmp_path: Path):
    key = tmp_path / "op.key"
    subprocess.run([*EDGENODE, "ctl", "--key", str(key), "keygen", "--id", "op"], check=True,
                   capture_output=True)
    seen: list[InboundMessage] = []
    spy = MqttClient(BrokerOptions(url=mosquitto.url, client_id="spy"))
    spy.subscribe("edgenode/+/+/cmd", seen.append)
    spy.start()
    assert spy.subscribed.wait(10)
    out = subprocess.run([*EDGENODE, "ctl", "--broker", mosquitto.url, "--key", str(key),
                          "--timeout", "1", "engage", "--duration", "5", "--fused", "NOPE"],
                         capture_output=True, text=True, timeout=30)
    spy.stop()
    assert out.returncode != 0 and "NOPE" in out.stderr
    assert seen == []
