"""Building signed commands (the operator's side of `edgenode.control.envelope`)."""

from __future__ import annotations

import json
import time
from typing import Any

from edgenode.control.envelope import ENVELOPE_VERSION, sign
from edgenode.control.keys import OperatorIdentity
from edgenode.ulid import new_ulid

DEFAULT_LIFETIME_S = 10.0


def build_command(identity: OperatorIdentity, site: str, node: str | list[str], action: str,
                  params: dict[str, Any] | None = None, *,
                  lifetime_s: float = DEFAULT_LIFETIME_S, now: float | None = None,
                  command_id: str | None = None) -> dict[str, Any]:
    """A signed envelope, ready to publish with `encode`."""
    issued = round(time.time() if now is None else now, 3)
    envelope = {"v": ENVELOPE_VERSION, "id": command_id or new_ulid(), "site": site,
                "node": node, "action": action, "params": params or {}, "issued_at": issued,
                "expires_at": round(issued + lifetime_s, 3), "key_id": identity.id}
    return sign(envelope, identity.private_key)


def encode(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
