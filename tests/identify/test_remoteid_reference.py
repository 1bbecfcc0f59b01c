"""The done-when test of the Remote ID receiver: the OpenDroneID sample captures in
../shared/data/remoteid/ decode to what the reference decoder made of them
(reference_decode.jsonl): every pack it accepts comes out ok with the same fields, every pack
it rejects comes out not ok. Then the same through `edgenode replay --remoteid --json`, as a
field engineer runs it."""

from __future__ import annotations

import io
import json
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from edgenode.cli.remoteid_replay import frame_record, replay_remoteid
from hal.remoteid.capture import CaptureReader
from hal.remoteid.linktypes import capture_frames
from tests.conftest import EDGENODE, SHARED_DATA

DATA = SHARED_DATA / "remoteid"
REFERENCE = DATA / "reference_decode.jsonl"
needs_data = pytest.mark.skipif(not REFERENCE.exists(),
                                reason=f"{DATA} is absent (the OpenDroneID sample captures)")

# reference decoder's name -> ours, and how its raw value reads in our units (None: unknown)
TYPES = {"BasicID": "basic_id", "Location": "location", "Auth": "auth", "SelfID": "self_id",
         "System": "system", "OperatorID": "operator_id"}
H_ACC = {1: 18520, 2: 7408, 3: 3704, 4: 1852, 5: 926, 6: 555.6, 7: 185.2, 8: 92.6, 9: 30,
         10: 10, 11: 3, 12: 1}
V_ACC = {1: 150, 2: 45, 3: 25, 4: 10, 5: 3, 6: 1}
S_ACC = {1: 10, 2: 3, 3: 1, 4: 0.3}


def _alt(v: float) -> float | None:
    return None if v == -1000.0 else v


def _position(lat: float, lon: float) -> tuple[float | None, float | None]:
    # 0, 0 is the standard's "unknown"; beyond +-90/+-180 is no position either (the
    # reference hands such a value on raw; ours says None and names it in position_error)
    if (lat == 0.0 and lon == 0.0) or abs(lat) > 90 or abs(lon) > 180:
        return None, None
    return lat, lon


def _field(text: str, size: int) -> str:
    # an ID that fills its whole field has no NUL: the reference's string copy then runs on
    # into the next (reserved) byte; the field is `size` bytes
    return text[:size]


def expected(ref: dict[str, Any]) -> dict[str, Any]:
    kind = TYPES[ref["type"]]
    out: dict[str, Any] = {"type": kind, "proto_version": ref["proto_version"]}
    if kind == "basic_id":
        out |= {"id_type": ref["IDType"], "ua_type": ref["UAType"],
                "uas_id": _field(ref["UASID"], 20)}
    elif kind == "location":
        lat, lon = _position(ref["Latitude"], ref["Longitude"])
        ts = ref["TimeStamp"]
        out |= {"status": ref["Status"],
                "height_type": "ground" if ref["HeightType"] else "takeoff",
                "direction_deg": None if ref["Direction"] > 360 else ref["Direction"],
                "speed_horizontal_mps": None if ref["SpeedHorizontal"] == 255 else
                ref["SpeedHorizontal"],
                "speed_vertical_mps": None if ref["SpeedVertical"] == 63 else
                ref["SpeedVertical"],
                "lat": lat, "lon": lon, "altitude_baro_m": _alt(ref["AltitudeBaro"]),
                "altitude_geo_m": _alt(ref["AltitudeGeo"]), "height_m": _alt(ref["Height"]),
                "horizontal_accuracy_m": H_ACC.get(ref["HorizAccuracy"]),
                "vertical_accuracy_m": V_ACC.get(ref["VertAccuracy"]),
                "baro_accuracy_m": V_ACC.get(ref["BaroAccuracy"]),
                "speed_accuracy_mps": S_ACC.get(ref["SpeedAccuracy"]),
                "timestamp_s": None if ts > 3600 else ts,
                "timestamp_accuracy_s": ref["TSAccuracy"] / 10 if ref["TSAccuracy"] else None}
    elif kind == "self_id":
        out |= {"desc_type": ref["DescType"], "description": _field(ref["Desc"], 23)}
    elif kind == "system":
        lat, lon = _position(ref["OperatorLatitude"], ref["OperatorLongitude"])
        out |= {"operator_location_type": ref["OperatorLocationType"],
                "classification_type": ref["ClassificationType"], "lat": lat, "lon": lon,
                "area_count": ref["AreaCount"], "area_radius_m": ref["AreaRadius"],
                "area_ceiling_m": _alt(ref["AreaCeiling"]),
                "area_floor_m": _alt(ref["AreaFloor"]), "category_eu": ref["CategoryEU"],
                "class_eu": ref["ClassEU"],
                "operator_altitude_geo_m": _alt(ref["OperatorAltitudeGeo"]),
                "timestamp_unix_s": None if not ref["Timestamp"] else
                ref["Timestamp"] + 1_546_300_800}
    elif kind == "operator_id":
        out |= {"operator_id_type": ref["OperatorIdType"],
                "operator_id": _field(ref["OperatorId"], 20)}
    return out


def same(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Differences, by key: positions within 1e-6 deg, other numbers to float precision."""
    diffs = []
    for key, want in theirs.items():
        got = ours.get(key, "<missing>")
        if isinstance(want, float) and isinstance(got, (int, float)):
            tol = 1e-6 if key in ("lat", "lon") else 1e-3
            if abs(got - want) > tol:
                diffs.append(f"{key}: {got} != {want}")
        elif got != want:
            diffs.append(f"{key}: {got!r} != {want!r}")
    return diffs


def reference_by_file() -> dict[str, dict[int, dict[str, Any]]]:
    out: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    with REFERENCE.open() as f:
        for line in f:
            row = json.loads(line)
            out[row["file"]][row["frame_index"]] = row
    return out


@needs_data
def test_every_capture_decodes_to_the_reference_decode() -> None:
    refs = reference_by_file()
    assert set(refs) == {"odid_bt5_lr_sample.pcapng", "odid_wifi_bcn_sample.pcap",
                         "odid_wifi_sample.pcap"}
    accepted = rejected = 0
    problems: list[str] = []
    for name, by_index in refs.items():
        reader = CaptureReader.open(DATA / name)
        ours = {f.index: f for f in capture_frames(reader)}
        assert reader.error is None
        assert set(ours) == set(by_index), f"{name}: frames differ from the reference's"
        for index, ref in by_index.items():
            frame = ours[index]
            record = frame_record(frame)
            where = f"{name} frame {index}"
            assert record["transport"] == ref["transport"], where
            assert abs(record["t"] - ref["time"]) < 1e-6, where
            assert frame.payload.hex() == ref["payload_hex"], where
            assert frame.counter == ref["msg_counter"], where
            if "src_mac" in ref:
                assert frame.src == ref["src_mac"], where
            if not ref["pack_header"]["pack_decode_ok"]:
                rejected += 1
                if record["ok"] or not record["reason"]:
                    problems.append(f"{where}: the reference rejects it, ours: ok")
                continue
            accepted += 1
            if not record["ok"]:
                problems.append(f"{where}: the reference accepts it, ours: {record['reason']}")
                continue
            if len(record["messages"]) != len(ref["messages"]):
                problems.append(f"{where}: {len(record['messages'])} messages, reference "
                                f"{len(ref['messages'])}")
                continue
            for ours_m, ref_m in zip(record["messages"], ref["messages"], strict=True):
                problems += [f"{where} {ref_m['type']}: {d}"
                             for d in same(ours_m, expected(ref_m))]
    assert not problems, "\n".join(problems[:30])
    # the captures hold both kinds: a test that compared nothing could not fail
    assert accepted == 305 and rejected == 31


@needs_data
def test_replay_cli_json_carries_the_contract_fields() -> None:
    out = subprocess.run([*EDGENODE, "replay", "--remoteid", str(DATA / "odid_wifi_sample.pcap"),
                          "--json"], capture_output=True, text=True, timeout=60, check=True)
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    frames, summary = lines[:-1], lines[-1]["summary"]
    assert len(frames) == 42 and summary["frames"] == 42 and summary["ok"] == 42
    assert {f["transport"] for f in frames} == {"wifi_beacon", "wifi_nan"}
    for f in frames:
        assert {"t", "transport", "ok", "reason", "messages"} <= set(f)
        assert f["ok"] is True and f["reason"] is None
        assert 1620849805 < f["t"] < 1620849900  # the capture's own time stamps, in seconds
    kinds = {m["type"] for f in frames for m in f["messages"]}
    assert kinds == {"location", "self_id", "system", "operator_id"}
    location = next(m for f in frames for m in f["messages"] if m["type"] == "location")
    assert location["lat"] == pytest.approx(45.5450519, abs=1e-7)
    assert location["lon"] == pytest.approx(-122.9722906, abs=1e-7)
    # the capture's NAN synchronisation beacons carry another vendor's (the Wi-Fi
    # Alliance's) element: counted, never decoded
    assert summary["other_vendor_elements"] == 21
    # no Basic ID in this capture: the transmitter is known by its address, and consistent
    (ident,) = summary["identities"]
    assert ident["key"] == "src:84:cc:a8:60:43:24" and ident["verdict"] == "trusted"

    bt = io.StringIO()  # in-process from here on: the subprocess path is proven above
    assert replay_remoteid(DATA / "odid_bt5_lr_sample.pcapng", True, bt) == 0
    frames = [json.loads(line) for line in bt.getvalue().splitlines()][:-1]
    basic = [m for f in frames if f["ok"] and f["crc_ok"] for m in f["messages"]
             if m["type"] == "basic_id"]
    assert {m["uas_id"] for m in basic} == {"SSEVTFG93700070"}
    assert all(f["transport"] == "bluetooth" for f in frames)
    rejected = [f for f in frames if not f["ok"]]
    assert rejected and all(f["reason"] for f in rejected)
    # text mode, as a field engineer reads it: one line per frame, the summary, the verdicts
    text = io.StringIO()
    assert replay_remoteid(DATA / "odid_wifi_bcn_sample.pcap", False, text) == 0
    lines = text.getvalue().splitlines()
    assert len(lines) == 21 + 2
    assert "wifi_beacon ok  id 'MFG1A0123456789' at 45.5457468,-122.9681496" in lines[0]
    assert lines[-1].startswith("identity MFG1A0123456789: trusted (21 consistent position")


def test_replay_names_a_file_that_is_no_capture(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all")
    out = io.StringIO()
    assert replay_remoteid(junk, True, out) == 1
    assert out.getvalue() == ""
    assert "junk.pcap" in caplog.text and "not a pcap, pcapng or btsnoop" in caplog.text
    assert replay_remoteid(tmp_path / "absent.pcap", True, out) == 1
    assert "absent.pcap" in caplog.text
