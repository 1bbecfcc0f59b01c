"""edgenode/link/tolerant.py on packets built byte by byte: what paho refuses goes, the rest
stays byte for byte, a packet broken elsewhere is still refused."""

from __future__ import annotations

import struct

import pytest
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers

from edgenode.link.tolerant import Unrepairable, without_refused_properties

HEADER_QOS1 = 0x30 | 0x02


def _utf8(ident: int, raw: bytes) -> bytes:
    return VariableByteIntegers.encode(ident) + struct.pack("!H", len(raw)) + raw


def _publish(props: bytes, payload: bytes = b'{"x":1}', topic: bytes = b"a/cmd") -> bytes:
    return (struct.pack("!H", len(topic)) + topic + struct.pack("!H", 7)
            + VariableByteIntegers.encode(len(props)) + props + payload)


def _decode(body: bytes | bytearray) -> _packet.PublishPacket:
    return _packet.decode_publish(HEADER_QOS1, body, MQTTProtocolVersion.MQTTv5)


def test_refused_strings_go_and_the_rest_stays() -> None:
    good = Properties(PacketTypes.PUBLISH)
    good.ResponseTopic = "a/cmd/result/me"
    good.CorrelationData = b"\x00\x01"
    packed = good.pack()
    assert packed[0] == len(packed) - 1  # a one-byte length (under 128 bytes)
    kept = packed[1:]  # the properties of a good response topic and correlation data
    bad = (_utf8(3, "\ufeffjson".encode())           # content type with U+FEFF
           + _utf8(3, b"\xff\xfe")                    # a second one, not even UTF-8
           + VariableByteIntegers.encode(38) + struct.pack("!H", 1) + b"k"
           + struct.pack("!H", 1) + b"\x00")          # user property, value U+0000
    body = _publish(bad + kept)
    with pytest.raises(MalformedPacket):
        _decode(body)
    repaired, removed = without_refused_properties(HEADER_QOS1, body)
    assert removed == 3
    packet = _decode(repaired)
    assert packet.payload == b'{"x":1}' and packet.mid == 7 and packet.topic == b"a/cmd"
    assert packet.properties.ResponseTopic == "a/cmd/result/me"
    assert packet.properties.CorrelationData == b"\x00\x01"
    assert not hasattr(packet.properties, "ContentType")


def test_a_second_single_valued_property_goes() -> None:
    body = _publish(_utf8(8, b"a/cmd/result/1") + _utf8(8, b"a/cmd/result/2"))
    with pytest.raises(MalformedPacket):
        _decode(body)
    repaired, removed = without_refused_properties(HEADER_QOS1, body)
    assert removed == 1
    assert _decode(repaired).properties.ResponseTopic == "a/cmd/result/1"


@pytest.mark.parametrize("props", [
    _utf8(3, b"json")[:-2],                          # string runs past the properties
    VariableByteIntegers.encode(0x7F) + b"\x00",     # unknown property identifier
])
def test_a_packet_broken_beyond_its_strings_is_still_refused(props: bytes) -> None:
    with pytest.raises(Unrepairable):
        without_refused_properties(HEADER_QOS1, _publish(props))
