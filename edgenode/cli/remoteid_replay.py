"""Replay a Remote ID capture (pcap or pcapng: Wi-Fi with radiotap, BLE sniffer or HCI) through
the receiver and the decoder: `edgenode replay --remoteid FILE [--json]`.

With --json, one object per received frame that carries Remote ID:
{"t", "transport", "ok", "reason", "messages": [...], "counter", "src", "rssi_dbm", "crc_ok",
"frame"}, where `t` is the capture's time stamp in seconds and `frame` the record's index in
the file; then one {"summary": {...}} object. The message fields are those of
edgenode.identify.remoteid.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, TextIO

from edgenode.identify.remoteid import decode
from hal.remoteid import RemoteIdFrame
from hal.remoteid.capture import CaptureError, CaptureReader
from hal.remoteid.linktypes import Extractor, capture_frames

log = logging.getLogger(__name__)


def frame_record(frame: RemoteIdFrame) -> dict[str, Any]:
    """The JSON object for one received frame: decoded, with its verdict on well-formedness."""
    decoded = decode(frame.payload)
    ok = decoded.ok and frame.error is None
    out: dict[str, Any] = {"t": frame.t, "transport": frame.transport, "ok": ok,
                           "reason": frame.error or decoded.reason,
                           "messages": decoded.messages, "counter": frame.counter,
                           "src": frame.src, "rssi_dbm": frame.rssi_dbm,
                           "crc_ok": frame.crc_ok, "frame": frame.index}
    if decoded.unknown_types:
        out["unknown_types"] = decoded.unknown_types
    if decoded.warnings:
        out["warnings"] = decoded.warnings
    return out


def replay_remoteid(path: Path, as_json: bool, out: TextIO) -> int:
    """Decode every Remote ID frame of the capture at `path` onto `out`. 0 on success (also
    when the file ends early: the summary says where), 1 when it cannot be read at all."""
    try:
        reader = CaptureReader.open(path)
    except OSError as exc:
        log.error("remoteid replay: cannot read %s: %s", path, exc.strerror or exc)
        return 1
    except CaptureError as exc:
        log.error("remoteid replay: %s", exc)
        return 1
    extractor = Extractor()
    frames = ok = unknown = 0
    ids: set[str] = set()
    for frame in capture_frames(reader, extractor):
        record = frame_record(frame)
        frames += 1
        ok += record["ok"]
        unknown += record.get("unknown_types", 0)
        for m in record["messages"]:
            if m["type"] == "basic_id" and record["ok"] and frame.crc_ok and m["uas_id"]:
                ids.add(m["uas_id"])
        out.write(json.dumps(record) + "\n" if as_json else _line(record))
    if reader.error:
        log.warning("remoteid replay: %s", reader.error)
    summary = {"records": extractor.records, "frames": frames, "ok": ok,
               "rejected": frames - ok, "unknown_types_skipped": unknown,
               "uas_ids": sorted(ids), "unsupported_records": extractor.unsupported,
               "damaged_records": extractor.damaged,
               "other_vendor_elements": extractor.wifi.other_vendor_elements,
               "capture_error": reader.error}
    if as_json:
        out.write(json.dumps({"summary": summary}) + "\n")
    else:
        out.write("summary: " + ", ".join(f"{k} {v}" for k, v in summary.items()) + "\n")
    return 0


def _line(record: dict[str, Any]) -> str:
    parts = [f"{record['t']:.6f}", f"{record['transport']:<11}",
             "ok " if record["ok"] else "BAD"]
    for m in record["messages"]:
        if m["type"] == "basic_id":
            parts.append(f"id {m['uas_id']!r}")
        elif m["type"] == "location" and m["lat"] is not None:
            parts.append(f"at {m['lat']:.7f},{m['lon']:.7f}")
        elif m["type"] == "system" and m["lat"] is not None:
            parts.append(f"operator {m['lat']:.7f},{m['lon']:.7f}")
        elif m["type"] == "operator_id":
            parts.append(f"operator id {m['operator_id']!r}")
    if record["reason"]:
        parts.append(f"({record['reason']})")
    return " ".join(parts) + "\n"
