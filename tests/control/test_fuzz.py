"""10,000 random and mutated payloads straight into handle_command: no exception, one result
each, and the relay never moves. The signed corpus includes arm and engage from valid keys;
the key switch is at OFF, so even an intact engage cannot close the relay."""

from __future__ import annotations

import json
import random
from typing import Any

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


def test_ten_thousand_hostile_payloads_never_move_the_relay(make_rig: RigFactory) -> None:
    rig = make_rig(key="off")
    rng = random.Random(7)
    base = corpus()
    statuses: dict[str, int] = {}
    for _ in range(10_000):
        payload = mutate(rng, rng.choice(base))
        result = rig.send_raw(payload, retain=rng.random() < 0.02)
        assert result["status"] in STATUSES, result
        assert result["id"] is None or isinstance(result["id"], str)
        statuses[result["status"]] = statuses.get(result["status"], 0) + 1
    assert sum(statuses.values()) == 10_000
    assert statuses.get("error", 0) == 0, statuses
    assert rig.effector.counters["results"] == 10_000
    assert not rig.drive_went_high()
    assert rig.effector.state in ("SAFE", "ARMED")
