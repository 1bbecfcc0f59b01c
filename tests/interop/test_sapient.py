"""The SAPIENT room in-process: framing, task decisions, the node id, the config rules, and the
client against the test peer on loopback (no daemon, seconds in all)."""

from __future__ import annotations

import itertools
import logging
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sapient_msg.bsi_flex_335_v2_0.alert_ack_pb2 import AlertAck
from sapient_msg.bsi_flex_335_v2_0.alert_pb2 import Alert
from sapient_msg.bsi_flex_335_v2_0.location_pb2 import (
    LOCATION_COORDINATE_SYSTEM_LAT_LNG_DEG_M,
    LOCATION_DATUM_WGS84_E,
    Location,
    LocationList,
)
from sapient_msg.bsi_flex_335_v2_0.range_bearing_pb2 import (
    LocationOrRangeBearing,
    RangeBearingCone,
)
from sapient_msg.bsi_flex_335_v2_0.sapient_message_pb2 import SapientMessage
from sapient_msg.bsi_flex_335_v2_0.status_report_pb2 import StatusReport
from sapient_msg.bsi_flex_335_v2_0.task_ack_pb2 import TaskAck
from sapient_msg.bsi_flex_335_v2_0.task_pb2 import Task

from edgenode.config import Config
from edgenode.health import Health
from edgenode.interop.sapient import SapientClient
from edgenode.interop.sapient.framing import FrameReader, FramingError, decode_payload
from edgenode.interop.sapient.identity import load_node_id
from edgenode.interop.sapient.messages import system_state
from edgenode.interop.sapient.tasks import ENGAGE_REFUSED, Settings, decide
from edgenode.ulid import new_ulid
from tests.interop.sapient_peer import UUID4, SapientPeer, tls_peer
from tests.link.certs import make_pki

NODE = {"site": "s", "id": "n1", "latitude_deg": 57.0, "longitude_deg": 11.9,
        "altitude_m": 10.0, "mast_heading_deg": 0.0}
RELAY = {"backend": "fake", "drive_line": 1, "heartbeat_line": 2, "aux_line": 3,
         "key_test_line": 4, "key_operate_line": 5, "max_on_s": 60}


def config(**sapient: Any) -> Config:
    return Config.model_validate({
        "node": NODE, "broker": {"url": "mqtt://127.0.0.1:1"}, "relay": RELAY,
        "acoustic": {"backend": "fake", "device": "x", "geometry": "uma16", "channels": 16},
        "sapient": {"host": "127.0.0.1", "port": 1, "status_interval_s": 1,
                    "reconnect_min_s": 0.2} | sapient})


def event(kind: str = "new", oid: str | None = None, *, label: str = "drone",
          confidence: float = 0.9, azimuth: float = 10.0,
          location: tuple[float, float] | None = None) -> dict[str, Any]:
    state = {"status": "confirmed", "azimuth_deg": {"value": azimuth, "error": 2.0},
             "range_m": None, "elevation_deg": None, "location": None,
             "velocity_enu_mps": None, "sensors": ["acoustic"], "acoustic": None,
             "classification": [{"type": label, "confidence": confidence},
                                {"type": "unknown", "confidence": 1 - confidence}]}
    if location is not None:
        state["location"] = {"latitude_deg": location[1], "longitude_deg": location[0],
                             "altitude_m": 20.0, "error_m": 3.0}
    return {"type": kind, "object_id": oid or new_ulid(), "before": None, "after": state}


# -- framing ---------------------------------------------------------------------------------
def frame(message: SapientMessage) -> bytes:
    payload = message.SerializeToString()
    return struct.pack("<I", len(payload)) + payload


def test_frames_split_anywhere_are_put_back_together() -> None:
    messages = [SapientMessage(node_id=f"n{i}") for i in range(3)]
    stream = b"".join(frame(m) for m in messages)
    reader = FrameReader(4096)
    payloads = []
    for i in range(0, len(stream), 3):
        payloads += reader.feed(stream[i:i + 3])
    assert [decode_payload(p).node_id for p in payloads] == ["n0", "n1", "n2"]
    assert reader.pending == 0


def test_a_2gb_length_prefix_is_refused_before_any_buffer_grows() -> None:
    reader = FrameReader(1_048_576)
    with pytest.raises(FramingError, match=r"length prefix 2147483648 bytes .* exceeds"):
        reader.feed(struct.pack("<I", 2**31) + b"\x00" * 10)


@pytest.mark.parametrize("payload", [b"\xff\xff\xff\xffgarbage!",
                                     SapientMessage(node_id="x" * 40).SerializeToString()[:20]])
def test_garbage_or_a_truncated_message_is_not_a_sapient_message(payload: bytes) -> None:
    with pytest.raises(FramingError, match="is not a SapientMessage"):
        decode_payload(payload)


# -- tasks ---------------------------------------------------------------------------------
def task(command: Task.Command | None = None, **fields: Any) -> Task:
    out = Task(task_id=new_ulid(), control=Task.CONTROL_START, **fields)
    if command is not None:
        out.command.CopyFrom(command)
    return out


@pytest.mark.parametrize("command, name", [
    (Task.Command(request="Engage"), ""),
    (Task.Command(request="start jamming"), ""),
    (Task.Command(mode_change="Engage"), ""),
    (Task.Command(request="Status"), "defeat the drone"),
])
def test_effector_tasks_are_rejected_with_the_reason(command: Task.Command, name: str) -> None:
    decision = decide(task(command, task_name=name), Settings())
    assert decision.status == TaskAck.TASK_STATUS_REJECTED
    assert decision.reasons == [ENGAGE_REFUSED]


def test_sensor_tasks_change_the_reports_and_stop_reverts_them() -> None:
    rate = task(Task.Command(detection_report_rate=Task.DISCRETE_THRESHOLD_LOW))
    decision = decide(rate, Settings())
    assert decision.status == TaskAck.TASK_STATUS_ACCEPTED
    assert decision.settings.report_interval_s == 2.0
    threshold = decide(task(Task.Command(
        classification_threshold=Task.DISCRETE_THRESHOLD_HIGH)), decision.settings)
    settings = threshold.settings
    assert (settings.report_interval_s, settings.class_threshold) == (2.0, 0.7)
    assert not settings.admits(event(confidence=0.6)["after"])
    assert settings.admits(event(confidence=0.8)["after"])
    stop = Task(task_id=settings.task_id, control=Task.CONTROL_STOP)
    assert decide(stop, settings).settings == Settings()


@pytest.mark.parametrize("command, expected", [
    (Task.Command(request="Engage", command_parameter="duration_s=5;bearing_deg=90"),
     ("engage", {"duration_s": 5.0, "bearing_deg": 90.0})),
    (Task.Command(request="engage", command_parameter=f"duration_s=3, track={'0' * 26}"),
     ("engage", {"duration_s": 3.0, "track": "0" * 26})),
    (Task.Command(request="Disengage", command_parameter="whatever"), ("disengage", {})),
    (Task.Command(request="Safe"), ("safe", {})),
    (Task.Command(request="Engage", command_parameter="bearing_deg=90"), "command_parameter"),
    (Task.Command(request="Engage", command_parameter="duration_s=nan"), "not a finite"),
    (Task.Command(request="Engage", command_parameter="duration_s=5;power=max"),
     "command_parameter"),
    (Task.Command(request="start jamming"), "effector task not understood"),
    (Task.Command(mode_change="Engage"), "effector task not understood"),
])
def test_effector_tasks_read_with_effector_tasks_on(command: Task.Command,
                                                    expected: Any) -> None:
    decision = decide(task(command), Settings(), effector_tasks=True)
    if isinstance(expected, str):
        assert decision.status == TaskAck.TASK_STATUS_REJECTED
        assert expected in decision.reasons[0]
        assert decision.effector is None
    else:
        assert decision.effector is not None
        assert (decision.effector.action, decision.effector.params) == expected


def test_stop_of_the_accepted_engage_task_is_a_disengage() -> None:
    engage = new_ulid()
    stop = Task(task_id=engage, control=Task.CONTROL_STOP)
    decision = decide(stop, Settings(), effector_tasks=True, engage_task=engage)
    assert decision.effector is not None and decision.effector.action == "disengage"
    assert decide(stop, Settings(), effector_tasks=False, engage_task=engage).effector is None


def test_look_at_and_the_detection_threshold_are_rejected_with_reasons() -> None:
    look = decide(task(Task.Command(look_at=LocationOrRangeBearing())), Settings())
    fixed = decide(task(Task.Command(detection_threshold=Task.DISCRETE_THRESHOLD_LOW)),
                   Settings())
    for decision in (look, fixed):
        assert decision.status == TaskAck.TASK_STATUS_REJECTED and decision.reasons


def square(lon: float, lat: float, half: float) -> LocationOrRangeBearing:
    corners = [(lon - half, lat - half), (lon + half, lat - half), (lon + half, lat + half),
               (lon - half, lat + half)]
    return LocationOrRangeBearing(location_list=LocationList(locations=[
        Location(x=x, y=y, coordinate_system=LOCATION_COORDINATE_SYSTEM_LAT_LNG_DEG_M,
                 datum=LOCATION_DATUM_WGS84_E) for x, y in corners]))


def test_areas_of_interest_and_ignore_areas_filter_the_reports() -> None:
    interest = Task.Region(type=Task.REGION_TYPE_AREA_OF_INTEREST, region_id=new_ulid(),
                           region_name="site", region_area=square(11.9, 57.0, 0.01))
    ignore = Task.Region(type=Task.REGION_TYPE_IGNORE, region_id=new_ulid(),
                         region_name="flare stack", region_area=LocationOrRangeBearing(
                             range_bearing=RangeBearingCone(azimuth=90, horizontal_extent=20,
                                                            coordinate_system=1, datum=1)))
    settings = decide(task(region=[interest, ignore]), Settings()).settings
    assert settings.admits(event(location=(11.905, 57.002))["after"])
    assert not settings.admits(event(location=(11.95, 57.0))["after"])  # outside the site
    assert not settings.admits(event(azimuth=95.0)["after"])  # in the ignored sector
    # A bearing-only track cannot be placed against the polygon: it is reported.
    assert settings.admits(event(azimuth=10.0)["after"])


# -- the node id and the config ------------------------------------------------------------
def test_the_node_id_is_a_lowercase_uuid4_kept_in_the_state_dir(tmp_path: Path) -> None:
    first = load_node_id(tmp_path)
    assert UUID4.match(first)
    assert load_node_id(tmp_path) == first
    (tmp_path / "sapient-node-id").write_text("NOT-A-UUID\n")
    assert UUID4.match(load_node_id(tmp_path)) and load_node_id(tmp_path) != first


# -- the client against the peer -------------------------------------------------------------
@pytest.fixture
def peer() -> Iterator[SapientPeer]:
    peer = SapientPeer()
    yield peer
    peer.close()


def started(peer: SapientPeer, tmp_path: Path, clock: list[bool] | None = None,
            ) -> tuple[SapientClient, Health]:
    health = Health()
    flag = clock if clock is not None else [True]
    client = SapientClient(config(port=peer.port), tmp_path, health, version="test",
                           clock_synced=lambda: flag[0])
    client.start()
    return client, health


def wait_until(predicate: Any, timeout_s: float = 5) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return bool(predicate())


def test_no_connection_while_the_clock_is_not_synchronised(peer: SapientPeer,
                                                           tmp_path: Path) -> None:
    clock = [False]
    client, health = started(peer, tmp_path, clock)
    try:
        assert wait_until(lambda: health.snapshot()["sapient"]["state"] == "degraded")
        assert "clock not synchronised" in health.snapshot()["sapient"]["reason"]
        time.sleep(0.5)
        assert peer.connections == 0
        clock[0] = True
        assert peer.wait("status_report", timeout_s=5)
    finally:
        client.stop()


def test_reports_while_not_registered_are_dropped_and_counted(peer: SapientPeer,
                                                              tmp_path: Path) -> None:
    peer.close()  # nobody listens
    client, _ = started(peer, tmp_path)
    try:
        for _ in range(3):
            client.publish_event(event())
        assert client.snapshot()["reports_dropped_disconnected"] == 3
        assert client.snapshot()["registered"] == 0
    finally:
        client.stop()


def test_two_reports_of_one_object_share_a_timestamp_or_are_80_ms_apart(
        peer: SapientPeer, tmp_path: Path) -> None:
    client, _ = started(peer, tmp_path)
    try:
        assert wait_until(lambda: client.registered)
        oid = new_ulid()
        for i in range(6):
            client.publish_event(event("new" if i == 0 else "update", oid, azimuth=10.0 + i))
            time.sleep(0.03)
        reports = peer.wait("detection_report", 6, timeout_s=5)
        assert len(reports) == 6
        stamps = [r.message.timestamp.ToNanoseconds() / 1e9 for r in reports]
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        assert all(g == 0 or g >= 0.08 for g in gaps), gaps
        assert peer.violations == []
    finally:
        client.stop()


def test_objects_whose_end_was_lost_while_disconnected_are_forgotten(
        peer: SapientPeer, tmp_path: Path) -> None:
    """What the client keeps per reported object is bounded by the live objects: tracks
    whose end report was lost with the connection are not kept for the life of the node."""
    client, _ = started(peer, tmp_path)
    try:
        assert wait_until(lambda: client.registered)
        oids = [new_ulid() for _ in range(5)]
        for oid in oids:
            client.publish_event(event("new", oid))
        assert peer.wait("detection_report", 5, timeout_s=5)
        assert wait_until(lambda: client.snapshot()["objects"] == 5)
        registrations = len(peer.of("registration"))
        peer._conn.close()  # the peer goes; the tracks end while the node is away
        assert wait_until(lambda: not client.registered)
        for oid in oids:
            client.publish_event(event("end", oid))
        assert wait_until(lambda: len(peer.of("registration")) > registrations)
        assert wait_until(lambda: client.registered)
        assert wait_until(lambda: client.snapshot()["objects"] == 0)
        end_without_position = new_ulid()
        client.publish_event(event("new", end_without_position))
        assert wait_until(lambda: client.snapshot()["objects"] == 1)
        gone = event("end", end_without_position)  # its last state without a bearing
        gone["after"] = {k: v for k, v in gone["after"].items() if k != "azimuth_deg"}
        client.publish_event(gone)
        assert wait_until(lambda: client.snapshot()["objects"] == 0)
    finally:
        client.stop()


def test_a_peer_closing_mid_frame_is_logged_as_a_truncated_message(
        peer: SapientPeer, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    client, _ = started(peer, tmp_path)
    try:
        assert wait_until(lambda: client.registered)
        with caplog.at_level(logging.WARNING, logger="edgenode.interop.sapient"):
            peer.send_raw(struct.pack("<I", 100) + b"\x0a\x05hello")
            time.sleep(0.3)
            peer._conn.close()
            assert peer.wait_connection(2, timeout_s=5)
        assert "in the middle of a frame (11 bytes of it received)" in caplog.text
        assert peer.wait("status_report", connection=2, timeout_s=5)
    finally:
        client.stop()


def test_a_negative_registration_ack_is_followed_by_a_new_registration(
        peer: SapientPeer, tmp_path: Path) -> None:
    peer.refuse, peer.refuse_with = 1, "ack"
    client, health = started(peer, tmp_path)
    try:
        assert peer.wait("status_report", timeout_s=5)
        assert len(peer.of("registration")) == 2
        assert client.snapshot()["registrations_refused"] == 1
        assert health.snapshot()["sapient"]["state"] == "ok"
    finally:
        client.stop()


def test_a_confirmed_drone_raises_an_alert_that_is_acknowledged_and_cleared(
        peer: SapientPeer, tmp_path: Path) -> None:
    client, _ = started(peer, tmp_path)
    try:
        assert wait_until(lambda: client.registered)
        oid = new_ulid()
        client.publish_event(event("new", oid))
        raised = peer.wait("alert", timeout_s=5)
        assert raised, "no alert for a confirmed drone"
        alert = raised[0].message.alert
        assert alert.status == Alert.ALERT_STATUS_ACTIVE
        assert [d.object_id for d in alert.associated_detection] == [oid]
        peer.send(SapientMessage(destination_id=client.node_id, alert_ack=AlertAck(
            alert_id=alert.alert_id, alert_ack_status=AlertAck.ALERT_ACK_STATUS_ACCEPTED)))
        assert wait_until(lambda: client.snapshot().get("alert_acks") == 1)
        time.sleep(0.1)
        client.publish_event(event("end", oid))
        cleared = peer.wait("alert", 2, timeout_s=5)
        assert cleared[-1].message.alert.alert_id == alert.alert_id
        assert cleared[-1].message.alert.status == Alert.ALERT_STATUS_CLEAR
        assert peer.violations == []
    finally:
        client.stop()


def test_mutual_tls_registers_and_a_wrong_ca_is_refused_with_a_reason(tmp_path: Path) -> None:
    pki, stranger = make_pki(tmp_path / "pki"), make_pki(tmp_path / "other", "other")
    peer = tls_peer(pki)
    clients = []
    try:
        for ca, name in ((pki.ca, "good"), (stranger.ca, "bad")):
            health = Health()
            client = SapientClient(
                config(port=peer.port, tls=True, ca_file=str(ca),
                       cert_file=str(pki.client_cert), key_file=str(pki.client_key)),
                tmp_path / name, health, version="test", clock_synced=lambda: True)
            clients.append(client)
            client.start()
            if name == "good":
                assert wait_until(lambda c=client: c.registered), peer.violations
            else:
                assert wait_until(lambda h=health: "certificate verify failed"
                                  in h.snapshot()["sapient"]["reason"])
                assert not client.registered
    finally:
        for client in clients:
            client.stop()
        peer.close()


def test_only_the_sapient_room_imports_the_bindings() -> None:
    from tests.importgraph import imports
    from tests.test_architecture import PACKAGES, ROOT

    outside = [f"{i.module}:{i.line} imports {i.name}" for i in imports(ROOT, PACKAGES)
               if i.name.startswith("sapient_msg")
               and not i.module.startswith("edgenode.interop.sapient")]
    assert outside == []


def test_enum_values_this_icd_does_not_define_are_rejected_not_raised() -> None:
    region = Task.Region(type=99, region_id=new_ulid(), region_name="odd",
                         region_area=square(11.9, 57.0, 0.01))
    for odd in (task(region=[region]), Task(task_id=new_ulid(), control=42)):
        decision = decide(odd, Settings())
        assert decision.status == TaskAck.TASK_STATUS_REJECTED
        assert "unknown value" in decision.reasons[0]


def test_status_is_error_for_a_failed_part_and_warning_for_a_failed_selftest_check() -> None:
    stages = {"radar": {"state": "ok", "reason": ""},
              "acoustic": {"state": "failed", "reason": "no samples for 2.5 s"},
              "sapient": {"state": "degraded", "reason": "connecting"}}
    system, statuses = system_state(stages)
    assert system == StatusReport.SYSTEM_ERROR
    assert [s.status_value for s in statuses] == ["acoustic: failed (no samples for 2.5 s)"]
    stages["acoustic"] = {"state": "ok", "reason": ""}
    # The self-test's report (docs/selftest.md, report_version 2): WARN and FAIL count.
    selftest = {"ok": True, "checks": [
        {"name": "compass.heading", "result": "WARN", "hint": "heading 40 deg off the config"},
        {"name": "relay.inputs", "result": "PASS", "hint": ""},
        {"name": "radar.config", "result": "SKIP", "hint": "no chirp upload configured"}]}
    system, statuses = system_state(stages, selftest)
    assert system == StatusReport.SYSTEM_WARNING
    assert [(s.status_level, s.status_value) for s in statuses] == [
        (StatusReport.STATUS_LEVEL_WARNING_STATUS,
         "selftest compass.heading: WARN (heading 40 deg off the config)")]
    assert system_state(stages) == (StatusReport.SYSTEM_OK, [])


def test_sapient_option_goes_with_sim_and_names_host_and_port() -> None:
    from edgenode.cli.main import build_parser, sapient_section

    assert sapient_section("127.0.0.1:5020") == {"host": "127.0.0.1", "port": 5020}
    assert sapient_section("[::1]:5020") == {"host": "::1", "port": 5020}
    with pytest.raises(ValueError, match="expected HOST:PORT"):
        sapient_section("127.0.0.1")
    args = build_parser().parse_args(["run", "--sapient", "127.0.0.1:5020", "--config",
                                      "/nonexistent.toml"])
    assert args.func(args) == 2


def test_a_new_registration_drops_the_task_the_peer_may_have_forgotten(
        peer: SapientPeer, tmp_path: Path) -> None:
    client, _ = started(peer, tmp_path)
    try:
        assert wait_until(lambda: client.registered)
        peer.send(SapientMessage(destination_id=client.node_id, task=task(
            Task.Command(classification_threshold=Task.DISCRETE_THRESHOLD_HIGH))))
        assert peer.wait("task_ack", timeout_s=5)
        assert client.settings.class_threshold == 0.7
        peer._conn.close()  # the middleware restarts
        assert peer.wait("status_report", connection=2, timeout_s=5)
        assert client.settings == Settings()
        client.publish_event(event(confidence=0.6))  # below the forgotten threshold
        assert peer.wait("detection_report", connection=2, timeout_s=5)
    finally:
        client.stop()


def test_task_regions_from_a_peer_nobody_authenticated_never_reach_the_tracker(
        peer: SapientPeer, tmp_path: Path) -> None:
    # Plain TCP: the regions filter the reports only (mutual TLS: test_sapient_effector.py).
    handed: list[tuple[Any, ...]] = []
    client = SapientClient(config(port=peer.port), tmp_path, Health(), version="test",
                           clock_synced=lambda: True, regions=handed.append)
    client.start()
    try:
        assert wait_until(lambda: client.registered)
        ignore = Task.Region(type=Task.REGION_TYPE_IGNORE, region_id=new_ulid(),
                             region_name="flare stack", region_area=LocationOrRangeBearing(
                                 range_bearing=RangeBearingCone(
                                     azimuth=90, horizontal_extent=20, coordinate_system=1,
                                     datum=1)))
        sent = task(region=[ignore])
        peer.send(SapientMessage(destination_id=client.node_id, task=sent))
        assert peer.wait("task_ack", where=lambda m: m.task_ack.task_id == sent.task_id)
        assert client.settings.regions  # the reports' filter has it
        assert handed == []
    finally:
        client.stop()
