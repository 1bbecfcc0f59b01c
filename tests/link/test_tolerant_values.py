"""edgenode/link/tolerant.py on values of every kind a PUBLISH can carry: whatever paho
accepts stays byte for byte beside a refused property, wherever it sits (last, empty, long),
on QoS 0 and QoS 1, with or without a payload; a value cut short is refused as a whole."""

from __future__ import annotations

import struct

import pytest
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.properties import VariableByteIntegers

from edgenode.link.tolerant import Unrepairable, without_refused_properties

HEADER_QOS0 = 0x30
HEADER_QOS1 = 0x30 | 0x02
REFUSED = VariableByteIntegers.encode(3) + struct.pack("!H", 4) + "\ufeffa".encode()[:4]


def _vbi(n: int) -> bytes:
    return VariableByteIntegers.encode(n)


def _sized(ident: int, raw: bytes) -> bytes:
    """A UTF-8 string or binary data property: two length bytes, then the bytes."""
    return _vbi(ident) + struct.pack("!H", len(raw)) + raw


def _publish(props: bytes, *, payload: bytes = b'{"x":1}', topic: bytes = b"a/cmd",
             qos: int = 1) -> bytes:
    mid = struct.pack("!H", 7) if qos else b""
    return (struct.pack("!H", len(topic)) + topic + mid + _vbi(len(props)) + props
            + payload)


def _decode(header: int, body: bytes | bytearray) -> _packet.PublishPacket:
    return _packet.decode_publish(header, body, MQTTProtocolVersion.MQTTv5)


KEPT = {
    "payload format indicator (byte)": (_vbi(1) + b"\x01", "PayloadFormatIndicator", 1),
    "message expiry (four bytes)": (_vbi(2) + struct.pack("!L", 3600),
                                    "MessageExpiryInterval", 3600),
    "topic alias (two bytes)": (_vbi(35) + struct.pack("!H", 513), "TopicAlias", 513),
    "subscription identifier (variable byte integer)": (_vbi(11) + _vbi(300),
                                                        "SubscriptionIdentifier", [300]),
    "correlation data (binary)": (_sized(9, b"\x00\x01\x02"), "CorrelationData",
                                  b"\x00\x01\x02"),
    "empty correlation data": (_sized(9, b""), "CorrelationData", b""),
    "content type (string)": (_sized(3, b"json"), "ContentType", "json"),
    "empty content type": (_sized(3, b""), "ContentType", ""),
    "user property (string pair)": (_vbi(38) + _sized(0, b"k")[1:] + _sized(0, b"v")[1:],
                                    "UserProperty", [("k", "v")]),
    "long response topic": (_sized(8, b"a/cmd/result/" + b"r" * 40000), "ResponseTopic",
                            "a/cmd/result/" + "r" * 40000),
    "long correlation data": (_sized(9, b"\x07" * 40000), "CorrelationData", b"\x07" * 40000),
}


@pytest.mark.parametrize("kept", KEPT.values(), ids=KEPT.keys())
@pytest.mark.parametrize("refused_first", [True, False], ids=["kept last", "kept first"])
def test_an_accepted_value_stays_byte_for_byte_beside_a_refused_one(
        kept: tuple[bytes, str, object], refused_first: bool) -> None:
    prop, name, value = kept
    props = REFUSED + prop if refused_first else prop + REFUSED
    repaired, removed = without_refused_properties(HEADER_QOS1, _publish(props))
    assert removed == 1
    assert bytes(repaired) == _publish(prop)
    assert getattr(_decode(HEADER_QOS1, repaired).properties, name) == value


@pytest.mark.parametrize("header", [HEADER_QOS0, HEADER_QOS0 | 0x01],
                         ids=["qos 0", "qos 0 retained"])
def test_a_qos0_message_has_no_packet_id_to_skip(header: int) -> None:
    body = _publish(REFUSED + _sized(8, b"a/cmd/result/1"), qos=0)
    repaired, removed = without_refused_properties(header, body)
    assert removed == 1
    packet = _decode(header, repaired)
    assert packet.topic == b"a/cmd" and packet.payload == b'{"x":1}'
    assert packet.properties.ResponseTopic == "a/cmd/result/1"


def test_an_empty_payload_clearing_a_retained_message_is_repaired_too() -> None:
    repaired, removed = without_refused_properties(
        HEADER_QOS1 | 0x01, _publish(REFUSED + _sized(9, b"\x01"), payload=b""))
    assert removed == 1
    packet = _decode(HEADER_QOS1 | 0x01, repaired)
    assert packet.payload == b"" and packet.properties.CorrelationData == b"\x01"


def test_a_long_topic_is_skipped_whole() -> None:
    topic = b"edgenode/site/" + b"n" * 40000 + b"/cmd"
    repaired, removed = without_refused_properties(HEADER_QOS1,
                                                   _publish(REFUSED, topic=topic))
    assert removed == 1
    packet = _decode(HEADER_QOS1, repaired)
    assert packet.topic == topic and packet.mid == 7 and packet.payload == b'{"x":1}'


@pytest.mark.parametrize("props", [
    _vbi(3) + b"\x00",                  # content type: one of its two length bytes
    _vbi(9) + b"\x00",                  # correlation data: one of its two length bytes
    _sized(9, b"\x01\x02")[:-1],        # correlation data shorter than its length
    _vbi(2) + b"\x00\x00",              # message expiry: two of its four bytes
    _vbi(11) + b"\x80",                 # subscription identifier: continuation, then nothing
])
def test_a_value_cut_short_is_refused_whole(props: bytes) -> None:
    with pytest.raises(Unrepairable):
        without_refused_properties(HEADER_QOS1, _publish(REFUSED + props))
