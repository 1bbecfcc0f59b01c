"""Issue 7's fuzz, over the real broker into the real daemon: at least 10,000 random and
mutated command payloads (random bytes, truncated and bit-flipped signed envelopes, wrong
types, oversized payloads, intact copies that replay) on its `cmd` topic. The daemon stays up,
answers every one of them exactly once on the contract, and its relay line never goes high."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from edgenode.link.mqtt import BrokerOptions, MqttClient
from edgenode.ulid import new_ulid
from tests.conftest import Mosquitto
from tests.control.test_fuzz import mutate
from tests.test_daemon_mqtt import CMD, Daemon, Watcher, running_daemon, wait_connected

WINDOW = 64  # commands on the wire not yet answered: keeps every broker queue far from full
CORPUS_REFRESH = 1500  # re-sign the corpus now and then, so intact copies are still fresh


def corpus(daemon: Daemon) -> list[dict[str, Any]]:
    """Signed envelopes from the node's own operator and admin keys (no admin keys-update:
    an accepted one would empty the key set and leave nothing authentic to mutate)."""
    out = []
    for who in ("alice", "root"):
        for action, params in (("arm", {"ttl_s": 30}),
                               ("engage", {"duration_s": 5, "bearing_deg": 90}),
                               ("engage", {"duration_s": 5,
                                           "track": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
                               ("disengage", None), ("safe", None), ("reset", None),
                               ("selftest", None)):
            out.append(json.loads(daemon.signed(who, action, params)))
    out.append(json.loads(daemon.signed("alice", "keys-update", {"version": 9, "keys": []})))
    return out


def huge(rng: random.Random, base: dict[str, Any]) -> bytes:
    size = rng.choice([9_000, 65_000, 300_000])
    if rng.random() < 0.5:
        return rng.randbytes(size)
    return json.dumps({**base, "params": {"pad": "x" * size}}).encode()


def hostile(rng: random.Random, base: list[dict[str, Any]]) -> bytes:
    envelope = rng.choice(base)
    if rng.random() < 0.01:
        return huge(rng, envelope)
    return mutate(rng, envelope)


def fuzz(daemon: Daemon, watcher: Watcher, count: int, seed: int) -> dict[str, int]:
    """Publish `count` hostile payloads, at most WINDOW unanswered at a time; wait for the
    last answer. Returns the number of results the watcher saw."""
    rng = random.Random(seed)
    sender = MqttClient(BrokerOptions(url=daemon.broker_url, client_id=f"fuzz-{new_ulid()}"))
    sender.start()
    assert sender.connected.wait(5)
    try:
        base = corpus(daemon)
        for i in range(count):
            if i and i % CORPUS_REFRESH == 0:
                base = corpus(daemon)
            payload = hostile(rng, base)
            while watcher.count("cmd/result") < i - WINDOW:
                assert daemon.proc.poll() is None, daemon.log()
                time.sleep(0.001)
            # (an empty retained publish would only clear the broker's copy, never arrive)
            sender.publish(CMD, payload, qos=1, retain=bool(payload) and rng.random() < 0.02)
        assert watcher.wait_for(lambda: watcher.count("cmd/result") >= count, 30), (
            f"{watcher.count('cmd/result')} results for {count} commands")
        time.sleep(0.5)  # a duplicate answer would arrive now
    finally:
        sender.stop()
    return {"results": watcher.count("cmd/result")}


def run_fuzz(tmp_path: Path, mosquitto: Mosquitto, count: int, seed: int) -> None:
    watcher = Watcher(mosquitto.url, fuzzing=True)
    with running_daemon(tmp_path, mosquitto) as daemon:
        wait_connected(daemon, watcher)
        sent = fuzz(daemon, watcher, count, seed)
        assert daemon.proc.poll() is None, daemon.log()
        status = daemon.status()
        # The node's own health report (with the daemon's extras) went out on the contract.
        assert watcher.wait_for(lambda: any("system" in h for h in watcher.on("health")),
                                15), watcher.problems[:2]
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(15) == 0, daemon.log()
    watcher.stop()

    assert watcher.problems[:3] == []
    assert sent["results"] == count and watcher.count("cmd") == count
    link = status["link"]
    assert (link["cmd_received"], link["cmd_results"], link["cmd_overflow"]) == (count, count, 0)
    effector = status["health"]["counters"]["effector"]
    assert effector["received"] == effector["results"] == count
    results = watcher.on("cmd/result")
    unparseable = sum(r["id"] is None for r in results)
    with_id = len(results) - unparseable
    # Every result carries the id it could read; those it could not are the effector's
    # unparseable count: answered plus counted is everything sent.
    assert effector["unparseable"] == unparseable
    assert with_id + effector["unparseable"] == count
    assert effector.get("result_error", 0) == sum(r["status"] == "error" for r in results)
    # The mix reached every layer: parsing, size, signatures, the replay cache, and actions.
    codes = {(r["reason"] or "").split(":")[0] for r in results if r["status"] == "rejected"}
    assert {"malformed", "oversized", "bad_signature", "replayed"} <= codes, codes
    assert any(r["status"] == "ok" for r in results)
    levels = daemon.drive_levels()
    assert levels and True not in levels, "the relay drive line went high"


def test_ten_thousand_hostile_commands_over_the_broker_never_move_the_relay(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    run_fuzz(tmp_path, mosquitto, 10_000, seed=11)


@pytest.mark.long
@pytest.mark.timeout(900)
def test_a_hundred_thousand_hostile_commands_over_the_broker(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    run_fuzz(tmp_path, mosquitto, 100_000, seed=12)
