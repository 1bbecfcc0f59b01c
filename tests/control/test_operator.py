"""The operator's side of a command (edgenode.control.operator): the envelope build_command
signs, and the bytes encode puts on the wire, as the node reads them."""

from __future__ import annotations

import json

from edgenode.control.envelope import ENVELOPE_VERSION, parse
from edgenode.control.operator import DEFAULT_LIFETIME_S, build_command, encode
from tests.control.conftest import NODE, OPERATORS, SITE, RigFactory

ALICE = OPERATORS["alice"]


def test_an_envelope_carries_the_command_times_to_the_ms_and_a_signature() -> None:
    env = build_command(ALICE, SITE, NODE, "arm", {"ttl_s": 30}, now=1_700_000_000.12345,
                        lifetime_s=2.0004, command_id="01HZX0EXAMPLE0000000000000")
    signature = env.pop("signature")
    assert env == {"v": ENVELOPE_VERSION, "id": "01HZX0EXAMPLE0000000000000", "site": SITE,
                   "node": NODE, "action": "arm", "params": {"ttl_s": 30},
                   "issued_at": 1_700_000_000.123, "expires_at": 1_700_000_002.123,
                   "key_id": "alice"}
    assert isinstance(signature, str) and signature


def test_an_envelope_without_params_or_id_gets_empty_params_and_a_fresh_id() -> None:
    first = build_command(ALICE, SITE, NODE, "safe", now=1_700_000_000.0)
    second = build_command(ALICE, SITE, NODE, "safe", now=1_700_000_000.0)
    assert first["params"] == {} and second["params"] == {}
    assert first["id"] and second["id"] and first["id"] != second["id"]
    assert first["expires_at"] == 1_700_000_000.0 + DEFAULT_LIFETIME_S


def test_encode_is_compact_utf8_json_the_node_accepts(make_rig: RigFactory) -> None:
    rig = make_rig()
    env = build_command(ALICE, SITE, NODE, "arm", {"ttl_s": 30, "note": "Zürich mast"})
    payload = encode(env)
    assert "Zürich".encode() in payload  # UTF-8, not \u escapes: every byte counts toward
    assert b", " not in payload and b": " not in payload  # effector.max_command_bytes
    assert json.loads(payload) == env
    assert parse(payload).params["note"] == "Zürich mast"
    assert rig.send_raw(encode(build_command(ALICE, SITE, NODE, "arm",
                                             {"ttl_s": 30})))["status"] == "ok"
