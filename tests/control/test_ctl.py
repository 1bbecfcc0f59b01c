"""`edgenode ctl` end to end: a real Mosquitto, the CLI as a subprocess, and a small responder
that feeds every command to Effector.handle_command and answers like the daemon will."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgenode.control.keys import load_key_file, write_key_file
from edgenode.link.mqtt import BrokerOptions, InboundMessage, MqttClient
from tests.conftest import EDGENODE, ROOT, Mosquitto
from tests.control.conftest import NODE, OPERATORS, SITE, Rig, RigFactory


class Responder:
    def __init__(self, url: str, rig: Rig):
        self.rig = rig
        self.client = MqttClient(BrokerOptions(url=url, client_id="test-node"))
        self.client.subscribe(f"edgenode/{SITE}/{NODE}/cmd", self.on_command)
        self.client.start()
        assert self.client.connected.wait(5)
        self.client.publish(f"edgenode/{SITE}/{NODE}/status", b'{"status":"online"}',
                            retain=True)

    def on_command(self, msg: InboundMessage) -> None:
        result = json.dumps(self.rig.effector.handle_command(msg)).encode()
        self.client.publish(f"edgenode/{SITE}/{NODE}/cmd/result", result)
        if msg.response_topic:
            self.client.publish(msg.response_topic, result,
                                correlation_data=msg.correlation_data)

    def stop(self) -> None:
        self.client.stop()


@pytest.fixture
def node(make_rig: RigFactory, mosquitto: Mosquitto) -> Iterator[Rig]:
    rig = make_rig()
    responder = Responder(mosquitto.url, rig)
    yield rig
    responder.stop()


def ctl(tmp_path: Path, broker: str, *args: str, who: str = "alice",
        site_node: bool = True) -> subprocess.CompletedProcess[str]:
    key = tmp_path / f"{who}.key"
    if not key.exists():
        write_key_file(key, OPERATORS[who])
    target = ["--site", SITE, "--node", NODE] if site_node else []
    env = {**os.environ, "EDGENODE_CTL_CONFIG": str(tmp_path / "no-ctl.toml")}
    return subprocess.run([*EDGENODE, "ctl", "--broker", broker, "--key", str(key), *target,
                           "--timeout", "3", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=30)


def test_ctl_arms_engages_and_disengages_a_node(node: Rig, mosquitto: Mosquitto,
                                                tmp_path: Path) -> None:
    arm = ctl(tmp_path, mosquitto.url, "arm", "--ttl", "30")
    assert arm.returncode == 0, arm.stderr + arm.stdout
    assert "arm ok" in arm.stdout and "[ARMED]" in arm.stdout
    engage = ctl(tmp_path, mosquitto.url, "engage", "--duration", "20", "--bearing", "120")
    assert engage.returncode == 0, engage.stderr + engage.stdout
    assert node.drive()
    off = ctl(tmp_path, mosquitto.url, "disengage", who="bob")
    assert off.returncode == 0 and not node.drive()


def test_ctl_shows_a_refusal_with_its_reason_and_exits_1(node: Rig, mosquitto: Mosquitto,
                                                          tmp_path: Path) -> None:
    out = ctl(tmp_path, mosquitto.url, "--json", "engage", "--duration", "5", "--track",
              "01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert out.returncode == 1, out.stderr
    result = json.loads(out.stdout)
    assert result["status"] == "rejected" and result["reason"].startswith("not_armed")
    assert not node.drive_went_high()


def test_ctl_finds_the_only_node_online_without_site_and_node(node: Rig, mosquitto: Mosquitto,
                                                              tmp_path: Path) -> None:
    out = ctl(tmp_path, mosquitto.url, "safe", who="obs", site_node=False)
    assert out.returncode == 0, out.stderr
    assert f"{NODE}: safe ok" in out.stdout


def test_ctl_exits_2_when_nobody_answers(mosquitto: Mosquitto, tmp_path: Path) -> None:
    out = ctl(tmp_path, mosquitto.url, "safe")
    assert out.returncode == 2, out.stdout + out.stderr
    assert "no result within" in out.stdout


def test_ctl_status_lists_nodes_and_effector_state(node: Rig, mosquitto: Mosquitto,
                                                   tmp_path: Path) -> None:
    client = MqttClient(BrokerOptions(url=mosquitto.url, client_id="state-pub"))
    client.start()
    assert client.connected.wait(5)
    node.effector.flush()
    client.publish(f"edgenode/{SITE}/{NODE}/effector", json.dumps(node.states[-1]).encode(),
                   retain=True).wait_for_publish(5)
    client.stop()
    out = ctl(tmp_path, mosquitto.url, "--json", "status", "--wait", "0.5")
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout.splitlines()[0])
    assert (row["node"], row["status"], row["effector"]) == (NODE, "online", "SAFE")


def test_keygen_writes_a_key_the_node_accepts(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "carol.key"
    out = subprocess.run([*EDGENODE, "ctl", "--key", str(key), "keygen", "--id", "carol",
                          "--role", "admin"], capture_output=True, text=True, cwd=ROOT,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    snippet = tomllib.loads(out.stdout)["effector"]["keys"][0]
    identity = load_key_file(key)
    assert snippet == {"id": "carol", "role": "admin", "public_key": identity.public_b64}
    assert key.stat().st_mode & 0o777 == 0o600
    again = subprocess.run([*EDGENODE, "ctl", "--key", str(key), "keygen", "--id", "carol"],
                           capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert again.returncode == 1 and "exists" in again.stderr
