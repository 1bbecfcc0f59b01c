"""An effector on a fake relay board: FakeGpio lines, a relay coil model, real SQLite and audit
files, and operators with real Ed25519 keys."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgenode.config import Config
from edgenode.control import Effector
from edgenode.control.keys import OperatorIdentity
from edgenode.control.operator import build_command, encode
from edgenode.health import Health
from edgenode.link.mqtt import InboundMessage
from hal.ports.gpio.fake import FakeGpio
from hal.relay import JammerRelay

DRIVE, HEARTBEAT, AUX, KEY_TEST, KEY_OPERATE = 17, 27, 22, 5, 6
SITE, NODE = "test", "mast-01"


def _identity(key_id: str, role: str) -> OperatorIdentity:
    return OperatorIdentity(key_id, role, Ed25519PrivateKey.generate())


OPERATORS = {
    "alice": _identity("alice", "operator"),
    "bob": _identity("bob", "operator"),
    "root": _identity("root", "admin"),
    "tech": _identity("tech", "technician"),
    "obs": _identity("obs", "observer"),
}


def key_entry(identity: OperatorIdentity) -> dict[str, str]:
    return {"id": identity.id, "role": identity.role, "public_key": identity.public_b64}


def make_config(relay: dict[str, Any] | None = None, storage: dict[str, Any] | None = None,
                **effector: Any) -> Config:
    eff = {"enabled": True, "keys": [key_entry(i) for i in OPERATORS.values()],
           "link_loss_grace_s": 0.3, "aux_settle_ms": 60, **effector}
    return Config.model_validate({
        "node": {"site": SITE, "id": NODE, "latitude_deg": 0, "longitude_deg": 0,
                 "altitude_m": 0, "mast_heading_deg": 0},
        "broker": {"url": "mqtt://127.0.0.1:1883"},
        "relay": {"backend": "fake", "drive_line": DRIVE, "heartbeat_line": HEARTBEAT,
                  "aux_line": AUX, "key_test_line": KEY_TEST, "key_operate_line": KEY_OPERATE,
                  "heartbeat_period_ms": 20, "board_dropout_ms": 200, "max_on_s": 60,
                  **(relay or {})},
        "effector": eff,
        **({"storage": storage} if storage else {}),
    })


class RelayCoil:
    """The relay itself: its aux contact follows the drive a few ms later, unless it is stuck
    (contact welded closed) or dead (never pulls in)."""

    def __init__(self, gpio: FakeGpio, delay_s: float = 0.005):
        self.gpio, self.delay_s = gpio, delay_s
        self.stuck = self.dead = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            try:
                drive = self.gpio.level(DRIVE)
            except KeyError:
                continue
            want = self.stuck or (drive and not self.dead)
            if self.gpio.level(AUX) != want:
                time.sleep(self.delay_s)
                self.gpio.drive_input(AUX, want)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Rig:
    gpio: FakeGpio
    coil: RelayCoil
    effector: Effector
    health: Health
    state_dir: Path
    config: Config
    clock: dict[str, bool]
    audit: list[dict[str, Any]] = field(default_factory=list)
    states: list[dict[str, Any]] = field(default_factory=list)

    def send(self, who: str | OperatorIdentity, action: str,
             params: dict[str, Any] | None = None, *, retain: bool = False,
             **fields: Any) -> dict[str, Any]:
        identity = OPERATORS[who] if isinstance(who, str) else who
        env = command(identity, action, params, **fields)
        return self.send_raw(encode(env), retain=retain)

    def send_raw(self, payload: bytes, *, retain: bool = False) -> dict[str, Any]:
        return self.effector.handle_command(
            InboundMessage(f"edgenode/{SITE}/{NODE}/cmd", payload, retain))

    def drive_history(self) -> list[tuple[float, bool]]:
        return self.gpio.history(DRIVE)

    def drive_went_high(self) -> bool:
        return any(level for _, level in self.drive_history())

    def drive(self) -> bool:
        return self.gpio.level(DRIVE)

    def heartbeat_toggles(self) -> int:
        return len(self.gpio.history(HEARTBEAT))

    def key(self, position: str) -> None:
        self.gpio.drive_input(KEY_TEST, position == "test")
        self.gpio.drive_input(KEY_OPERATE, position == "operate")

    def arm_and_engage(self, duration_s: float = 5, ttl_s: float = 30,
                       engager: str = "alice") -> None:
        assert self.send("alice", "arm", {"ttl_s": ttl_s})["status"] == "ok"
        result = self.send(engager, "engage", {"duration_s": duration_s, "bearing_deg": 90})
        assert result["status"] == "ok", result
        assert self.drive()


def command(identity: OperatorIdentity, action: str, params: dict[str, Any] | None = None,
            **fields: Any) -> dict[str, Any]:
    site = fields.pop("site", SITE)
    node = fields.pop("node", NODE)
    return build_command(identity, site, node, action, params, **fields)


class SteppableClock:
    """A wall clock a test can step, as `date -s` or an NTP step would."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def step(self, seconds: float) -> None:
        self.offset += seconds


def wait_for(predicate: Callable[[], bool], timeout_s: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


RigFactory = Callable[..., Rig]


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[RigFactory]:
    made: list[Rig] = []

    def factory(state_dir: Path | None = None, key: str = "operate", start: bool = True,
                clock_synced: bool = True, wall: SteppableClock | None = None,
                health: Health | None = None, hooks: dict[str, Any] | None = None,
                relay_settings: dict[str, Any] | None = None,
                storage_settings: dict[str, Any] | None = None, **effector: Any) -> Rig:
        """`effector` settings (and `relay_settings`, `storage_settings`) go into the
        config; `hooks` to the Effector itself (the daemon's airspace and identity checks,
        the allow-list keeper, a `clock_synced` sync source in place of the rig's
        `clock["synced"]`)."""
        config = make_config(relay_settings, storage_settings, **effector)
        gpio = FakeGpio(inputs={KEY_OPERATE: key == "operate", KEY_TEST: key == "test"})
        relay = JammerRelay(gpio, drive_line=DRIVE, heartbeat_line=HEARTBEAT, aux_line=AUX,
                            key_test_line=KEY_TEST, key_operate_line=KEY_OPERATE)
        coil = RelayCoil(gpio)
        health = health or Health()
        clock = {"synced": clock_synced}
        rig_holder: list[Rig] = []
        extra = ({"clock_synced": lambda: clock["synced"]} | dict(hooks or {})
                 | ({} if wall is None else {"wall_clock": wall}))
        eff = Effector(relay, config, health, state_dir or tmp_path / "state",
                       publish_audit=lambda r: rig_holder[0].audit.append(r),
                       publish_state=lambda s: rig_holder[0].states.append(s), **extra)
        rig = Rig(gpio, coil, eff, health, state_dir or tmp_path / "state", config, clock)
        rig_holder.append(rig)
        made.append(rig)
        if start:
            eff.start()
        return rig

    yield factory
    for rig in made:
        rig.effector.stop()
        rig.coil.stop()


@pytest.fixture
def rig(make_rig: RigFactory) -> Rig:
    return make_rig()
