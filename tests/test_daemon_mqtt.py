"""The real daemon on a real Mosquitto, driven by `edgenode ctl`: every message it publishes
matches the contract in docs/mqtt.md, every command gets exactly one result with its reason,
and the relay (the fake GPIO backend's line record) never moves without an engagement."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from edgenode.control.audit import record_hash
from edgenode.control.keys import generate_key_file, load_key_file
from edgenode.control.operator import build_command, encode
from edgenode.daemon.control_socket import request
from edgenode.link import schema_for_topic
from edgenode.link.mqtt import BrokerOptions, InboundMessage, MqttClient
from edgenode.link.payloads import load_schema, schema_names
from edgenode.ulid import new_ulid
from tests.conftest import EDGENODE, ROOT, Mosquitto
from tests.link.helpers import wait_until

# hardware/dev-fake.toml
SITE, NODE = "dev", "fake-01"
PREFIX = f"edgenode/{SITE}/{NODE}"
CMD = f"{PREFIX}/cmd"
DRIVE_LINE = 17
VALIDATORS = {name: jsonschema.Draft202012Validator(load_schema(name))
              for name in schema_names()}


@dataclass
class Seen:
    topic: str
    suffix: str
    raw: bytes
    payload: Any
    retain: bool


@dataclass
class Watcher:
    """Subscribed to edgenode/# from before the daemon starts. Every message must be JSON
    that validates against its topic's schema, except what the test itself sent to `cmd` as
    junk (`junk`; with `fuzzing`, everything on `cmd` is the test's and is only counted);
    a topic without a schema is a problem."""

    url: str
    messages: list[Seen] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    junk: set[bytes] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=dict)
    fuzzing: bool = False

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.client = MqttClient(BrokerOptions(url=self.url, client_id=f"watch-{new_ulid()}"))
        self.client.subscribe("edgenode/#", self._on)
        self.client.start()
        assert self.client.connected.wait(5), f"watcher: no broker at {self.url}"

    def _on(self, msg: InboundMessage) -> None:
        suffix = msg.topic.removeprefix(PREFIX + "/")
        name = schema_for_topic(msg.topic)
        problem = None
        payload: Any = None
        if name is None:
            problem = f"{msg.topic}: no schema for this topic"
        elif msg.topic == CMD and (self.fuzzing or msg.payload in self.junk):
            pass  # the test's own hostile input
        else:
            try:
                payload = json.loads(msg.payload)
            except ValueError:
                problem = f"{msg.topic}: not JSON: {msg.payload[:80]!r}"
            else:
                error = next(iter(VALIDATORS[name].iter_errors(payload)), None)
                if error is not None:
                    problem = (f"{msg.topic}: {error.message} at "
                               f"{'/'.join(map(str, error.absolute_path))}: {payload}")
        with self._lock:
            self.counts[suffix] = self.counts.get(suffix, 0) + 1
            if problem:
                self.problems.append(problem)
            if msg.topic != CMD or not self.fuzzing:
                self.messages.append(Seen(msg.topic, suffix, msg.payload, payload, msg.retain))

    def on(self, suffix: str) -> list[Any]:
        with self._lock:
            return [m.payload for m in self.messages if m.suffix == suffix]

    def count(self, suffix: str) -> int:
        with self._lock:
            return self.counts.get(suffix, 0)

    def wait_for(self, predicate: Callable[[], Any], timeout_s: float = 10.0) -> bool:
        return wait_until(predicate, timeout_s)

    def stop(self) -> None:
        self.client.stop()


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    state_dir: Path
    relay_file: Path
    keys: dict[str, Path]
    log_path: Path
    broker_url: str

    def status(self) -> dict[str, Any]:
        return request(self.state_dir / "control.sock", {"cmd": "status"})

    def drive_levels(self) -> list[bool]:
        lines = [json.loads(x) for x in self.relay_file.read_text().splitlines()]
        return [x["level"] for x in lines if x["line"] == DRIVE_LINE]

    def ctl(self, who: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "EDGENODE_CTL_CONFIG": str(self.state_dir / "no-ctl.toml")}
        return subprocess.run([*EDGENODE, "ctl", "--broker", self.broker_url, "--key",
                               str(self.keys[who]), "--site", SITE, "--node", NODE, "--json",
                               "--timeout", "5", *args],
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=30)

    def signed(self, who: str, action: str, params: dict[str, Any] | None = None) -> bytes:
        return encode(build_command(load_key_file(self.keys[who]), SITE, NODE, action, params))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def write_config(tmp_path: Path, broker: Mosquitto) -> tuple[Path, dict[str, Path], Path]:
    """hardware/dev-fake.toml on this test's broker, with the effector enabled for an
    operator and an admin key made here, fake clock facts (synchronised) and the relay's line
    changes recorded to a file."""
    keys = {"alice": tmp_path / "keys" / "alice.key", "root": tmp_path / "keys" / "root.key"}
    snippets = generate_key_file(keys["alice"], "alice", "operator") + generate_key_file(
        keys["root"], "root", "admin")
    relay_file = tmp_path / "relay.jsonl"
    text = (ROOT / "hardware" / "dev-fake.toml").read_text()
    for old, new in (
            ('url = "mqtt://127.0.0.1:1883"\n',
             f'url = "{broker.url}"\nkeepalive_s = 2\nhealth_period_s = 2\n'
             "reconnect_min_s = 0.2\nreconnect_max_s = 1\n"),
            ("[relay]\n", f'[relay]\ndevice = "{relay_file}"\n')):
        assert text.count(old) == 1, f"hardware/dev-fake.toml no longer has {old!r}"
        text = text.replace(old, new)
    text += ('\n[sensors]\nsystem_backend = "fake"\n\n[effector]\nenabled = true\n'
             f"link_loss_grace_s = 5\n\n{snippets}")
    path = tmp_path / "edgenode.toml"
    path.write_text(text)
    return path, keys, relay_file


@contextmanager
def running_daemon(tmp_path: Path, broker: Mosquitto,
                   edit: Callable[[Path, dict[str, Path]], None] | None = None
                   ) -> Iterator[Daemon]:
    """The daemon on write_config's file; `edit(config, keys)` may change it first."""
    config, keys, relay_file = write_config(tmp_path, broker)
    if edit is not None:
        edit(config, keys)
    state = tmp_path / "state"
    log_path = tmp_path / "daemon.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([*EDGENODE, "run", "--config", str(config), "--state-dir",
                                 str(state)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    daemon = Daemon(proc, state, relay_file, keys, log_path, broker.url)
    try:
        yield daemon
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_connected(daemon: Daemon, watcher: Watcher) -> None:
    assert watcher.wait_for(lambda: any(s and s["state"] == "online"
                                        for s in watcher.on("status")), 15), daemon.log()


def check_audit_chain(records: list[dict[str, Any]]) -> None:
    """Each record's hash is its own and each links to the one before (seq order)."""
    for record in records:
        assert record_hash(record) == record["hash"], record
    for before, after in itertools.pairwise(records):
        assert after["seq"] == before["seq"] + 1 and after["prev"] == before["hash"], after


def test_daemon_answers_ctl_commands_on_the_contract(tmp_path: Path,
                                                    mosquitto: Mosquitto) -> None:
    watcher = Watcher(mosquitto.url)
    with running_daemon(tmp_path, mosquitto) as daemon:
        # Left retained on the broker before the node subscribes: delivered with the retain
        # flag, it must be refused however valid its signature.
        retained = daemon.signed("alice", "arm", {"ttl_s": 30})
        retained_id = json.loads(retained)["id"]
        mosquitto_publish(watcher, retained, retain=True)
        wait_connected(daemon, watcher)

        arm = daemon.ctl("alice", "arm", "--ttl", "60")
        assert arm.returncode == 0, arm.stdout + arm.stderr
        assert watcher.wait_for(lambda: watcher.on("effector")
                                and watcher.on("effector")[-1]["state"] == "ARMED")
        engage = daemon.ctl("alice", "engage", "--duration", "3", "--bearing", "120")
        disengage = daemon.ctl("alice", "disengage")
        garbage = b'{"id": 12, "action": "engage"\x00\xff'
        watcher.junk.add(garbage)
        mosquitto_publish(watcher, garbage)
        safe = daemon.ctl("root", "safe")
        assert safe.returncode == 0, safe.stdout + safe.stderr
        answers = {name: json.loads(out.stdout) for name, out in
                   (("arm", arm), ("engage", engage), ("disengage", disengage),
                    ("safe", safe))}
        assert watcher.wait_for(lambda: len(results(watcher)) == 6), results(watcher)
        assert watcher.wait_for(lambda: watcher.on("effector")[-1]["state"] == "SAFE")
        status = daemon.status()

        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(15) == 0, daemon.log()
        assert watcher.wait_for(lambda: watcher.on("status")[-1]["state"] == "offline")
    watcher.stop()

    assert watcher.problems == []
    # Exactly one result per command id, with its reason.
    by_id: dict[str | None, list[dict[str, Any]]] = {}
    for result in results(watcher):
        by_id.setdefault(result["id"], []).append(result)
    sent = {answers[a]["id"]: a for a in answers} | {retained_id: "retained", None: "garbage"}
    assert {k: len(v) for k, v in by_id.items()} == dict.fromkeys(sent, 1)
    outcome = {sent[k]: (v[0]["status"], (v[0]["reason"] or "").split(":")[0])
               for k, v in by_id.items()}
    assert outcome == {"retained": ("rejected", "retained"), "arm": ("ok", ""),
                       "engage": ("rejected", "key_switch_not_operate"),
                       "disengage": ("ok", "not engaged (state ARMED)"),
                       "garbage": ("rejected", "malformed"), "safe": ("ok", "")}
    assert engage.returncode == 1 and "key switch at off" in answers["engage"]["reason"]
    # ctl's MQTT 5 response topic got the same results.
    responses = [m.payload for m in watcher.messages if m.suffix.startswith("cmd/result/")]
    assert sorted(r["id"] for r in responses) == sorted(a["id"] for a in answers.values())

    births = [s for s in watcher.on("status") if s["state"] == "online"]
    assert len(births) == 1 and births[0]["session"] == 1
    assert births[0]["hardware"] == "fake" and births[0]["capabilities"] == ["effector"]
    assert watcher.on("status")[-1] | {"t": 0} == {
        "v": 1, "site": SITE, "node": NODE, "session": 1, "state": "offline",
        "reason": "stopped", "t": 0}
    # The retained effector state follows every transition.
    states = [s["state"] for s in watcher.on("effector")]
    assert states[0] == "SAFE" and "ARMED" in states and states[-1] == "SAFE"
    assert all(m.retain is False for m in watcher.messages if m.suffix == "effector")
    assert late_retained(mosquitto, "effector")["state"] == "SAFE"
    assert status["effector"] == "SAFE" and status["link"]["cmd_results"] == 6
    # Audit records arrive, in one unbroken hash chain.
    records = [a["record"] for a in sorted(watcher.on("audit"), key=lambda a: a["seq"])]
    kinds = [r["kind"] for r in records]
    assert kinds[0] == "start" and {"command", "result", "state", "junk"} <= set(kinds)
    assert sum(k == "command" for k in kinds) == 5  # the signed ones, the retained included
    check_audit_chain(records)
    # The relay never moved; its line history ends OFF.
    levels = daemon.drive_levels()
    assert levels and True not in levels and levels[-1] is False


def results(watcher: Watcher) -> list[dict[str, Any]]:
    return watcher.on("cmd/result")


def mosquitto_publish(watcher: Watcher, payload: bytes, *, retain: bool = False) -> None:
    info = watcher.client.publish(CMD, payload, qos=1, retain=retain)
    info.wait_for_publish(5)


def late_retained(broker: Mosquitto, suffix: str) -> dict[str, Any]:
    """What a consumer connecting now gets as the retained payload of `suffix`."""
    got: list[bytes] = []
    client = MqttClient(BrokerOptions(url=broker.url, client_id=f"late-{new_ulid()}"))
    client.subscribe(f"{PREFIX}/{suffix}", lambda m: got.append(m.payload))
    client.start()
    try:
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        client.stop()
    assert got, f"nothing retained on {PREFIX}/{suffix}"
    payload = json.loads(got[0])
    assert next(iter(VALIDATORS[schema_for_topic(f"{PREFIX}/{suffix}") or ""].iter_errors(
        payload)), None) is None
    return payload
