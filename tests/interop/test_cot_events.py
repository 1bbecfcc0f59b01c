"""Track states as CoT events: types, points, bearing lines, stale times, protobuf, and the
Remote ID pilot's marker."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from takproto import parse_proto

from edgenode.interop.cot.events import (
    CotEvent,
    NodeInfo,
    node_marker,
    pilot_marker,
    track_event,
)
from tests.interop.cotschema import validate, when

NODE = NodeInfo("north-field", "mast-3", 57.0, 11.9, 12.0, 30.0)
NOW = 1_800_000_000.25


def state(cls: str = "drone", *, located: bool = True, **extra) -> dict:
    s = {"object_id": "01J9ZT3W6D8K4M2N5P7Q9R1S3T", "status": "confirmed",
         "azimuth_deg": {"value": 123.4, "error": 2.5}, "elevation_deg": None,
         "classification": [{"type": cls, "confidence": 0.82}, {"type": "bird",
                                                                  "confidence": 0.1}],
         "sensors": ["radar", "acoustic"], "location": None, "velocity_enu_mps": None}
    if located:
        s["location"] = {"datum": "WGS84", "latitude_deg": 57.0012345, "longitude_deg": 11.9023456,
                         "altitude_m": 45.5, "error_m": 7.25}
        s["velocity_enu_mps"] = {"east": 10.0, "north": 0.0, "up": 0.5}
    return s | extra


def parse(cot: CotEvent | None) -> ET.Element:
    assert cot is not None
    event = ET.fromstring(cot.xml())
    validate(event)
    return event


def test_a_located_drone_is_a_uav_at_its_position_with_its_uncertainty_and_course():
    event = parse(track_event(state(), NODE, NOW, NOW + 15))
    assert event.get("type") == "a-u-A-M-H-Q"
    assert event.get("how") == "m-f"
    assert event.get("uid") == "edgenode-north-field-mast-3-01J9ZT3W6D8K4M2N5P7Q9R1S3T"
    point = event.find("point")
    assert float(point.get("lat")) == pytest.approx(57.0012345, abs=1e-7)
    assert float(point.get("lon")) == pytest.approx(11.9023456, abs=1e-7)
    assert float(point.get("hae")) == pytest.approx(45.5)
    assert float(point.get("ce")) == pytest.approx(7.25, abs=0.05)
    track = event.find("detail/track")
    assert float(track.get("course")) == pytest.approx(90.0)
    assert float(track.get("speed")) == pytest.approx(10.0)
    assert when(event.get("stale")) - when(event.get("start")) == pytest.approx(15.0, abs=0.002)
    assert "drone 82%" in event.find("detail/remarks").text
    assert event.find("detail/link").get("uid") == "edgenode-north-field-mast-3"


def test_a_bearing_only_track_is_a_line_from_the_mast_not_an_invented_point():
    event = parse(track_event(state(located=False), NODE, NOW, NOW + 15))
    assert event.get("type") == "u-rb-a"
    point = event.find("point")
    assert (float(point.get("lat")), float(point.get("lon"))) == (57.0, 11.9)
    assert float(point.get("ce")) == 9999999.0
    assert float(event.find("detail/bearing").get("value")) == pytest.approx(123.4)
    assert float(event.find("detail/range").get("value")) > 0
    assert event.find("detail/northRef").get("value") == "0"  # true north


@pytest.mark.parametrize(("cls", "identity", "expected"), [
    ("drone", {"verdict": "spoofed"}, "a-h-A-M-H-Q"),
    ("drone", {"verdict": "trusted", "allowed": True}, "a-f-A-M-H-Q"),
    ("drone", {"verdict": "trusted", "allowed": False}, "a-u-A-M-H-Q"),
    ("drone", {"verdict": "silent"}, "a-u-A-M-H-Q"),
    ("manned_aircraft", None, "a-n-A-C"),
    ("bird", None, "a-u-A"),
])
def test_type_follows_class_and_identity(cls, identity, expected):
    event = parse(track_event(state(cls, identity=identity), NODE, NOW, NOW + 15))
    assert event.get("type") == expected


@pytest.mark.parametrize("cls", ["clutter", "vehicle"])
def test_what_is_not_in_the_sky_is_not_sent(cls):
    assert track_event(state(cls), NODE, NOW, NOW + 15) is None


def test_names_and_remarks_are_escaped():
    event = parse(track_event(state(object_id='01J9"<&>'), NODE, NOW, NOW + 15))
    assert event.get("uid").endswith('01J9"<&>')


def test_the_node_marker_is_a_friendly_sensor_with_its_state():
    event = parse(node_marker(NODE, "online", "ARMED", NOW, NOW + 30))
    assert event.get("type") == "a-f-G-E-S"
    assert event.get("uid") == "edgenode-north-field-mast-3"
    assert "effector ARMED" in event.find("detail/remarks").text
    assert float(event.find("detail/track").get("course")) == pytest.approx(30.0)


@pytest.mark.parametrize("stream", [False, True], ids=["mesh", "stream"])
def test_protobuf_carries_the_same_event(stream):
    data = track_event(state(), NODE, NOW, NOW + 15).protobuf(stream=stream)
    assert data[0] == 0xBF
    if not stream:
        assert data[:3] == b"\xbf\x01\xbf"
    message = parse_proto(bytearray(data)).cotEvent
    assert message.uid == "edgenode-north-field-mast-3-01J9ZT3W6D8K4M2N5P7Q9R1S3T"
    assert message.type == "a-u-A-M-H-Q"
    assert message.lat == pytest.approx(57.0012345, abs=1e-7)
    assert message.staleTime - message.startTime == 15000
    assert message.detail.track.course == pytest.approx(90.0)
    assert message.detail.contact.callsign == "drone 9R1S3T"
    assert "<remarks>drone 82%" in message.detail.xmlDetail


def test_protobuf_and_xml_say_the_same(tmp_path):
    """takproto's own XML-to-protobuf conversion of our XML gives our protobuf's fields."""
    from takproto.functions import xml2message

    cot = track_event(state(located=False), NODE, NOW, NOW + 15)
    ours = parse_proto(bytearray(cot.protobuf(stream=False))).cotEvent
    theirs = xml2message(cot.xml()).cotEvent
    for name in ("uid", "type", "how", "sendTime", "startTime", "staleTime", "lat", "lon",
                 "hae", "ce", "le"):
        assert getattr(ours, name) == pytest.approx(getattr(theirs, name)), name
    assert ours.detail.contact.callsign == theirs.detail.contact.callsign
    assert ours.detail.xmlDetail.replace(" ", "") == theirs.detail.xmlDetail.replace(" ", "")


DRONE_UID = "edgenode-north-field-mast-3-01J9ZT3W6D8K4M2N5P7Q9R1S3T"


def remote_id(**extra) -> dict:
    """A track's identity whose System message gave the operator's position (docs/mqtt.md)."""
    return {"uas_id": "1596F350457A2B3C4D5E", "id_type": "serial_number", "type": "helicopter",
            "operator_id": "SWE-OP-4711", "verdict": "trusted", "reasons": [],
            "allowed": False, "how": "position",
            "operator_position": {"latitude_deg": 57.0101, "longitude_deg": 11.8899}} | extra


def pilot(s: dict, stale: float = NOW + 15) -> tuple[ET.Element | None, ET.Element]:
    drone = track_event(s, NODE, NOW, stale)
    assert drone is not None
    marker = pilot_marker(s, drone, NODE)
    return (None if marker is None else parse(marker)), parse(drone)


@pytest.mark.parametrize("located", [True, False], ids=["located", "bearing-only"])
def test_a_broadcast_operator_position_is_the_pilots_ground_point_linked_to_its_drone(located):
    event, drone = pilot(state(located=located, identity=remote_id()))
    assert event is not None
    assert event.get("type") == "a-u-G"
    assert event.get("uid") == DRONE_UID + "-pilot"
    point = event.find("point")
    assert float(point.get("lat")) == pytest.approx(57.0101, abs=1e-7)
    assert float(point.get("lon")) == pytest.approx(11.8899, abs=1e-7)
    assert float(point.get("ce")) == 9999999.0  # Remote ID gives no accuracy for it
    link = event.find("detail/link")
    assert (link.get("uid"), link.get("relation")) == (DRONE_UID, "p-p")
    assert link.get("type") == drone.get("type")
    remarks = event.find("detail/remarks").text
    assert "UAS ID 1596F350457A2B3C4D5E" in remarks and "operator ID SWE-OP-4711" in remarks
    assert event.find("detail/contact").get("callsign") == "pilot 9R1S3T"
    for name in ("time", "start", "stale"):
        assert event.get(name) == drone.get(name), name


def test_the_pilot_leaves_the_map_with_its_drone():
    event, drone = pilot(state(identity=remote_id()), stale=NOW)
    assert event is not None
    assert event.get("stale") == event.get("start") == drone.get("stale")


@pytest.mark.parametrize("identity", [
    None,
    {"uas_id": None, "verdict": "silent", "operator_position": None},
    remote_id(operator_position=None),
], ids=["no-identity", "silent", "no-operator-position"])
def test_no_pilot_marker_where_no_operator_position_was_broadcast(identity):
    event, _ = pilot(state(identity=identity))
    assert event is None


@pytest.mark.parametrize(("identity", "expected"), [
    (remote_id(allowed=True), "a-f-G"),
    (remote_id(verdict="suspect"), "a-u-G"),
    (remote_id(verdict="spoofed"), "a-u-G"),  # a spoofer may name anyone's position
])
def test_the_pilot_is_a_friend_only_with_its_drone_and_never_hostile(identity, expected):
    event, _ = pilot(state(identity=identity))
    assert event is not None
    assert event.get("type") == expected
    if identity["verdict"] == "spoofed":
        assert "may be false" in event.find("detail/remarks").text


def test_a_pilot_without_an_operator_id_says_so():
    event, _ = pilot(state(identity=remote_id(operator_id=None)))
    assert event is not None
    assert "operator ID not broadcast" in event.find("detail/remarks").text
