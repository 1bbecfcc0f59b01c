"""The signed command envelope: its fields, canonical encoding, signing and structural checks.

Envelope (one JSON object, UTF-8):

    {"v": 1, "id": ULID, "site": str, "node": str | [str, ...], "action": str,
     "params": {...}, "issued_at": unix s, "expires_at": unix s, "key_id": str,
     "signature": base64(64-byte Ed25519 signature)}

Canonical encoding (what is signed): every field but `signature`, encoded as JSON with the keys
of every object sorted, no whitespace (separators "," and ":"), non-ASCII characters written as
themselves (no \\u escapes), then UTF-8. Numbers are written as Python's `json` writes them
(integers plainly, floats as the shortest text that reads back to the same double, which is
what JavaScript's `JSON.stringify` writes for ordinary values). The node parses the payload and
encodes it again this way, so the signature covers exactly what the node acts on; an envelope
with a duplicate key, NaN/Infinity, a number beyond a double (`1e400`) or a lone surrogate
(`"\\ud800"`) is malformed: it has no canonical form, so no one can have signed it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ENVELOPE_VERSION = 1
ULID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
KEY_ID_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
FIELDS = ("v", "id", "site", "node", "action", "params", "issued_at", "expires_at", "key_id",
          "signature")
MAX_NODES = 256


class Malformed(ValueError):
    """The payload is not a well-formed envelope; the message names the field at fault."""

    def __init__(self, code: str, detail: str, command_id: str | None = None):
        super().__init__(detail)
        self.code, self.detail, self.command_id = code, detail, command_id


@dataclass(frozen=True)
class Envelope:
    id: str
    site: str
    nodes: tuple[str, ...]
    node_is_list: bool
    action: str
    params: dict[str, Any]
    issued_at: float
    expires_at: float
    key_id: str
    signature: bytes
    signed_bytes: bytes
    raw: dict[str, Any]


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def signed_part(envelope: dict[str, Any]) -> bytes:
    """The bytes the signature covers: the canonical encoding of everything but `signature`."""
    return canonical({k: v for k, v in envelope.items() if k != "signature"})


def sign(envelope: dict[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """Return the envelope with its `signature` field set."""
    signature = private_key.sign(signed_part(envelope))
    return {**envelope, "signature": base64.b64encode(signature).decode("ascii")}


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise Malformed("malformed", f"duplicate key '{key}'")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise Malformed("malformed", f"non-JSON number {name}")


def _number(raw: dict[str, Any], name: str, command_id: str | None) -> float:
    value = raw.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed("malformed", f"field '{name}' must be a number (unix seconds)",
                        command_id)
    if not 0 <= value < 1e11:
        raise Malformed("malformed", f"field '{name}' {value!r} is not a plausible unix time",
                        command_id)
    return float(value)


def parse(payload: bytes) -> Envelope:
    """Decode and check the envelope's shape (not its signature, freshness or meaning).

    Raises Malformed whose `command_id` is the envelope's id when that much could be read.
    """
    try:
        text = payload.decode("utf-8")
        raw = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except Malformed:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Malformed("malformed", f"not a JSON document: {type(exc).__name__}") from None
    if not isinstance(raw, dict):
        raise Malformed("malformed", "the payload must be a JSON object")
    command_id = raw.get("id") if isinstance(raw.get("id"), str) else None
    if command_id is not None and not ULID_RE.match(command_id):
        raise Malformed("malformed", "field 'id' must be a ULID (26 Crockford base32 chars)")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise Malformed("malformed", f"unknown field(s) {unknown[:5]}", command_id)
    missing = [f for f in FIELDS if f not in raw and f != "signature"]
    if missing:
        raise Malformed("malformed", f"missing field(s) {missing}", command_id)
    if raw.get("signature") in ("", None):
        raise Malformed("missing_signature", "no 'signature' field", command_id)
    if command_id is None:
        raise Malformed("malformed", "field 'id' must be a ULID string")
    if raw["v"] != ENVELOPE_VERSION or isinstance(raw["v"], bool):
        raise Malformed("malformed", f"field 'v' must be {ENVELOPE_VERSION}", command_id)
    site, node, action = raw["site"], raw["node"], raw["action"]
    if not isinstance(site, str) or not NAME_RE.match(site):
        raise Malformed("malformed", "field 'site' must be a site id", command_id)
    if isinstance(node, str):
        nodes, is_list = (node,), False
    elif isinstance(node, list) and 0 < len(node) <= MAX_NODES:
        nodes, is_list = tuple(node), True
    else:
        raise Malformed("malformed", "field 'node' must be a node id or a list of them",
                        command_id)
    if not all(isinstance(n, str) and NAME_RE.match(n) for n in nodes):
        raise Malformed("malformed", "field 'node' holds something that is not a node id",
                        command_id)
    if not isinstance(action, str) or not 0 < len(action) <= 32:
        raise Malformed("malformed", "field 'action' must be a short string", command_id)
    if not isinstance(raw["params"], dict):
        raise Malformed("malformed", "field 'params' must be an object", command_id)
    key_id = raw["key_id"]
    if not isinstance(key_id, str) or not KEY_ID_RE.match(key_id):
        raise Malformed("malformed", "field 'key_id' must be a key id", command_id)
    issued_at = _number(raw, "issued_at", command_id)
    expires_at = _number(raw, "expires_at", command_id)
    signature_text = raw["signature"]
    try:
        if not isinstance(signature_text, str):
            raise ValueError
        signature = base64.b64decode(signature_text, validate=True)
    except (ValueError, binascii.Error):
        raise Malformed("bad_signature", "field 'signature' is not base64", command_id) from None
    if len(signature) != 64:
        raise Malformed("bad_signature", f"signature is {len(signature)} bytes, not 64",
                        command_id)
    try:
        # Numbers JSON reads as infinity (1e400) and lone surrogates ("\ud800") parse but
        # cannot be encoded again: such an envelope was never signed by anyone.
        signed_bytes = signed_part(raw)
    except (ValueError, RecursionError) as exc:
        raise Malformed("malformed", f"the envelope has no canonical form: "
                        f"{type(exc).__name__}", command_id) from None
    return Envelope(id=command_id, site=site, nodes=nodes, node_is_list=is_list, action=action,
                    params=raw["params"], issued_at=issued_at, expires_at=expires_at,
                    key_id=key_id, signature=signature, signed_bytes=signed_bytes, raw=raw)
