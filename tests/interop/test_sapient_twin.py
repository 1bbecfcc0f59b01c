"""The daemon on the twin (`edgenode run --sim one-drone-crossing --sapient 127.0.0.1:PORT`)
as a SAPIENT sensor module of a test peer that checks every message against the ICD.

One daemon for the whole module (the tests run in file order and build on each other): it
registers (after one refusal), reports status and the twin's drone, answers tasks, survives
bad input from the peer with its detection and MQTT link untouched, and says GOODBYE on stop.
"""

from __future__ import annotations

import itertools
import struct
import time
from collections.abc import Iterator

import pytest
from sapient_msg.bsi_flex_335_v2_0.range_bearing_pb2 import (
    LocationOrRangeBearing,
    RangeBearingCone,
)
from sapient_msg.bsi_flex_335_v2_0.registration_pb2 import Registration
from sapient_msg.bsi_flex_335_v2_0.sapient_message_pb2 import SapientMessage
from sapient_msg.bsi_flex_335_v2_0.status_report_pb2 import StatusReport
from sapient_msg.bsi_flex_335_v2_0.task_ack_pb2 import TaskAck
from sapient_msg.bsi_flex_335_v2_0.task_pb2 import Task

from edgenode.ulid import new_ulid
from tests.conftest import Mosquitto
from tests.interop.sapient_peer import ULID, SapientPeer
from tests.simdaemon import SimDaemon, radiating_changes

LONGITUDE, LATITUDE = 11.9, 57.0  # hardware/scenarios/one-drone-crossing.toml
STATUS_INTERVAL_S = 5.0  # the [sapient] default, declared in the Registration


@pytest.fixture(scope="module")
def peer() -> Iterator[SapientPeer]:
    peer = SapientPeer()
    peer.refuse = 1  # the first Registration is refused with an Error, as Apex does
    yield peer
    peer.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory, shared_broker: Mosquitto,
           peer: SapientPeer) -> Iterator[SimDaemon]:
    state = tmp_path_factory.mktemp("sapient") / "state"
    daemon = SimDaemon("one-drone-crossing", state, shared_broker, "--speed", "2",
                       "--sapient", f"127.0.0.1:{peer.port}")
    daemon.status()
    yield daemon
    daemon.stop()


def node_id(daemon: SimDaemon) -> str:
    return (daemon.state / "sapient-node-id").read_text().strip()


def send_task(peer: SapientPeer, daemon: SimDaemon, command: Task.Command | None = None, *,
              destination: str | None = None, name: str = "") -> str:
    task = Task(task_id=new_ulid(), control=Task.CONTROL_START, task_name=name)
    if command is not None:
        task.command.CopyFrom(command)
    peer.send(SapientMessage(destination_id=destination or node_id(daemon), task=task))
    return task.task_id


def ack_of(peer: SapientPeer, task_id: str, timeout_s: float = 5) -> TaskAck | None:
    found = peer.wait("task_ack", where=lambda m: m.task_ack.task_id == task_id,
                      timeout_s=timeout_s)
    return found[0].message.task_ack if found else None


def still_detecting_and_linked(daemon: SimDaemon) -> None:
    """The radar keeps being decoded and the MQTT link stays up."""
    before = daemon.status()
    time.sleep(1.0)
    after = daemon.status()
    assert max(n for n, _ in after["radar_frames"]) > max(n for n, _ in before["radar_frames"])
    assert after["link"]["connected"], after["link"]
    assert after["stages"]["detect"]["state"] == "ok"


def test_node_registers_after_a_refusal_and_is_accepted(daemon: SimDaemon,
                                                        peer: SapientPeer) -> None:
    statuses = peer.wait("status_report", timeout_s=20)
    assert statuses, f"no StatusReport; log:\n{daemon.log_text()}"
    registrations = peer.of("registration")
    assert len(registrations) >= 2, "the refused Registration was not sent again"
    assert "Registration refused (Error)" in daemon.log_text()
    sent = registrations[-1].message
    assert sent.node_id == node_id(daemon)
    reg = sent.registration
    assert reg.icd_version == "BSI Flex 335 v2.0"
    types = {d.node_type for d in reg.node_definition}
    # The twin's node has the radar, the array and an enabled jammer.
    assert types == {Registration.NODE_TYPE_RADAR, Registration.NODE_TYPE_ACOUSTIC,
                     Registration.NODE_TYPE_JAMMER}
    assert reg.status_definition.status_interval.value == STATUS_INTERVAL_S
    assert reg.status_definition.status_interval.units == Registration.TIME_UNITS_SECONDS
    detection = reg.mode_definition[0].detection_definition[0]
    classes = {c.type: c for c in detection.detection_class_definition[0].class_definition}
    assert {"UAV", "Bird", "Manned Aircraft", "Unknown"} <= set(classes)
    assert [s.type for s in classes["UAV"].sub_class] == ["Rotary Wing"]
    commands = {c.type for c in reg.mode_definition[0].task.command}
    assert Registration.COMMAND_TYPE_DETECTION_REPORT_RATE in commands


def test_detection_reports_for_the_twins_drone(daemon: SimDaemon, peer: SapientPeer) -> None:
    uav = peer.wait("detection_report", timeout_s=40, where=lambda m: any(
        c.type == "UAV" and c.confidence >= 0.5 for c in m.detection_report.classification))
    assert uav, f"no UAV report; log:\n{daemon.log_text()}"
    report = uav[-1].message.detection_report
    assert ULID.match(report.object_id) and ULID.match(report.report_id)
    if report.HasField("location"):  # radar-ranged: x is longitude, y latitude
        assert abs(report.location.x - LONGITUDE) < 0.01
        assert abs(report.location.y - LATITUDE) < 0.01
        assert report.location.x_error > 0
    else:
        assert report.range_bearing.azimuth_error > 0
    # Stable ids: the drone's later reports keep its object id.
    same = peer.wait("detection_report", 3, timeout_s=30,
                     where=lambda m: m.detection_report.object_id == report.object_id)
    assert len(same) >= 3, "object ids are not stable per track"


def test_status_reports_at_the_declared_interval(daemon: SimDaemon, peer: SapientPeer) -> None:
    connection = peer.of("registration")[-1].connection
    found = peer.wait("status_report", 3, timeout_s=3 * STATUS_INTERVAL_S + 2,
                      connection=connection)
    assert len(found) >= 3
    gaps = [b.arrival - a.arrival for a, b in itertools.pairwise(found)]
    assert all(abs(g - STATUS_INTERVAL_S) < 0.6 for g in gaps), gaps
    first = found[0].message.status_report
    assert first.info == StatusReport.INFO_NEW
    # From the node's health: the twin's audio can lag at start, and then says so.
    for found_status in found:
        report = found_status.message.status_report
        faults = [s.status_value for s in report.status
                  if s.status_type == StatusReport.STATUS_TYPE_INTERNAL_FAULT]
        assert (report.system == StatusReport.SYSTEM_OK) == (not faults), report
    assert (first.node_location.x, first.node_location.y) == (LONGITUDE, LATITUDE)


def test_sensor_task_accepted_and_effector_task_rejected(daemon: SimDaemon,
                                                         peer: SapientPeer) -> None:
    rate = send_task(peer, daemon, Task.Command(
        detection_report_rate=Task.DISCRETE_THRESHOLD_HIGH))
    ack = ack_of(peer, rate)
    assert ack is not None and ack.task_status == TaskAck.TASK_STATUS_ACCEPTED, ack
    engage = send_task(peer, daemon, Task.Command(request="Engage"), name="defeat drone")
    ack = ack_of(peer, engage)
    assert ack is not None and ack.task_status == TaskAck.TASK_STATUS_REJECTED
    assert list(ack.reason) == ["engage requires a signed operator command"]
    assert daemon.status()["effector"] == "SAFE"
    assert not any(on for _, on in radiating_changes(daemon))


def test_a_region_task_from_an_unauthenticated_peer_filters_reports_but_never_the_tracker(
        daemon: SimDaemon, peer: SapientPeer) -> None:
    # Plain TCP: nobody vouches for this peer, so it must not blind the tracker to an area
    # (the gates themselves: tests/detect/test_regions.py and, over mutual TLS,
    # tests/interop/test_sapient_effector.py).
    ignore = Task.Region(type=Task.REGION_TYPE_IGNORE, region_id=new_ulid(),
                         region_name="flare stack", region_area=LocationOrRangeBearing(
                             range_bearing=RangeBearingCone(azimuth=200, horizontal_extent=10,
                                                            coordinate_system=1, datum=1)))
    task = Task(task_id=new_ulid(), control=Task.CONTROL_START, region=[ignore])
    peer.send(SapientMessage(destination_id=node_id(daemon), task=task))
    ack = ack_of(peer, task.task_id)
    assert ack is not None and ack.task_status == TaskAck.TASK_STATUS_ACCEPTED, ack
    assert wait_for_log(daemon, "gating where the tracker starts tracks needs mutual TLS")
    assert "detect: new tracks start only where" not in daemon.log_text()
    stop = Task(task_id=task.task_id, control=Task.CONTROL_STOP)
    peer.send(SapientMessage(destination_id=node_id(daemon), task=stop))


def wait_for_log(daemon: SimDaemon, text: str, timeout_s: float = 5) -> bool:
    deadline = time.monotonic() + timeout_s
    while text not in daemon.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    return text in daemon.log_text()


def test_a_task_for_another_node_is_ignored_with_a_reason(daemon: SimDaemon,
                                                          peer: SapientPeer) -> None:
    connections = peer.connections
    other = "0e6b1f3a-2c4d-4e5f-8a9b-0c1d2e3f4a5b"
    task_id = send_task(peer, daemon, Task.Command(request="Status"), destination=other)
    assert ack_of(peer, task_id, timeout_s=1.5) is None
    assert f"ignoring a task for node {other}" in daemon.log_text()
    assert peer.connections == connections


def test_an_unknown_message_type_is_logged_and_the_connection_kept(daemon: SimDaemon,
                                                                   peer: SapientPeer) -> None:
    connections = peer.connections
    known = SapientMessage(node_id="3f2b8c1e-5d4a-4b7e-9c2d-1a0e8f6b4c3d")
    known.timestamp.FromNanoseconds(time.time_ns())
    # Field 14 (length-delimited): a content type this version of the ICD does not have.
    payload = known.SerializeToString() + bytes([14 << 3 | 2, 3]) + b"new"
    peer.send_raw(struct.pack("<I", len(payload)) + payload)
    task_id = send_task(peer, daemon, Task.Command(request="Status"))
    assert ack_of(peer, task_id) is not None, "the connection did not stay usable"
    assert "ignoring a message of unknown type" in daemon.log_text()
    assert peer.connections == connections


@pytest.mark.parametrize("name, data, reason", [
    ("garbage", b"\x0c\x00\x00\x00\xff\xff\xff\xffgarbage!", "is not a SapientMessage"),
    ("2 GB length", struct.pack("<I", 2**31) + b"\x00" * 16, "exceeds max_message_bytes"),
    ("truncated", None, "is not a SapientMessage"),
])
def test_an_unusable_stream_resets_the_connection_and_nothing_else(
        daemon: SimDaemon, peer: SapientPeer, name: str, data: bytes | None,
        reason: str) -> None:
    if data is None:
        whole = SapientMessage(destination_id=node_id(daemon), task=Task(
            task_id=new_ulid(), control=Task.CONTROL_START, task_name="a long enough name",
            command=Task.Command(request="Status"))).SerializeToString()
        cut = whole[:len(whole) - 5]
        data = struct.pack("<I", len(cut)) + cut
    connections = peer.connections
    resets = daemon.log_text().count("resetting the connection")
    peer.send_raw(data)
    assert peer.wait_connection(connections + 1, timeout_s=10), f"{name}: no reconnect"
    registered = peer.wait("status_report", connection=connections + 1, timeout_s=10)
    assert registered, f"{name}: not registered again"
    log = daemon.log_text()
    assert log.count("resetting the connection") > resets
    assert reason in log.split("resetting the connection")[-1].splitlines()[0], log[-1500:]
    still_detecting_and_linked(daemon)


def test_every_message_met_the_icd(daemon: SimDaemon, peer: SapientPeer) -> None:
    assert peer.received
    assert peer.violations == []


def test_goodbye_on_a_clean_stop(daemon: SimDaemon, peer: SapientPeer) -> None:
    assert daemon.stop() == 0
    last = peer.wait("status_report", timeout_s=5, where=lambda m: m.status_report.system
                     == StatusReport.SYSTEM_GOODBYE)
    assert last, "no GOODBYE"
    assert peer.violations == []
