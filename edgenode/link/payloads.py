"""Payload builders: every message the link publishes, wrapped in its versioned envelope.

The shapes are the JSON Schemas in `schemas/` (docs/mqtt.md); tests validate every payload
the link publishes against them.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from edgenode.ulid import new_ulid

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
EVENT_TYPES = ("new", "update", "end")
STATE_NAMES = ("health", "effector", "selftest")
# cmd_result.status: ok (done), rejected (refused, nothing moved), error (the node failed while
# handling it). The same words edgenode/control uses.
RESULT_STATUSES = ("ok", "rejected", "error")
ULID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")

# Outbox priorities: when a cap bites, the lowest goes first. Gap records are never dropped.
PRIORITY_UPDATE, PRIORITY_NEW_END, PRIORITY_AUDIT, PRIORITY_GAP = 0, 1, 2, 3
REPLAYED_SUFFIX = b',"replayed":true}'


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The JSON Schema named `name` (file schemas/<name>.json)."""
    return json.loads((SCHEMA_DIR / f"{name}.json").read_text(encoding="utf-8"))


def schema_names() -> list[str]:
    return sorted(p.stem for p in SCHEMA_DIR.glob("*.json"))


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def encode(payload: dict[str, Any]) -> bytes:
    """Compact JSON; NaN/inf (invalid JSON) become null rather than break a consumer."""
    try:
        text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except ValueError:
        log.warning("link: non-finite number in a %s payload replaced by null",
                    payload.get("type", "?"))
        text = json.dumps(_finite(payload), separators=(",", ":"), allow_nan=False)
    return text.encode()


def mark_replayed(payload: bytes) -> bytes:
    """Add `"replayed": true` to an encoded JSON object without decoding it."""
    return payload[:-1] + REPLAYED_SUFFIX


@dataclass(frozen=True)
class Envelope:
    site: str
    node: str
    session: int

    def _base(self, t: float) -> dict[str, Any]:
        return {"v": SCHEMA_VERSION, "site": self.site, "node": self.node,
                "session": self.session, "t": round(t, 6)}

    def event(self, event: dict[str, Any], seq: int, t: float) -> dict[str, Any]:
        kind = event.get("type")
        if kind not in EVENT_TYPES:
            raise ValueError(f"link: event type {kind!r} is not one of {EVENT_TYPES}")
        if not isinstance(event.get("object_id"), str):
            raise ValueError("link: event without a string object_id")
        return {**self._base(t), "type": kind, "event_id": new_ulid(t), "seq": seq,
                "object_id": event["object_id"], "before": event.get("before"),
                "after": event.get("after")}

    def gap(self, *, stream: str, session: int, ranges: list[list[int]], count: int,
            reason: str, t: float) -> dict[str, Any]:
        return {**self._base(t), "type": "gap", "event_id": new_ulid(t),
                "dropped": {"stream": stream, "session": session, "ranges": ranges,
                            "count": count},
                "reason": reason}

    def audit(self, record: dict[str, Any], seq: int, t: float) -> dict[str, Any]:
        return {**self._base(t), "event_id": new_ulid(t), "seq": seq, "record": record}

    def online(self, *, t: float, version: str, hardware: str, capabilities: list[str],
               position: dict[str, Any], mast_heading_deg: float, config_digest: str,
               client_id: str, mqtt_version: str) -> dict[str, Any]:
        return {**self._base(t), "state": "online", "version": version, "hardware": hardware,
                "capabilities": list(capabilities), "position": position,
                "mast_heading_deg": mast_heading_deg, "config_digest": config_digest,
                "client_id": client_id, "mqtt_version": mqtt_version}

    def offline(self, *, reason: str, t: float | None) -> dict[str, Any]:
        # The last will has no time: the broker sends it at a moment the node cannot know.
        body: dict[str, Any] = {"v": SCHEMA_VERSION, "site": self.site, "node": self.node,
                                "session": self.session, "state": "offline", "reason": reason}
        if t is not None:
            body["t"] = round(t, 6)
        return body

    def ping(self, *, nonce: str, n: int, t: float) -> dict[str, Any]:
        """The node's ping to itself (schema ping): `nonce` marks the connection."""
        return {**self._base(t), "nonce": nonce, "n": n}

    def state(self, payload: dict[str, Any], t: float) -> dict[str, Any]:
        """A retained state (schemas effector, health, selftest): the producer's fields as
        they are; `v`, `site`, `node`, `session` and `t` are the link's."""
        return {**payload, **self._base(t)}

    def result(self, result: dict[str, Any], t: float) -> dict[str, Any]:
        """A command result (schema cmd_result): {id, status, reason[, state][, action]} from
        the handler, stamped like every payload. `status` is one of RESULT_STATUSES."""
        return {**result, **self._base(t)}


def result_id(payload: bytes) -> str | None:
    """The id a result may echo for a raw command: its `id` when that is a ULID, else None
    (a result never repeats arbitrary text from the wire as an id)."""
    try:
        value = json.loads(payload).get("id")
    except (ValueError, AttributeError, RecursionError):
        return None
    return value if isinstance(value, str) and ULID_RE.match(value) else None


def seq_ranges(seqs: list[int]) -> list[list[int]]:
    """[3, 4, 5, 9] -> [[3, 5], [9, 9]]: inclusive runs."""
    return merge_ranges([[seq, seq] for seq in seqs])


def merge_ranges(ranges: list[list[int]]) -> list[list[int]]:
    """Inclusive ranges in any order -> the fewest sorted runs covering the same seqs."""
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return out
