"""Effector tasks from a SAPIENT peer (`[sapient] effector_tasks = true`): over mutual TLS on
loopback into a real Effector on the fake relay board (tests/control/conftest.py), through the
same admission as a signed operator command, audited with the SAPIENT node as the issuer."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sapient_msg.bsi_flex_335_v2_0.range_bearing_pb2 import (
    LocationOrRangeBearing,
    RangeBearingCone,
)
from sapient_msg.bsi_flex_335_v2_0.sapient_message_pb2 import SapientMessage
from sapient_msg.bsi_flex_335_v2_0.task_ack_pb2 import TaskAck
from sapient_msg.bsi_flex_335_v2_0.task_pb2 import Task

from edgenode.config import Config, ConfigError, load_config
from edgenode.control.audit import export
from edgenode.health import Health
from edgenode.interop.sapient import SapientClient
from edgenode.interop.sapient.tasks import ENGAGE_REFUSED
from edgenode.link.payloads import load_schema
from edgenode.ulid import new_ulid
from tests.control.conftest import NODE, SITE, Rig, RigFactory, make_rig, wait_for
from tests.interop.sapient_peer import PEER_ID, SapientPeer, tls_peer
from tests.link.certs import Pki, make_pki

__all__ = ["make_rig"]  # the fixture, used by name

ISSUER = f"sapient:{PEER_ID}"
RELAY = {"backend": "fake", "drive_line": 1, "heartbeat_line": 2, "aux_line": 3,
         "key_test_line": 4, "key_operate_line": 5, "max_on_s": 60}


def sapient_config(port: int, pki: Pki, *, effector_tasks: bool = True) -> Config:
    """The SAPIENT client's config: mutual TLS with a pinned CA, the jammer enabled."""
    return Config.model_validate({
        "node": {"site": SITE, "id": NODE, "latitude_deg": 57.0, "longitude_deg": 11.9,
                 "altitude_m": 10.0, "mast_heading_deg": 0.0},
        "broker": {"url": "mqtt://127.0.0.1:1"}, "relay": RELAY, "effector": {"enabled": True},
        "sapient": {"host": "localhost", "port": port, "status_interval_s": 1,
                    "reconnect_min_s": 0.2, "tls": True, "ca_file": str(pki.ca),
                    "cert_file": str(pki.client_cert), "key_file": str(pki.client_key),
                    "effector_tasks": effector_tasks}})


class Linked:
    """An effector rig and a SAPIENT client wired as the daemon wires them, and the peer."""

    def __init__(self, rig: Rig, client: SapientClient, peer: SapientPeer,
                 gates: list[tuple[Any, ...]]):
        self.rig, self.client, self.peer = rig, client, peer
        self.gates = gates  # what the client handed the tracker's start gates, in order

    def task(self, request: str, parameter: str = "", *, control: int = Task.CONTROL_START,
             task_id: str | None = None) -> TaskAck:
        task_id = task_id or new_ulid()
        task = Task(task_id=task_id, control=control)
        if control == Task.CONTROL_START:
            task.command.CopyFrom(Task.Command(request=request, command_parameter=parameter))
        self.peer.send(SapientMessage(destination_id=self.client.node_id, task=task))
        acks = self.peer.wait("task_ack", timeout_s=10,
                              where=lambda m: m.task_ack.task_id == task_id)
        assert acks, f"no TaskAck for {request} {task_id}"
        return acks[0].message.task_ack

    def audit(self) -> list[dict[str, Any]]:
        assert self.rig.effector.flush()
        return list(export(self.rig.state_dir / "audit"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def link(make_rig: RigFactory, pki: Pki, tmp_path: Path) -> Iterator[Callable[..., Linked]]:
    made: list[tuple[SapientClient, SapientPeer]] = []

    def factory(*, effector_tasks: bool = True, **rig: Any) -> Linked:
        # A relay contact that lags the drive is not what these tests judge: on a loaded
        # machine the coil model's thread may lag more than the rig's 60 ms (a FAULT).
        effector_rig = make_rig(**{"aux_settle_ms": 500, **rig})
        peer = tls_peer(pki)
        gates: list[tuple[Any, ...]] = []
        client = SapientClient(sapient_config(peer.port, pki, effector_tasks=effector_tasks),
                               tmp_path / "sapient", Health(), version="test",
                               clock_synced=lambda: True,
                               effector=effector_rig.effector.handle_trusted,
                               regions=gates.append)
        made.append((client, peer))
        client.start()
        assert wait_for(lambda: client.registered, 10), peer.violations
        return Linked(effector_rig, client, peer, gates)

    yield factory
    for client, peer in made:
        client.stop()
        peer.close()


def accepted(ack: TaskAck) -> bool:
    return ack.task_status == TaskAck.TASK_STATUS_ACCEPTED


def engage_refused(node: Linked, reason: str) -> None:
    """A SAPIENT engage is REJECTED with a reason starting so (in its TaskAck and its audit
    record), and the relay never moves."""
    ack = node.task("Engage", "duration_s=5;bearing_deg=90")
    assert not accepted(ack)
    assert ack.reason[0].startswith(reason), list(ack.reason)
    time.sleep(0.1)
    assert not node.rig.drive_went_high()
    # The audit trail says the same as the TaskAck: a refusal, not an error.
    result = [r["data"] for r in node.audit() if r["kind"] == "result"][-1]
    assert (result["status"], result["reason"]) == ("rejected", ack.reason[0])


def test_an_engage_within_an_operators_arm_is_accepted_and_audited_with_the_sapient_issuer(
        link: Callable[..., Linked]) -> None:
    node = link()
    assert node.rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    ack = node.task("Engage", "duration_s=5;bearing_deg=90")
    assert accepted(ack), list(ack.reason)
    assert wait_for(node.rig.drive)
    assert node.rig.effector.state == "ENGAGED"
    records = node.audit()
    commands = [r["data"] for r in records if r["kind"] == "command" and "issuer" in r["data"]]
    assert [c["issuer"] for c in commands] == [ISSUER]
    assert commands[0]["envelope"]["key_id"] == ISSUER
    assert commands[0]["via"]["task_id"] == ack.task_id
    assert commands[0]["via"]["peer_certificate"] == "localhost"
    engaged = [r["data"] for r in records if r["kind"] == "state" and r["data"]["to"] == "ENGAGED"]
    assert engaged and engaged[0]["reason"].startswith(f"engaged by {ISSUER} for 5 s")
    # The operators see who engaged in the effector state on MQTT, within its schema.
    engagement = [s["engagement"] for s in node.rig.states if s["engagement"]][-1]
    assert engagement["by"] == ISSUER
    jsonschema.validate(engagement, load_schema("effector")["properties"]["engagement"]
                        ["oneOf"][0])
    assert node.peer.violations == []


def test_an_engage_while_safe_is_rejected_and_the_relay_never_moves(
        link: Callable[..., Linked]) -> None:
    node = link()
    engage_refused(node, "not_armed: state is SAFE; arm first")


def test_sapient_cannot_arm_the_effector(link: Callable[..., Linked]) -> None:
    node = link()
    ack = node.task("Arm", "ttl_s=30")
    assert not accepted(ack) and "not understood" in ack.reason[0]
    # Even handed to the effector directly, the peer's role may not arm.
    result = node.rig.effector.handle_trusted(ISSUER, "arm", {"ttl_s": 30}, {})
    assert result["status"] == "rejected"
    assert result["reason"].startswith("role_not_allowed: key 'sapient:")
    assert node.rig.effector.state == "SAFE"


def test_an_engage_with_the_key_at_test_is_rejected_and_the_relay_never_moves(
        link: Callable[..., Linked]) -> None:
    node = link(key="test")
    assert node.rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    engage_refused(node, "key_switch_not_operate: key switch at test")


def test_an_engage_over_the_duty_budget_is_rejected_and_the_relay_stays_off(
        link: Callable[..., Linked]) -> None:
    node = link(duty_max_on_s=1)
    rig = node.rig
    assert rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    assert rig.send("alice", "engage", {"duration_s": 1, "bearing_deg": 90})["status"] == "ok"
    assert wait_for(lambda: rig.effector.state == "ARMED", 5), rig.states[-1]  # it ran out
    edges = len(rig.drive_history())
    ack = node.task("Engage", "duration_s=5;bearing_deg=90")
    assert not accepted(ack)
    assert ack.reason[0].startswith("duty_budget_spent: "), list(ack.reason)
    time.sleep(0.1)
    assert len(rig.drive_history()) == edges and not rig.drive()


def test_an_engage_the_airspace_rules_refuse_is_rejected_with_their_reason(
        link: Callable[..., Linked]) -> None:
    seen: list[dict[str, Any]] = []

    def airspace(target: dict[str, Any], running: bool) -> str | None:
        seen.append(target)
        return "manned_aircraft: G-ABCD 900 m from the bearing's sector"

    node = link(hooks={"airspace": airspace})
    assert node.rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    ack = node.task("Engage", "duration_s=5;bearing_deg=90")
    assert not accepted(ack)
    assert list(ack.reason) == ["manned_aircraft: G-ABCD 900 m from the bearing's sector"]
    assert seen and seen[0]["bearing_deg"] == 90.0
    time.sleep(0.1)
    assert not node.rig.drive_went_high()


def test_disengage_stop_and_safe_from_sapient_drop_the_relay(
        link: Callable[..., Linked]) -> None:
    node = link()
    rig = node.rig
    assert rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    assert accepted(node.task("Engage", "duration_s=20;bearing_deg=90"))
    assert wait_for(rig.drive)
    assert accepted(node.task("Disengage"))
    assert wait_for(lambda: not rig.drive()) and rig.effector.state == "ARMED"
    # CONTROL_STOP of the engage task is a disengage too.
    engage = new_ulid()
    node.peer.send(SapientMessage(destination_id=node.client.node_id, task=Task(
        task_id=engage, control=Task.CONTROL_START, command=Task.Command(
            request="Engage", command_parameter="duration_s=20;bearing_deg=90"))))
    assert wait_for(rig.drive, 10)
    assert accepted(node.task("", control=Task.CONTROL_STOP, task_id=engage))
    assert wait_for(lambda: not rig.drive())
    # An operator's own engagement is stopped by a SAPIENT Safe as well: the safe direction.
    assert rig.send("bob", "engage", {"duration_s": 20, "bearing_deg": 90})["status"] == "ok"
    assert rig.drive()
    assert accepted(node.task("Safe"))
    assert wait_for(lambda: not rig.drive()) and rig.effector.state == "SAFE"


def test_with_the_default_config_an_engage_is_rejected_even_while_armed(
        link: Callable[..., Linked]) -> None:
    node = link(effector_tasks=False)
    assert node.rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    ack = node.task("Engage", "duration_s=5;bearing_deg=90")
    assert not accepted(ack) and list(ack.reason) == [ENGAGE_REFUSED]
    assert not accepted(node.task("Safe"))
    time.sleep(0.1)
    assert not node.rig.drive_went_high()
    assert node.rig.effector.state == "ARMED"  # nothing from SAPIENT reached it


# -- the config rules ------------------------------------------------------------------------
def write_config(path: Path, sapient: str, enabled: bool = True) -> Path:
    path.write_text(
        f'[node]\nsite = "{SITE}"\nid = "{NODE}"\nlatitude_deg = 57.0\nlongitude_deg = 11.9\n'
        'altitude_m = 10.0\nmast_heading_deg = 0.0\n[broker]\nurl = "mqtt://127.0.0.1:1"\n'
        '[relay]\n' + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in RELAY.items())
        + f"[effector]\nenabled = {str(enabled).lower()}\n"
        + '[sapient]\nhost = "127.0.0.1"\nport = 5020\neffector_tasks = true\n' + sapient)
    return path


@pytest.mark.parametrize("sapient, missing", [
    ("", "sapient.tls, sapient.ca_file, sapient.cert_file, sapient.key_file are not set"),
    ('tls = true\ncert_file = "c.pem"\nkey_file = "k.pem"\n', "sapient.ca_file is not set"),
    ('tls = true\nca_file = "ca.pem"\n', "sapient.cert_file, sapient.key_file are not set"),
    ('ca_file = "ca.pem"\ncert_file = "c.pem"\nkey_file = "k.pem"\n', "sapient.tls is not set"),
])
def test_effector_tasks_without_mutual_tls_is_a_config_error_naming_key_and_file(
        tmp_path: Path, sapient: str, missing: str) -> None:
    path = write_config(tmp_path / "node.toml", sapient)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    text = str(exc.value)
    assert text.startswith(f"{path}: sapient: ") and "effector_tasks = true needs mutual TLS" \
        in text and missing in text


def test_effector_tasks_without_the_effector_enabled_is_a_config_error(tmp_path: Path) -> None:
    full = 'tls = true\nca_file = "ca.pem"\ncert_file = "c.pem"\nkey_file = "k.pem"\n'
    with pytest.raises(ConfigError, match=r"sapient.effector_tasks = true with "
                       r"effector.enabled false"):
        load_config(write_config(tmp_path / "node.toml", full, enabled=False))
    assert load_config(write_config(tmp_path / "ok.toml", full)).sapient.effector_tasks


def test_under_the_two_person_rule_a_sapient_engage_is_rejected(
        link: Callable[..., Linked]) -> None:
    node = link(two_person=True)
    assert node.rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    engage_refused(node, "two_person_rule: ")


def test_a_sapient_engagement_ends_when_its_connection_is_lost(
        link: Callable[..., Linked]) -> None:
    node = link()
    rig = node.rig
    assert rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    assert accepted(node.task("Engage", "duration_s=20;bearing_deg=90"))
    assert wait_for(rig.drive)
    node.peer.close()  # the command system is gone: nobody left to stop it
    assert wait_for(lambda: not rig.drive(), 5)

    def disengages() -> list[dict]:
        return [r["data"] for r in node.audit() if r["kind"] == "command"
                and r["data"].get("envelope", {}).get("action") == "disengage"]

    # The drive drops first; the state change and the audit record follow a moment later.
    assert wait_for(lambda: rig.effector.state == "ARMED", 5), rig.effector.state
    assert wait_for(disengages, 5)
    assert disengages()[-1]["via"]["reason"] == "connection to the tasking system lost"



def test_over_mutual_tls_a_region_task_gates_where_the_tracker_starts_tracks(
        link: Callable[..., Linked]) -> None:
    node = link()
    ignore = Task.Region(type=Task.REGION_TYPE_IGNORE, region_id=new_ulid(),
                         region_name="flare stack", region_area=LocationOrRangeBearing(
                             range_bearing=RangeBearingCone(azimuth=200, horizontal_extent=10,
                                                            coordinate_system=1, datum=1)))
    task_id = new_ulid()
    node.peer.send(SapientMessage(destination_id=node.client.node_id, task=Task(
        task_id=task_id, control=Task.CONTROL_START, region=[ignore])))
    assert wait_for(lambda: node.gates, 10)
    assert len(node.gates[-1]) == 1
    assert accepted(node.task("", control=Task.CONTROL_STOP, task_id=task_id))
    assert wait_for(lambda: node.gates[-1] == (), 10)  # lifted
    node.peer.send(SapientMessage(destination_id=node.client.node_id, task=Task(
        task_id=new_ulid(), control=Task.CONTROL_START, region=[ignore])))
    assert wait_for(lambda: node.gates[-1] != (), 10)
    node.peer.close()  # the middleware is gone: its regions no longer gate anything
    assert wait_for(lambda: node.gates[-1] == (), 10)
