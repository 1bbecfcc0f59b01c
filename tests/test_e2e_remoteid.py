"""Remote ID through the real daemon on the twin (scenario remote-id-drones): the twin's drones
broadcast on the node's `socket` receivers (BT5 extended advertising and Wi-Fi beacons, as a
receiver would capture them); the daemon decodes, associates the broadcasts with its radar
tracks and publishes each track's identity and verdict; the allow-list guards the engage.

One daemon run (~45 s): a liar alone first (spoofed), then a truthful allow-listed survey
drone and a silent one."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from tests.conftest import Mosquitto
from tests.link.helpers import Recorder
from tests.simdaemon import SimDaemon, SimTwin, ctl, radiating_changes, wait_radiating

SCENARIO = Path(__file__).resolve().parents[1] / "hardware/scenarios/remote-id-drones.toml"
ALLOW = [{"uas_id": "SURVEY-0001", "expires": "2099-01-01T00:00:00Z",
          "approved_by": "site manager A. Berg", "note": "pipeline survey"}]
REASON = "survey drone hijacked: confirmed by the operator's call"


class Node:
    def __init__(self, twin: SimTwin, daemon: SimDaemon, recorder: Recorder):
        self.twin, self.daemon, self.recorder = twin, daemon, recorder

    def states(self) -> list[tuple[float, dict[str, Any]]]:
        """(arrival, after-state) of every track event so far."""
        return [(m.t, m.payload["after"]) for m in list(self.recorder.messages)
                if m.topic.endswith("/events") and m.payload.get("after")]

    def track_of(self, uas_id: str | None, verdict: str,
                 timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for _, s in reversed(self.states()):
                ident = s.get("identity") or {}
                if (ident.get("uas_id") == uas_id and ident.get("verdict") == verdict
                        and s["status"] == "confirmed"):
                    return s
            time.sleep(0.3)
        seen = {(s["object_id"][-6:], (s.get("identity") or {}).get("uas_id"),
                 (s.get("identity") or {}).get("verdict")) for _, s in self.states()}
        raise AssertionError(f"no confirmed track with {uas_id} {verdict} in {timeout_s} s; "
                             f"seen {sorted(seen, key=str)}\n{self.daemon.log_text()}")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    tmp = tmp_path_factory.mktemp("remoteid-e2e")
    broker = Mosquitto(tmp / "broker").start()
    recorder = Recorder(broker.port, topic="edgenode/sim/#").start()
    with mock.patch.dict(os.environ, {"EDGENODE_SIM_ADMIN_KEY": "1"}):
        twin = SimTwin(str(SCENARIO), tmp / "state", broker,
                       extra={"remoteid": {"allow": ALLOW}})
    daemon = twin.daemon()
    try:
        daemon.status()
        yield Node(twin, daemon, recorder)
    finally:
        daemon.stop()
        twin.stop()
        recorder.stop()
        broker.stop()


def test_a_drone_claiming_a_position_2_km_away_is_spoofed_within_5_s(node: Node) -> None:
    liar = node.track_of("LIAR-000000000001", "spoofed", timeout_s=20)
    first_seen = min(t for t, s in node.states() if s["object_id"] == liar["object_id"])
    first_spoofed = min(t for t, s in node.states() if s["object_id"] == liar["object_id"]
                        and (s.get("identity") or {}).get("verdict") == "spoofed")
    print(f"spoofed {first_spoofed - first_seen:.1f} s after the track's first event")
    assert first_spoofed - first_seen <= 5.0
    ident = liar["identity"]
    assert ident["how"] == "elimination" and not ident["allowed"]
    assert any("our sensors see it at" in r for r in ident["reasons"]), ident["reasons"]
    assert not node.recorder.problems, node.recorder.problems[:3]


def test_a_truthful_drone_is_trusted_and_a_silent_one_silent(node: Node) -> None:
    survey = node.track_of("SURVEY-0001", "trusted", timeout_s=40)
    ident = survey["identity"]
    assert ident["allowed"] and ident["how"] == "position"
    assert ident["operator_id"] == "SWE-OP-SURVEY" and ident["type"] == "multirotor"
    assert ident["operator_position"]["latitude_deg"] == pytest.approx(57.0, abs=1e-5)
    quiet = node.track_of(None, "silent", timeout_s=10)
    assert quiet["object_id"] != survey["object_id"]
    assert 0 < quiet["azimuth_deg"]["value"] < 60  # the quiet drone, north-north-east
    assert not node.recorder.problems, node.recorder.problems[:3]
    watch = ctl(node.daemon, node.daemon.broker, "watch", "--for", "1.5", discover=False)
    assert "id SURVEY-0001 trusted ALLOW-LISTED" in watch.stdout, watch.stdout[-2000:]


def test_engage_on_the_allow_listed_trusted_drone_is_refused_without_the_override(
        node: Node) -> None:
    survey = node.track_of("SURVEY-0001", "trusted", timeout_s=40)
    daemon = node.daemon
    assert ctl(daemon, daemon.broker, "arm", "--ttl", "60", discover=False).returncode == 0
    refused = ctl(daemon, daemon.broker, "engage", "--duration", "2", "--track",
                  survey["object_id"], discover=False)
    assert refused.returncode != 0
    out = refused.stdout + refused.stderr
    assert "allow_listed: refused: the track carries SURVEY-0001" in out, out
    assert not [t for t, on in radiating_changes(daemon) if on]
    # an operator's override is not enough: it needs an admin key
    operator = ctl(daemon, daemon.broker, "engage", "--duration", "2", "--track",
                   survey["object_id"], "--identity-override", REASON, discover=False)
    assert "role_not_allowed: identity_override needs an admin key" in \
        operator.stdout + operator.stderr
    started = time.time()
    ok = ctl(daemon, daemon.broker, "engage", "--duration", "2", "--track",
             survey["object_id"], "--identity-override", REASON, key="admin.key",
             discover=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wait_radiating(daemon, started)
    text = "".join(p.read_text(errors="replace") for p in (daemon.state / "audit").glob("*")
                   if p.is_file())
    assert '"identity_override"' in text and REASON in text
    assert "allow_listed: refused" in text  # the refusal is in the audit log too
    assert '"allow_list"' in text and "site manager A. Berg" in text  # the list in force


@pytest.mark.long  # make test budget; the allow-list admission is in tests/control
def test_an_admin_takes_the_drone_off_the_allow_list_by_command(node: Node) -> None:
    daemon = node.daemon
    by_operator = ctl(daemon, daemon.broker, "allow-remove", "--uas-id", "SURVEY-0001",
                      discover=False)
    assert "role_not_allowed" in by_operator.stdout + by_operator.stderr
    removed = ctl(daemon, daemon.broker, "allow-remove", "--uas-id", "SURVEY-0001",
                  key="admin.key", discover=False)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    after = time.monotonic()

    def not_allowed() -> bool:
        return any(t > after and (s.get("identity") or {}).get("uas_id") == "SURVEY-0001"
                   and not s["identity"]["allowed"] for t, s in node.states())

    deadline = time.monotonic() + 5
    while not not_allowed():
        assert time.monotonic() < deadline, "the survey drone is still allow-listed"
        time.sleep(0.2)
    assert daemon.status()["health"]["remoteid"]["allow_list"] == []
    assert (daemon.state / "remoteid-allow.json").exists()
