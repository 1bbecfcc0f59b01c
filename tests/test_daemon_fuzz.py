"""Issue 7's fuzz, over the real broker into the real daemon: at least 10,000 random and
mutated command payloads (random bytes, truncated and bit-flipped signed envelopes, wrong
types, oversized payloads, intact copies that replay) on its `cmd` topic. The daemon stays up
and answers every one of them exactly once on the contract.

The fake relay's key switch stands at OPERATE (`relay.fake_key_switch`), so an intact engage
really drives the relay, and the node trusts a technician and an observer key besides the
operator and the admin. An oracle judges the answers (issue 21): `ok` for arm or engage only
for an id whose intact envelope, from a key whose role may send it, was published unretained;
one `ok` per id; the relay line high only after such an engage was published. (With the key
at OFF, as before, removing the role check passed.)"""

from __future__ import annotations

import json
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from edgenode.control.envelope import signed_part
from edgenode.control.keys import generate_key_file
from edgenode.link.mqtt import BrokerOptions, MqttClient
from edgenode.ulid import new_ulid
from tests.conftest import Mosquitto
from tests.control.test_fuzz import intact, mutate
from tests.test_daemon_mqtt import CMD, DRIVE_LINE, Daemon, Watcher, running_daemon, wait_connected

WINDOW = 64  # commands on the wire not yet answered: keeps every broker queue far from full
CORPUS_REFRESH = 1500  # re-sign the corpus now and then, so intact copies are still fresh
# The link holds rejected results to 1000 a second after a burst of 2000 (a junk flood must
# not flood the broker back; tests/link/test_link_edges.py shows it): sent faster, the junk's
# answers would be suppressed, counted, and missing here. This test is about content.
MAX_RATE_PER_S = 800.0


def corpus(daemon: Daemon) -> list[dict[str, Any]]:
    """Signed envelopes from every key the node trusts (no admin keys-update: an accepted one
    would empty the key set and leave nothing authentic to mutate)."""
    out = []
    for who in ("alice", "root", "tech", "obs"):
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


ROLES = {"alice": "operator", "root": "admin", "tech": "technician", "obs": "observer"}


def operate_with_more_keys(config: Path, keys: dict[str, Path]) -> None:
    """The key switch at OPERATE, and a technician and an observer key trusted too."""
    text = config.read_text()
    assert text.count("[relay]\n") == 1
    text = text.replace("[relay]\n", '[relay]\nfake_key_switch = "operate"\n')
    for who in ("tech", "obs"):
        keys[who] = config.parent / "keys" / f"{who}.key"
        text += generate_key_file(keys[who], who, ROLES[who])
    config.write_text(text)


@dataclass
class Sent:
    """What the oracle needs of the published payloads: per id, the intact signed envelope
    and when its first unretained intact copy went out (wall time)."""

    originals: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_signed: dict[bytes, dict[str, Any]] = field(default_factory=dict)
    first_intact: dict[str, float] = field(default_factory=dict)

    def add_corpus(self, base: list[dict[str, Any]]) -> None:
        for env in base:
            self.originals[env["id"]] = env
            self.by_signed[signed_part(env)] = env

    def note(self, payload: bytes, retained: bool) -> None:
        original = intact(payload, self.by_signed)
        if original is not None and not retained:
            self.first_intact.setdefault(original["id"], time.time())


def fuzz(daemon: Daemon, watcher: Watcher, count: int, seed: int, sent: Sent
         ) -> dict[str, int]:
    """Publish `count` hostile payloads, at most WINDOW unanswered at a time; wait for the
    last answer. Returns the number of results the watcher saw."""
    rng = random.Random(seed)
    sender = MqttClient(BrokerOptions(url=daemon.broker_url, client_id=f"fuzz-{new_ulid()}"))
    sender.start()
    assert sender.connected.wait(5)
    try:
        base = corpus(daemon)
        sent.add_corpus(base)
        start = time.monotonic()
        for i in range(count):
            ahead = start + i / MAX_RATE_PER_S - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            if i and i % CORPUS_REFRESH == 0:
                base = corpus(daemon)
                sent.add_corpus(base)
            payload = hostile(rng, base)
            while watcher.count("cmd/result") < i - WINDOW:
                assert daemon.proc.poll() is None, daemon.log()
                time.sleep(0.001)
            # (an empty retained publish would only clear the broker's copy, never arrive)
            retained = bool(payload) and rng.random() < 0.02
            sent.note(payload, retained)
            sender.publish(CMD, payload, qos=1, retain=retained)
        # Self-tests among the last commands take seconds each: the answers are awaited,
        # not timed (every command gets exactly one; speed is the bench's business).
        assert watcher.wait_for(lambda: watcher.count("cmd/result") >= count, 60), (
            f"{watcher.count('cmd/result')} results for {count} commands")
        time.sleep(0.5)  # a duplicate answer would arrive now
    finally:
        sender.stop()
    return {"results": watcher.count("cmd/result")}


def run_fuzz(tmp_path: Path, mosquitto: Mosquitto, count: int, seed: int) -> None:
    watcher = Watcher(mosquitto.url, fuzzing=True)
    record = Sent()
    with running_daemon(tmp_path, mosquitto, edit=operate_with_more_keys) as daemon:
        wait_connected(daemon, watcher)
        sent = fuzz(daemon, watcher, count, seed, record)
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
    first_engage = judge(results, record)
    # The relay line went high only after an engage the oracle accepts was published.
    highs = drive_highs(daemon)
    assert highs and min(highs) >= first_engage, (highs[:3], first_engage)


def drive_highs(daemon: Daemon) -> list[float]:
    """When the relay's drive line went high (wall time, from the fake backend's record)."""
    lines = [json.loads(x) for x in daemon.relay_file.read_text().splitlines()]
    return [x["t"] for x in lines if x["line"] == DRIVE_LINE and x["level"]]


def judge(results: list[dict[str, Any]], sent: Sent) -> float:
    """The oracle over the answers; returns when the first obeyed engage was published."""
    obeyed: dict[str, int] = {}
    engages = []
    for result in results:
        if result["status"] != "ok":
            continue
        original = sent.originals.get(result["id"])
        action = original["action"] if original else None
        if original is None or action in ("arm", "engage"):
            assert original is not None, ("obeyed a command the test never signed", result)
            role = ROLES[original["key_id"]]
            assert role in ("operator", "admin"), (f"{action} obeyed from a {role} key",
                                                    result)
            assert result["id"] in sent.first_intact, (
                "obeyed though no intact unretained copy was sent", result)
            if action == "engage":
                engages.append(sent.first_intact[result["id"]])
        obeyed[result["id"]] = obeyed.get(result["id"], 0) + 1
    twice = [i for i, n in obeyed.items() if n > 1]
    assert not twice, f"obeyed more than once (a replay): {twice[:3]}"
    assert engages, "no engage was obeyed: the oracle judged nothing that moves the relay"
    return min(engages)


def test_ten_thousand_hostile_commands_over_the_broker_never_move_the_relay(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    run_fuzz(tmp_path, mosquitto, 10_000, seed=11)


@pytest.mark.long
@pytest.mark.timeout(900)
def test_a_hundred_thousand_hostile_commands_over_the_broker(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    run_fuzz(tmp_path, mosquitto, 100_000, seed=12)
