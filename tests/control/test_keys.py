"""The key set fails closed and stays recoverable (issue 22 points 5, 6, 7)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgenode.config import KEYS_VERSION_MAX, OperatorKey
from edgenode.control.keys import KeyRing, KeyStore, OperatorIdentity, public_snippet, trusted
from tests.control.conftest import OPERATORS, RigFactory, key_entry
from tests.control.test_rejections import assert_refused, code


def test_unreadable_key_set_refuses_arm_until_an_admin_key_update(make_rig: RigFactory,
                                                                   tmp_path: Path) -> None:
    state = tmp_path / "state"
    rig = make_rig(state_dir=state)
    # alice is revoked by a key update ...
    keep = [key_entry(OPERATORS[k]) for k in ("root", "bob")]
    assert rig.send("root", "keys-update", {"version": 3, "keys": keep})["status"] == "ok"
    rig.effector.stop()
    # ... and then the card damages keys.json: the config's keys (alice among them) must not
    # quietly come back.
    (state / "control" / "keys.json").write_bytes(b'{"version": 3, "keys": [\x00')
    rig = make_rig(state_dir=state)
    assert_refused(rig, rig.send("alice", "arm", {"ttl_s": 10}), "keys_unreadable")
    assert_refused(rig, rig.send("bob", "arm", {"ttl_s": 10}), "keys_unreadable")
    assert rig.health.stages["effector"].state == "degraded"
    assert rig.send("alice", "safe")["status"] == "ok"  # safe always works
    assert rig.send("root", "keys-update", {"version": 4, "keys": keep})["status"] == "ok"
    assert code(rig.send("alice", "arm", {"ttl_s": 10})) == "revoked_key"
    assert rig.send("bob", "arm", {"ttl_s": 10})["status"] == "ok"


def test_key_update_version_is_bounded_like_the_config(make_rig: RigFactory) -> None:
    rig = make_rig()
    keys = [key_entry(k) for k in OPERATORS.values()]
    result = rig.send("root", "keys-update", {"version": KEYS_VERSION_MAX + 1, "keys": keys})
    assert_refused(rig, result, "bad_params")
    assert rig.effector.keys.version == 0
    ok = rig.send("root", "keys-update", {"version": KEYS_VERSION_MAX, "keys": keys})
    assert ok["status"] == "ok", ok


def test_demo_keys_are_refused_from_every_source_on_a_real_relay(make_rig: RigFactory,
                                                                 tmp_path: Path) -> None:
    demo = OperatorIdentity("demo-op", "operator", Ed25519PrivateKey.generate())
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    (keys_dir / "demo.pub").write_text(public_snippet(demo.id, demo.role, demo.public_b64,
                                                      demo=True))
    rig = make_rig(keys_dir=keys_dir)  # relay backend "fake": not the simulated relay
    assert_refused(rig, rig.send(demo, "arm", {"ttl_s": 10}), "unknown_key")
    entry = {**key_entry(demo), "demo": True}
    result = rig.send("root", "keys-update",
                      {"version": 1, "keys": [key_entry(OPERATORS["root"]), entry]})
    assert_refused(rig, result, "bad_params")
    assert "demo" in result["reason"]


def test_a_saved_key_set_and_its_rename_are_synced(tmp_path: Path) -> None:
    # The file, then the directory (the rename is durable only then), in that order.
    synced: list[str] = []

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        os.fsync(fd)

    store = KeyStore(tmp_path, fsync=spy)
    key = OperatorKey.model_validate(key_entry(OPERATORS["root"]))
    store.save(KeyRing(3, {key.id: trusted(key)}, set(), "keys-update"))
    assert synced == [str(tmp_path / "keys.tmp"), str(tmp_path)], synced
    assert store.load() is not None and store.load().version == 3


def test_a_key_update_makes_the_node_safe_saying_who_replaced_the_set(
        make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.arm_and_engage(duration_s=30)
    keep = [key_entry(OPERATORS[k]) for k in ("root", "bob")]
    assert rig.send("root", "keys-update", {"version": 3, "keys": keep})["status"] == "ok"
    assert not rig.drive()
    assert rig.effector.flush()
    last = [r["data"] for r in rig.audit if r["kind"] == "state"][-1]
    assert (last["to"], last["reason"]) == ("SAFE", "key set replaced by root (version 3)")
