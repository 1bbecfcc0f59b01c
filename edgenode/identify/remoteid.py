"""ASTM F3411 Remote ID: bytes of one message or a message pack -> decoded messages.

Pure: no I/O. Protocol versions 0 (F3411-19) and 2 (F3411-22a) share one 25-byte layout per
message type, least significant bit first as in opendroneid-core-c's packed structs; the bytes
that -19 reserved and -22a later gave meaning to (the System message's operator altitude and
time stamp, the Authentication page 0 time stamp) decode to "unknown" (None) when they are
zero, as -19 senders leave them.

A decoded message is a dict. Every message has `type` (basic_id, location, auth, self_id,
system, operator_id) and `proto_version`. The other keys, in SI units; None wherever the
standard's "unknown" value was sent (an unknown altitude is not -1000 m, an unknown position is
not 0 N 0 E, a direction above 360 deg is no direction):

- basic_id: `id_type` (0 none, 1 serial number, 2 CAA registration, 3 UTM UUID, 4 specific
  session), `ua_type` (0 none, 1 aeroplane, 2 helicopter or multirotor, ... 15 other),
  `uas_id` (text up to the first NUL).
- location: `status` (0 undeclared, 1 ground, 2 airborne, 3 emergency, 4 Remote ID system
  failure), `height_type` ("takeoff" or "ground"), `direction_deg` (true course, clockwise
  from north), `speed_horizontal_mps`, `speed_vertical_mps` (up positive), `lat`, `lon`
  (degrees WGS84), `altitude_baro_m`, `altitude_geo_m` (WGS84 HAE), `height_m` (above
  `height_type`), `horizontal_accuracy_m`, `vertical_accuracy_m`, `baro_accuracy_m`,
  `speed_accuracy_mps`, `timestamp_s` (seconds after the full hour, UTC),
  `timestamp_accuracy_s`.
- auth: `auth_type`, `page`, and on page 0 `last_page_index`, `length` (bytes of
  authentication data over all pages), `timestamp_unix_s`; `data_hex` (the page's data bytes).
  Version 0 sent a page count where version 2 sends the last page index; both read as
  `last_page_index`.
- self_id: `desc_type`, `description`.
- system: `operator_location_type` (0 take-off, 1 live GNSS, 2 fixed), `classification_type`
  (0 undeclared, 1 EU), `lat`, `lon` (the operator's position, degrees), `area_count`,
  `area_radius_m`, `area_ceiling_m`, `area_floor_m`, `category_eu`, `class_eu`,
  `operator_altitude_geo_m`, `timestamp_unix_s`.
- operator_id: `operator_id_type`, `operator_id`.
A location or system message whose position is out of range (|lat| > 90, |lon| > 180) gives
lat/lon None and `position_error` saying what was sent.

A pack is accepted only when its header is sound (single message size 25, 1..9 messages, all of
them present in the bytes) and it holds nothing but Remote ID messages in allowed numbers (at
most 2 Basic ID, 16 Authentication pages, one of each other type), which is the rule of the
reference decoder. A rejected pack keeps the messages that were complete, for display: they
must never feed a track as trusted. A message of an unknown type is skipped and counted.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

MESSAGE_SIZE = 25
PACK_MAX_MESSAGES = 9
PACK_HEADER_SIZE = 3
PACKED = 0xF
TYPE_NAMES = ("basic_id", "location", "auth", "self_id", "system", "operator_id")
# How many of each message type one pack may hold (F3411-22a; opendroneid-core-c limits)
PACK_LIMITS = (2, 1, 16, 1, 1, 1)
AUTH_EPOCH_UNIX_S = 1_546_300_800  # 2019-01-01T00:00:00Z, the epoch of the -22a time stamps

# Accuracy codes (F3411 tables) -> metres, m/s or seconds; code 0 and reserved codes: unknown
HORIZONTAL_ACCURACY_M = {1: 18520.0, 2: 7408.0, 3: 3704.0, 4: 1852.0, 5: 926.0, 6: 555.6,
                         7: 185.2, 8: 92.6, 9: 30.0, 10: 10.0, 11: 3.0, 12: 1.0}
VERTICAL_ACCURACY_M = {1: 150.0, 2: 45.0, 3: 25.0, 4: 10.0, 5: 3.0, 6: 1.0}
SPEED_ACCURACY_MPS = {1: 10.0, 2: 3.0, 3: 1.0, 4: 0.3}

_LOCATION = struct.Struct("<BBBBbiiHHHBBHBB")
_SYSTEM = struct.Struct("<BBiiHBHHBHIB")
_AUTH0 = struct.Struct("<BBBBI")


@dataclass(slots=True)
class Decoded:
    """What one received payload held. `ok` is False with a `reason` for anything that must
    not be believed (malformed, cut, unknown types in a pack); `messages` then lists the
    complete messages only for display."""

    ok: bool
    reason: str | None
    messages: list[dict[str, Any]] = field(default_factory=list)
    pack: bool = False
    unknown_types: int = 0  # messages skipped because their type is not a Remote ID one
    # things a well-formed pack says that cannot be true (a longitude of -214 deg, an ID of
    # control characters): not grounds to reject the pack, but evidence against its sender
    warnings: list[str] = field(default_factory=list)


def _text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("latin-1")


def _altitude(encoded: int) -> float | None:
    return None if encoded == 0 else encoded * 0.5 - 1000.0


def _latlon(lat_e7: int, lon_e7: int) -> tuple[float | None, float | None]:
    if (lat_e7 == 0 and lon_e7 == 0) or abs(lat_e7) > 900_000_000 \
            or abs(lon_e7) > 1_800_000_000:
        return None, None
    return lat_e7 / 1e7, lon_e7 / 1e7


def _check_position(out: dict[str, Any], lat_e7: int, lon_e7: int) -> None:
    if abs(lat_e7) > 900_000_000 or abs(lon_e7) > 1_800_000_000:
        out["position_error"] = (f"latitude {lat_e7 / 1e7:.7f}, longitude {lon_e7 / 1e7:.7f} "
                                 "out of range")


def _basic_id(m: bytes, version: int) -> dict[str, Any]:
    return {"type": "basic_id", "proto_version": version, "id_type": m[1] >> 4,
            "ua_type": m[1] & 0x0F, "uas_id": _text(m[2:22])}


def _location(m: bytes, version: int) -> dict[str, Any]:
    (_, flags, direction, speed, vspeed, lat_e7, lon_e7, baro, geo, height, hv_acc, sb_acc,
     ts, ts_acc, _) = _LOCATION.unpack(m)
    direction_deg = direction + 180 if flags & 0x02 else direction
    speed_mps = speed * 0.75 + 63.75 if flags & 0x01 else speed * 0.25
    if lat_e7 or lon_e7:
        lat, lon = _latlon(lat_e7, lon_e7)
    else:
        lat = lon = None
    out = {"type": "location", "proto_version": version, "status": flags >> 4,
            "height_type": "ground" if flags & 0x04 else "takeoff",
            "direction_deg": float(direction_deg) if direction_deg <= 360 else None,
            "speed_horizontal_mps": None if speed_mps >= 255.0 else speed_mps,
            "speed_vertical_mps": None if vspeed == 126 else vspeed * 0.5,
            "lat": lat, "lon": lon,
            "altitude_baro_m": baro * 0.5 - 1000.0 if baro else None,
            "altitude_geo_m": geo * 0.5 - 1000.0 if geo else None,
            "height_m": height * 0.5 - 1000.0 if height else None,
            "horizontal_accuracy_m": HORIZONTAL_ACCURACY_M.get(hv_acc & 0x0F),
            "vertical_accuracy_m": VERTICAL_ACCURACY_M.get(hv_acc >> 4),
            "baro_accuracy_m": VERTICAL_ACCURACY_M.get(sb_acc >> 4),
            "speed_accuracy_mps": SPEED_ACCURACY_MPS.get(sb_acc & 0x0F),
            "timestamp_s": ts / 10.0 if ts <= 36_000 else None,
            "timestamp_accuracy_s": (ts_acc & 0x0F) / 10.0 if ts_acc & 0x0F else None}
    if lat is None:
        _check_position(out, lat_e7, lon_e7)
    return out


def _auth(m: bytes, version: int) -> dict[str, Any]:
    page = m[1] & 0x0F
    out: dict[str, Any] = {"type": "auth", "proto_version": version, "auth_type": m[1] >> 4,
                           "page": page}
    if page == 0:
        _, _, pages, length, ts = _AUTH0.unpack_from(m)
        # version 0 (-19) sent the number of pages here, later versions the last page's index
        last = pages - 1 if version == 0 else pages
        out.update(last_page_index=max(last, 0), length=length,
                   timestamp_unix_s=AUTH_EPOCH_UNIX_S + ts if ts else None,
                   data_hex=m[8:].hex())
    else:
        out["data_hex"] = m[2:].hex()
    return out


def _self_id(m: bytes, version: int) -> dict[str, Any]:
    return {"type": "self_id", "proto_version": version, "desc_type": m[1],
            "description": _text(m[2:25])}


def _system(m: bytes, version: int) -> dict[str, Any]:
    (_, flags, lat_e7, lon_e7, count, radius, ceiling, floor, eu, op_alt, ts,
     _) = _SYSTEM.unpack(m)
    lat, lon = _latlon(lat_e7, lon_e7)
    out = {"type": "system", "proto_version": version, "operator_location_type": flags & 0x03,
            "classification_type": (flags >> 2) & 0x07, "lat": lat, "lon": lon,
            "area_count": count, "area_radius_m": radius * 10,
            "area_ceiling_m": ceiling * 0.5 - 1000.0 if ceiling else None,
            "area_floor_m": floor * 0.5 - 1000.0 if floor else None,
            "category_eu": eu >> 4, "class_eu": eu & 0x0F,
            "operator_altitude_geo_m": op_alt * 0.5 - 1000.0 if op_alt else None,
            "timestamp_unix_s": AUTH_EPOCH_UNIX_S + ts if ts else None}
    if lat is None:
        _check_position(out, lat_e7, lon_e7)
    return out


def _operator_id(m: bytes, version: int) -> dict[str, Any]:
    return {"type": "operator_id", "proto_version": version, "operator_id_type": m[1],
            "operator_id": _text(m[2:22])}


_DECODERS = (_basic_id, _location, _auth, _self_id, _system, _operator_id)
_OFFSETS = tuple(PACK_HEADER_SIZE + i * MESSAGE_SIZE for i in range(PACK_MAX_MESSAGES))


def decode_message(m: bytes) -> dict[str, Any] | None:
    """One complete 25-byte message; None when its type is not one of the six."""
    kind = m[0] >> 4
    if kind > 5:
        return None
    return _DECODERS[kind](m, m[0] & 0x0F)


def decode(payload: bytes) -> Decoded:
    """A received Remote ID payload (what follows the message counter): a single message or
    a message pack."""
    if not payload:
        return Decoded(False, "empty payload")
    kind = payload[0] >> 4
    if kind == PACKED:
        return decode_pack(payload)
    if len(payload) < MESSAGE_SIZE:
        return Decoded(False, f"truncated message: {len(payload)} of {MESSAGE_SIZE} bytes")
    message = decode_message(payload[:MESSAGE_SIZE])
    if message is None:
        return Decoded(False, f"unknown message type {kind}", unknown_types=1)
    return Decoded(True, None, [message], warnings=_warnings([message]))


_ID_KEYS = {"basic_id": "uas_id", "operator_id": "operator_id"}


def _warnings(messages: list[dict[str, Any]]) -> list[str]:
    out = []
    for m in messages:
        if 2 < m["proto_version"] < 15:  # 3..14 reserved; 15 private use
            out.append(f"{m['type']}: protocol version {m['proto_version']} is reserved")
        if "position_error" in m:
            out.append(f"{m['type']}: {m['position_error']}")
        key = _ID_KEYS.get(m["type"])
        if key is not None:
            text = m[key]
            if not (text.isascii() and text.isprintable()):
                out.append(f"{m['type']}: {key} {text!r} holds non-printable characters")
    return out


def decode_pack(payload: bytes) -> Decoded:
    """A message pack (type 0xF): header checks, then every message in it."""
    if len(payload) < PACK_HEADER_SIZE:
        return Decoded(False, f"truncated pack header: {len(payload)} of 3 bytes", pack=True)
    size, count = payload[1], payload[2]
    if size != MESSAGE_SIZE:
        return Decoded(False, f"pack message size {size}, not {MESSAGE_SIZE}", pack=True)
    if not 1 <= count <= PACK_MAX_MESSAGES:
        return Decoded(False, f"pack declares {count} messages, allowed 1..{PACK_MAX_MESSAGES}",
                       pack=True)
    need = PACK_HEADER_SIZE + count * MESSAGE_SIZE
    present = min(count, (len(payload) - PACK_HEADER_SIZE) // MESSAGE_SIZE)
    reason = None
    if len(payload) < need:
        reason = (f"truncated pack: {count} messages need {need} bytes, "
                  f"{len(payload)} received")
    messages: list[dict[str, Any]] = []
    seen = [0] * 6
    unknown = 0
    decoders = _DECODERS
    for i, start in enumerate(_OFFSETS[:present]):
        m = payload[start:start + MESSAGE_SIZE]
        head = m[0]
        kind = head >> 4
        if kind > 5:
            unknown += 1
            reason = reason or f"message {i} of the pack has type {kind}, not a Remote ID message"
            continue
        seen[kind] += 1
        messages.append(decoders[kind](m, head & 0x0F))
    if reason is None:
        for kind, n in enumerate(seen):
            if n > PACK_LIMITS[kind]:
                reason = (f"pack holds {n} {TYPE_NAMES[kind]} messages, "
                          f"at most {PACK_LIMITS[kind]} allowed")
                break
    return Decoded(reason is None, reason, messages, pack=True, unknown_types=unknown,
                   warnings=_warnings(messages))
