"""10,000 random and mutated payloads straight into handle_command, with the key switch at
OPERATE so an intact engage really closes the relay: no exception, one result each, and an
oracle: `ok` for arm or engage only for an intact (byte-for-byte signed) envelope from a key
whose role may send it, not retained, the first time its id is seen; the drive goes high only
after such an engage was answered `ok`. (At OFF, as before, removing the role check passed.)"""

from __future__ import annotations

import json
import random
import time
from typing import Any

from edgenode.control.envelope import signed_part
from edgenode.control.operator import encode
from tests.control.conftest import OPERATORS, RigFactory, command

STATUSES = {"ok", "rejected", "error"}


def corpus() -> list[dict[str, Any]]:
    out = []
    for who in OPERATORS:
        out += [command(OPERATORS[who], "arm", {"ttl_s": 30}),
                command(OPERATORS[who], "engage", {"duration_s": 5, "bearing_deg": 90}),
                command(OPERATORS[who], "engage", {"duration_s": 5,
                                                   "track": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
                command(OPERATORS[who], "safe"), command(OPERATORS[who], "reset"),
                command(OPERATORS[who], "keys-update", {"version": 1, "keys": []})]
    return out


def junk_value(rng: random.Random) -> Any:
    return rng.choice([None, True, 0, -1, 1e308, "", "x" * rng.randint(0, 300), [], {},
                       [1, [2, [3]]], {"a": {"b": None}}, "01ARZ3NDEKTSV4RRFFQ69G5FAV",
                       "\u202e\x00", 2**70, -0.0])


def mutate(rng: random.Random, env: dict[str, Any]) -> bytes:
    env = json.loads(json.dumps(env))
    choice = rng.randrange(9)
    if choice == 0:
        env[rng.choice(list(env))] = junk_value(rng)
    elif choice == 1:
        env.pop(rng.choice(list(env)))
    elif choice == 2:
        env["params"][rng.choice(["ttl_s", "duration_s", "bearing_deg", "x"])] = junk_value(rng)
    elif choice == 3:
        env[rng.choice(["extra", "Signature", "ID"])] = junk_value(rng)
    elif choice == 4:
        payload = bytearray(encode(env))
        for _ in range(rng.randint(1, 8)):
            payload[rng.randrange(len(payload))] = rng.randrange(256)
        return bytes(payload)
    elif choice == 5:
        payload = encode(env)
        return payload[: rng.randrange(len(payload))]
    elif choice == 6:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 600)))
    elif choice == 7:
        return json.dumps(junk_value(rng)).encode()
    else:
        return encode(env)  # an intact copy: replays after the first
    return json.dumps(env).encode()


def intact(payload: bytes, originals: dict[bytes, dict[str, Any]]) -> dict[str, Any] | None:
    """The corpus envelope this payload is an unaltered copy of (same signed content, same
    signature), else None."""
    try:
        env = json.loads(payload)
        signed = signed_part(env)
    except (ValueError, TypeError, AttributeError, RecursionError):
        return None
    original = originals.get(signed)
    if original is None or not isinstance(env, dict) or \
            env.get("signature") != original["signature"]:
        return None
    return original


def test_ten_thousand_hostile_payloads_obey_only_intact_operator_commands(
        make_rig: RigFactory) -> None:
    rig = make_rig(key="operate")
    rng = random.Random(7)
    base = corpus()
    originals = {signed_part(env): env for env in base}
    statuses: dict[str, int] = {}
    ok_ids: set[str] = set()
    first_ok_engage: float | None = None
    acted = {"arm": 0, "engage": 0}
    for _ in range(10_000):
        payload = mutate(rng, rng.choice(base))
        retained = rng.random() < 0.02
        sent_at = time.monotonic()
        result = rig.send_raw(payload, retain=retained)
        assert result["status"] in STATUSES, result
        assert result["id"] is None or isinstance(result["id"], str)
        statuses[result["status"]] = statuses.get(result["status"], 0) + 1
        original = intact(payload, originals)
        action = original["action"] if original else None
        if result["status"] == "ok" and original is not None:
            assert not retained, ("a retained command was obeyed", original)
            assert original["id"] not in ok_ids, ("a replay was obeyed", original)
            ok_ids.add(original["id"])
        if result["status"] == "ok" and (original is None or action in ("arm", "engage")):
            # Only an intact arm/engage from a key allowed to send it may be obeyed.
            assert original is not None, ("a mutated command was obeyed", payload[:200])
            role = OPERATORS[original["key_id"]].role
            assert role in ("operator", "admin"), (f"{action} obeyed from a {role} key",
                                                    original)
            acted[action] += 1
            if action == "engage" and first_ok_engage is None:
                first_ok_engage = sent_at
    assert statuses.get("error", 0) == 0, statuses
    assert rig.effector.counters["results"] == 10_000
    assert rig.effector.counters["received"] == 10_000
    # The run exercised real obedience, so the oracle had something to judge.
    assert acted["arm"] >= 1 and acted["engage"] >= 1, acted
    highs = [t for t, level in rig.drive_history() if level]
    assert highs and first_ok_engage is not None
    assert min(highs) >= first_ok_engage, "the drive went high before an engage was obeyed"
