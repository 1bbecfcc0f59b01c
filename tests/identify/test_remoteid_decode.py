"""The pure Remote ID decoder on messages built byte by byte (hal.sim.remoteid, the twin's
transmitter): both protocol versions, every message type, and the packs it must refuse."""

from __future__ import annotations

import random

import pytest

from edgenode.identify.remoteid import decode, decode_message
from hal.sim import remoteid as tx

LAT, LON = 57.7089123, 11.9745678


def test_version_2_pack_with_every_message_type_decodes_in_si_units() -> None:
    payload = tx.pack([
        tx.basic_id("1596F3501234567", id_type=1, ua_type=2),
        tx.location(LAT, LON, altitude_geo_m=152.5, altitude_baro_m=150.0, height_m=40.0,
                    direction_deg=271, speed_mps=12.25, vspeed_mps=-1.5, timestamp_s=1234.5,
                    height_ground=True),
        tx.auth_page(0, b"sig-part-one", last_page_index=1, length=30,
                     timestamp_unix_s=1_700_000_000),
        tx.auth_page(1, b"sig-part-two"),
        tx.self_id("Survey flight"),
        tx.system(57.70, 11.97, operator_altitude_geo_m=20.0, timestamp_unix_s=1_700_000_100,
                  area_radius_m=250),
        tx.operator_id("SWEabc123def456"),
    ])
    d = decode(payload)
    assert d.ok and d.reason is None and d.pack and not d.warnings
    kinds = [m["type"] for m in d.messages]
    assert kinds == ["basic_id", "location", "auth", "auth", "self_id", "system", "operator_id"]
    basic, loc, auth0, auth1, selfid, system, op = d.messages
    assert basic == {"type": "basic_id", "proto_version": 2, "id_type": 1, "ua_type": 2,
                     "uas_id": "1596F3501234567"}
    assert loc["lat"] == pytest.approx(LAT, abs=1e-7)
    assert loc["lon"] == pytest.approx(LON, abs=1e-7)
    assert loc["altitude_geo_m"] == 152.5 and loc["altitude_baro_m"] == 150.0
    assert loc["height_m"] == 40.0 and loc["height_type"] == "ground"
    assert loc["direction_deg"] == 271.0 and loc["speed_horizontal_mps"] == 12.25
    assert loc["speed_vertical_mps"] == -1.5 and loc["timestamp_s"] == 1234.5
    assert loc["horizontal_accuracy_m"] == 10.0 and loc["vertical_accuracy_m"] == 10.0
    assert auth0["page"] == 0 and auth0["last_page_index"] == 1 and auth0["length"] == 30
    assert auth0["timestamp_unix_s"] == 1_700_000_000
    assert bytes.fromhex(auth0["data_hex"]).rstrip(b"\0") == b"sig-part-one"
    assert auth1["page"] == 1 and bytes.fromhex(auth1["data_hex"]).rstrip(b"\0") == \
        b"sig-part-two"
    assert selfid["description"] == "Survey flight"
    assert system["lat"] == pytest.approx(57.70) and system["lon"] == pytest.approx(11.97)
    assert system["operator_altitude_geo_m"] == 20.0
    assert system["timestamp_unix_s"] == 1_700_000_100 and system["area_radius_m"] == 250
    assert op["operator_id"] == "SWEabc123def456"


def test_unknown_values_are_none_not_magic_numbers() -> None:
    loc = decode_message(tx.location(None, None, altitude_geo_m=None))
    assert loc is not None
    for key in ("lat", "lon", "altitude_geo_m", "altitude_baro_m", "height_m", "direction_deg",
                "speed_horizontal_mps", "speed_vertical_mps", "timestamp_s"):
        assert loc[key] is None, key


def test_high_speed_uses_the_coarse_scale() -> None:
    loc = decode_message(tx.location(LAT, LON, speed_mps=100.5))
    assert loc is not None and loc["speed_horizontal_mps"] == pytest.approx(100.5, abs=0.75)


def test_version_0_single_message_and_auth_page_count() -> None:
    d = decode(tx.basic_id("OLDSERIAL", version=0))
    assert d.ok and not d.pack and d.messages[0]["proto_version"] == 0
    # -19 sent the page count where -22a sends the last page index
    auth = decode_message(tx.auth_page(0, b"x", last_page_index=3, version=0))
    assert auth is not None and auth["last_page_index"] == 2


@pytest.mark.parametrize(("payload", "reason"), [
    (b"", "empty payload"),
    (tx.basic_id("CUT")[:20], "truncated message: 20 of 25 bytes"),
    (b"\xf2\x19", "truncated pack header"),
    (b"\xf2\x18\x01" + tx.basic_id("X")[:24], "pack message size 24, not 25"),
    (b"\xf2\x19\x00", "pack declares 0 messages"),
    (b"\xf2\x19\x0a" + tx.basic_id("X") * 10, "pack declares 10 messages"),
    (tx.pack([tx.basic_id("A"), tx.location(LAT, LON)])[:40], "truncated pack"),
    (tx.pack([tx.location(LAT, LON), tx.location(LAT, LON)]), "2 location messages"),
    (tx.pack([tx.basic_id("A"), tx.basic_id("B"), tx.basic_id("C")]), "3 basic_id messages"),
    (tx.pack([tx.basic_id("A"), tx.pack([tx.basic_id("B")])[:25]]), "has type 15"),
])
def test_malformed_or_cut_packs_are_rejected_with_a_reason(payload: bytes, reason: str) -> None:
    d = decode(payload)
    assert not d.ok
    assert d.reason is not None and reason in d.reason


def test_a_cut_pack_lists_its_complete_messages_but_is_not_ok() -> None:
    payload = tx.pack([tx.basic_id("WHOLE"), tx.location(LAT, LON), tx.self_id("cut")])
    d = decode(payload[:3 + 25 + 25 + 10])
    assert not d.ok and "truncated pack" in (d.reason or "")
    assert [m["type"] for m in d.messages] == ["basic_id", "location"]


def test_two_basic_ids_are_allowed_in_one_pack() -> None:
    d = decode(tx.pack([tx.basic_id("SERIAL1", id_type=1), tx.basic_id("SESSION", id_type=4)]))
    assert d.ok and [m["uas_id"] for m in d.messages] == ["SERIAL1", "SESSION"]


def test_unknown_message_types_are_skipped_and_counted() -> None:
    single = bytes([0x62]) + bytes(24)  # type 6: reserved
    d = decode(single)
    assert not d.ok and d.unknown_types == 1 and d.messages == []
    mixed = tx.pack([tx.basic_id("A"), bytes([0x92]) + bytes(24), tx.self_id("b")])
    d = decode(mixed)
    assert not d.ok and d.unknown_types == 1 and "type 9" in (d.reason or "")
    assert [m["type"] for m in d.messages] == ["basic_id", "self_id"]


def test_impossible_positions_and_unprintable_ids_are_warned_about() -> None:
    d = decode(tx.pack([tx.basic_id("BAD\x07ID"), tx.location(45.0, -214.6)]))
    assert d.ok  # well-formed: the reference decoder accepts such packs
    assert d.messages[1]["lat"] is None and "out of range" in d.messages[1]["position_error"]
    assert any("out of range" in w for w in d.warnings)
    assert any("non-printable" in w for w in d.warnings)
    d = decode(tx.basic_id("FROM-THE-FUTURE", version=7))
    assert d.ok and d.warnings == ["basic_id: protocol version 7 is reserved"]


def test_garbage_payloads_never_raise() -> None:
    rng = random.Random(3411)
    good = tx.pack([tx.basic_id("A"), tx.location(LAT, LON), tx.auth_page(0, b"x"),
                    tx.self_id("s"), tx.system(LAT, LON), tx.operator_id("o")])
    for _ in range(5000):
        if rng.random() < 0.5:
            data = bytearray(good[: rng.randrange(len(good) + 1)])
            for _ in range(rng.randrange(6)):
                if data:
                    data[rng.randrange(len(data))] = rng.randrange(256)
        else:
            data = bytearray(rng.randbytes(rng.randrange(260)))
        d = decode(bytes(data))
        assert d.ok or d.reason
        for m in d.messages:
            assert m["type"] in ("basic_id", "location", "auth", "self_id", "system",
                                 "operator_id")
