"""A PUBLISH whose MQTT 5 properties paho refuses, made receivable.

paho 2.x raises MalformedPacket on a UTF-8 property holding U+FEFF (which MQTT allows: a
receiver must not even strip it, [MQTT-1.5.4-3]), U+0000 or bytes that are not UTF-8, and on a
single-valued property sent twice. Raised on receipt, it drops the connection; a retained
message like that on `cmd` then came back on every reconnect, and no command got through.

`without_refused_properties` rewrites such a packet: every property paho would accept is kept
byte for byte, the others are left out. Everything the node reads from a command is in its
payload (signed) or in the response topic and correlation data; a response topic that had to
go only means the result is sent on `.../cmd/result` alone, as for an MQTT 3.1.1 command.
"""

from __future__ import annotations

import struct

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers

_PROPS = Properties(PacketTypes.PUBLISH)
_TYPE = {ident: _PROPS.types[kind] for ident, (kind, _) in _PROPS.properties.items()}
_MULTIPLE = {11, 38}  # subscription identifier, user property
_FIXED = {"Byte": 1, "Two Byte Integer": 2, "Four Byte Integer": 4}


class Unrepairable(ValueError):
    """The packet is broken beyond its properties (truncated, an unknown property)."""


def _string(buf: bytes, pos: int) -> tuple[bool, int]:
    """(acceptable to paho, end) for a length-prefixed UTF-8 string at pos."""
    if pos + 2 > len(buf):
        raise Unrepairable("string length past the end of the properties")
    (length,) = struct.unpack_from("!H", buf, pos)
    end = pos + 2 + length
    if end > len(buf):
        raise Unrepairable("string past the end of the properties")
    try:
        text = buf[pos + 2:end].decode("utf-8")
    except UnicodeDecodeError:
        return False, end
    return not any(c in text for c in ("\ufeff", "\x00")), end


def _property_end(buf: bytes, pos: int, ident: int) -> tuple[bool, int]:
    """(acceptable, end) of the value of property `ident` starting at pos."""
    kind = _TYPE.get(ident)
    if kind is None:
        raise Unrepairable(f"unknown property identifier {ident}")
    if kind in _FIXED:
        end = pos + _FIXED[kind]
        if end > len(buf):
            raise Unrepairable("property value past the end")
        return True, end
    if kind == "Variable Byte Integer":
        try:
            _, used = VariableByteIntegers.decode(buf[pos:])
        except Exception as exc:
            raise Unrepairable(f"bad variable byte integer: {exc}") from None
        return True, pos + used
    if kind == "Binary Data":
        if pos + 2 > len(buf):
            raise Unrepairable("binary length past the end")
        end = pos + 2 + struct.unpack_from("!H", buf, pos)[0]
        if end > len(buf):
            raise Unrepairable("binary data past the end")
        return True, end
    if kind == "UTF-8 Encoded String":
        return _string(buf, pos)
    ok_key, mid = _string(buf, pos)  # UTF-8 String Pair
    ok_value, end = _string(buf, mid)
    return ok_key and ok_value, end


def without_refused_properties(header: int, packet: bytes | bytearray) -> tuple[bytearray, int]:
    """(the MQTT 5 PUBLISH body with only the properties paho accepts, how many went).
    `header` is the fixed header's first byte, `packet` the rest after the remaining length.
    Raises Unrepairable for a packet that is broken elsewhere."""
    data = bytes(packet)
    qos = (header & 0x06) >> 1
    if len(data) < 2:
        raise Unrepairable("no topic length")
    pos = 2 + struct.unpack_from("!H", data, 0)[0] + (2 if qos else 0)
    if pos > len(data):
        raise Unrepairable("topic past the end")
    try:
        props_len, vbi_len = VariableByteIntegers.decode(data[pos:])
    except Exception as exc:
        raise Unrepairable(f"bad properties length: {exc}") from None
    start = pos + vbi_len
    end = start + props_len
    if end > len(data):
        raise Unrepairable("properties past the end")
    props = data[start:end]
    kept = bytearray()
    seen: set[int] = set()
    removed = 0
    at = 0
    while at < len(props):
        try:
            ident, used = VariableByteIntegers.decode(props[at:])
        except Exception as exc:
            raise Unrepairable(f"bad property identifier: {exc}") from None
        ok, value_end = _property_end(props, at + used, ident)
        duplicate = ident in seen and ident not in _MULTIPLE
        if ok and not duplicate:
            kept += props[at:value_end]
            seen.add(ident)
        else:
            removed += 1
        at = value_end
    body = bytearray(data[:pos])
    body += VariableByteIntegers.encode(len(kept)) + kept
    body += data[end:]
    return body, removed
