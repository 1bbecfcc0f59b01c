"""Replay a Remote ID capture (pcap, pcapng or btmon's btsnoop: Wi-Fi with radiotap, BLE sniffer
or HCI) through the receiver, the decoder, the identity store and the honesty verdicts:
`edgenode replay --remoteid FILE [--json]`.

With --json, one object per received frame that carries Remote ID:
{"t", "transport", "ok", "reason", "messages": [...], "counter", "src", "rssi_dbm", "crc_ok",
"frame"}, where `t` is the capture's time stamp in seconds and `frame` the record's index in
the file; then one {"summary": {...}} object, whose `identities` list gives each transmitter's
verdict on its broadcasts alone (no sensor bearing in a capture). The message fields are those
of edgenode.identify.remoteid.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, TextIO

from edgenode.identify.remoteid import decode
from edgenode.identify.remoteid_honesty import judge
from edgenode.identify.remoteid_store import Identity, RemoteIdStore
from hal.remoteid import RemoteIdFrame
from hal.remoteid.capture import CaptureError, CaptureReader
from hal.remoteid.linktypes import Extractor, capture_frames

log = logging.getLogger(__name__)

# A capture is judged at its end, on what was heard in its last minute
STALE_AFTER_S = 60.0


def frame_record(frame: RemoteIdFrame, store: RemoteIdStore | None = None) -> dict[str, Any]:
    """The JSON object for one received frame: decoded, with its verdict on well-formedness;
    filed in `store` when one is given."""
    decoded = decode(frame.payload)
    if store is not None:
        store.update(frame.t, decoded, src=frame.src, transport=frame.transport,
                     frame_error=frame.error, crc_ok=frame.crc_ok)
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
    store = RemoteIdStore(stale_after_s=STALE_AFTER_S)
    frames = ok = unknown = 0
    last_t = 0.0
    for frame in capture_frames(reader, extractor):
        record = frame_record(frame, store)
        last_t = max(last_t, frame.t)
        frames += 1
        ok += record["ok"]
        unknown += record.get("unknown_types", 0)
        out.write(json.dumps(record) + "\n" if as_json else _line(record))
    if reader.error:
        log.warning("remoteid replay: %s", reader.error)
    summary = {"records": extractor.records, "frames": frames, "ok": ok,
               "rejected": frames - ok, "unknown_types_skipped": unknown,
               "identities": [_identity(i, last_t) for i in store.active(last_t)],
               "unsupported_records": extractor.unsupported,
               "damaged_records": extractor.damaged,
               "other_vendor_elements": extractor.wifi.other_vendor_elements,
               "capture_error": reader.error}
    if as_json:
        out.write(json.dumps({"summary": summary}) + "\n")
    else:
        identities = summary.pop("identities")
        out.write("summary: " + ", ".join(f"{k} {v}" for k, v in summary.items()) + "\n")
        for ident in identities:
            out.write(f"identity {ident['uas_id'] or ident['key']}: {ident['verdict']} ("
                      + "; ".join(ident["reasons"]) + ")\n")
    return 0


def _identity(ident: Identity, now: float) -> dict[str, Any]:
    verdict = judge(ident, now)
    return {"key": ident.key, "uas_id": ident.uas_id, "verdict": verdict.verdict,
            "reasons": list(verdict.reasons), "frames_ok": ident.frames_ok,
            "frames_bad": ident.frames_bad, "frames_damaged": ident.frames_damaged,
            "operator_id": ident.operator_id}


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
