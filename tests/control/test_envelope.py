"""The command envelope's shape checks (edgenode/control/envelope.py): each refusal names the
field at fault, with the code the command result carries, and keeps the command's id where it
could be read (so the operator's tool can match the refusal to the command it sent)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgenode.control.envelope import MAX_NODES, Malformed, canonical, parse, sign
from edgenode.control.operator import build_command, encode
from tests.control.conftest import OPERATORS

ID = "01JQ7Z8M4V6WJ2Q1S5T3R9XK0B"


def envelope(**changes: Any) -> dict[str, Any]:
    """A well-formed signed engage, with `changes` applied after signing (None deletes)."""
    env = build_command(OPERATORS["alice"], "site-a", "mast-01", "engage",
                        {"duration_s": 5}, now=1_800_000_000.0, command_id=ID)
    for key, value in changes.items():
        if value is None:
            env.pop(key)
        else:
            env[key] = value
    return env


def refusal(payload: bytes) -> tuple[str, str, str | None]:
    with pytest.raises(Malformed) as caught:
        parse(payload)
    exc = caught.value
    assert str(exc) == exc.detail  # what a log line or a bare `str(exc)` shows
    return exc.code, exc.detail, exc.command_id


SIG_10_BYTES = base64.b64encode(b"0123456789").decode()

CASES = [
    (b"\xff\xfe", ("malformed", "not a JSON document: UnicodeDecodeError", None)),
    (b"[1, 2]", ("malformed", "the payload must be a JSON object", None)),
    (b'{"v": NaN}', ("malformed", "non-JSON number NaN", None)),
    (b'{"v": -Infinity}', ("malformed", "non-JSON number -Infinity", None)),
    (b'{"v": 1, "v": 1}', ("malformed", "duplicate key 'v'", None)),
    (envelope(id="01JQ7Z8M4V6WJ2Q1S5T3R9XK0"),
     ("malformed", "field 'id' must be a ULID (26 Crockford base32 chars)", None)),
    (envelope(colour="red"), ("malformed", "unknown field(s) ['colour']", ID)),
    (envelope(**{f"x{i}": i for i in range(6)}),  # a flood of junk fields: the first five
     ("malformed", "unknown field(s) ['x0', 'x1', 'x2', 'x3', 'x4']", ID)),
    (envelope(site=None, key_id=None), ("malformed", "missing field(s) ['site', 'key_id']", ID)),
    (envelope(signature=""), ("missing_signature", "no 'signature' field", ID)),
    (envelope(id=7), ("malformed", "field 'id' must be a ULID string", None)),
    (envelope(v=2), ("malformed", "field 'v' must be 1", ID)),
    (envelope(v=True), ("malformed", "field 'v' must be 1", ID)),
    (envelope(site="Site A"), ("malformed", "field 'site' must be a site id", ID)),
    (envelope(node=[]), ("malformed", "field 'node' must be a node id or a list of them", ID)),
    (envelope(node=["mast-01", 2]),
     ("malformed", "field 'node' holds something that is not a node id", ID)),
    (envelope(action=""), ("malformed", "field 'action' must be a short string", ID)),
    (envelope(action="a" * 33), ("malformed", "field 'action' must be a short string", ID)),
    (envelope(params=[]), ("malformed", "field 'params' must be an object", ID)),
    (envelope(key_id="alice smith"), ("malformed", "field 'key_id' must be a key id", ID)),
    (envelope(issued_at="yesterday"),
     ("malformed", "field 'issued_at' must be a number (unix seconds)", ID)),
    (envelope(expires_at=True),
     ("malformed", "field 'expires_at' must be a number (unix seconds)", ID)),
    (envelope(issued_at=-0.5),
     ("malformed", "field 'issued_at' -0.5 is not a plausible unix time", ID)),
    (envelope(expires_at=1e11),
     ("malformed", "field 'expires_at' 100000000000.0 is not a plausible unix time", ID)),
    (envelope(signature="not base64!"), ("bad_signature", "field 'signature' is not base64", ID)),
    (envelope(signature=64), ("bad_signature", "field 'signature' is not base64", ID)),
    (envelope(signature=SIG_10_BYTES), ("bad_signature", "signature is 10 bytes, not 64", ID)),
    # a real signature with one character outside base64: not skipped over
    (envelope(signature="!" + envelope()["signature"]),
     ("bad_signature", "field 'signature' is not base64", ID)),
    (envelope(node=[f"mast-{i}" for i in range(MAX_NODES + 1)]),
     ("malformed", "field 'node' must be a node id or a list of them", ID)),
    (envelope(action="a" * 33), ("malformed", "field 'action' must be a short string", ID)),
]


@pytest.mark.parametrize(("payload", "expected"), CASES,
                         ids=[str(i) for i in range(len(CASES))])
def test_each_malformed_envelope_is_refused_naming_the_field(
        payload: bytes | dict[str, Any], expected: tuple[str, str, str | None]) -> None:
    raw = payload if isinstance(payload, bytes) else encode(payload)
    assert refusal(raw) == expected


def test_a_number_json_reads_as_infinity_has_no_canonical_form() -> None:
    text = encode(envelope()).replace(b'"duration_s":5', b'"duration_s":1e400')
    assert refusal(text) == ("malformed", "the envelope has no canonical form: ValueError", ID)


@pytest.mark.parametrize("when", [0, 0.5, 1e11 - 1])
def test_times_from_the_epoch_to_the_year_5138_are_read(when: float) -> None:
    env = parse(encode(envelope(issued_at=when, expires_at=when)))
    assert (env.issued_at, env.expires_at) == (float(when), float(when))


@pytest.mark.parametrize(("node", "action"), [(["mast-01"], "x"),
                                              ([f"mast-{i}" for i in range(MAX_NODES)], "ab")])
def test_the_shortest_and_longest_node_lists_and_actions_are_read(node: list[str],
                                                                  action: str) -> None:
    env = parse(encode(envelope(node=node, action=action)))
    assert (env.nodes, env.node_is_list, env.action) == (tuple(node), True, action)


def test_a_well_formed_envelope_is_read_whole() -> None:
    raw = envelope(node=["mast-01", "mast-02"], action="a" * 32)
    env = parse(json.dumps(raw).encode())
    assert (env.id, env.site, env.nodes, env.node_is_list, env.action, env.params,
            env.key_id) == (ID, "site-a", ("mast-01", "mast-02"), True, "a" * 32,
                            {"duration_s": 5}, "alice")
    assert len(env.signature) == 64 and env.raw == raw


def test_the_signature_covers_the_canonical_json_an_operator_console_must_reproduce() -> None:
    """A known answer for other implementations of the operator's side (docs/mqtt.md): keys
    sorted, no whitespace, UTF-8 as is (no \\u escapes); a stale signature is not signed."""
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    unsigned = {"site": "site-a", "params": {"reason": "Drohne über Tor 3", "b": 1, "a": 2},
                "v": 1}
    expected = ('{"params":{"a":2,"b":1,"reason":"Drohne über Tor 3"},"site":"site-a","v":1}'
                .encode())
    assert canonical(unsigned) == expected
    signed = sign({**unsigned, "signature": "c3RhbGU="}, key)
    assert signed == sign(unsigned, key)
    key.public_key().verify(base64.b64decode(signed["signature"]), expected)
