"""Operator key files and key sets at rest: what `edgenode ctl keygen` writes, what a node
reads from its keys_dir, what a keys-update stores and audits, and what each refuses."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from edgenode.config import EffectorSection, OperatorKey
from edgenode.control.keys import (
    KeyFileError,
    KeyRing,
    KeyStore,
    OperatorIdentity,
    current_ring,
    generate_key_file,
    load_config_keys,
    load_key_file,
    parse_key_list,
    trusted,
    write_key_file,
)
from tests.control.conftest import OPERATORS, RigFactory, key_entry


def ring_of(keys_dir: Path, allow_demo: bool = True) -> dict[str, tuple[str, str, bool]]:
    ring = load_config_keys(EffectorSection.model_validate({"keys_dir": str(keys_dir)}),
                            allow_demo=allow_demo)
    return {k.id: (k.role, k.public_b64, k.demo) for k in ring.keys.values()}


def test_a_generated_key_file_is_private_and_its_public_half_loads_on_a_node(
        tmp_path: Path) -> None:
    path = tmp_path / "ops" / "site-a" / "alice.key"  # folders made as needed
    snippet = generate_key_file(path, "alice", "operator")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    identity = load_key_file(path)
    assert (identity.id, identity.role) == ("alice", "operator")
    assert snippet == (f'[[effector.keys]]\nid = "alice"\nrole = "operator"\n'
                       f'public_key = "{identity.public_b64}"\n')
    assert Path(f"{path}.pub").read_text() == snippet
    keys_dir = tmp_path / "node-keys"
    keys_dir.mkdir()
    (keys_dir / "alice.pub").write_text(snippet)
    assert ring_of(keys_dir) == {"alice": ("operator", identity.public_b64, False)}
    with pytest.raises(FileExistsError):
        generate_key_file(path, "alice", "operator")  # never over a key in use


def test_a_key_written_for_an_operator_is_no_demo_key_unless_asked(tmp_path: Path) -> None:
    # Tools that write an operator's key files (the ctl's own, a provisioning script) leave
    # `demo` out: a demo key is refused on a node with a real relay.
    identity = OperatorIdentity("carol", "operator", Ed25519PrivateKey.generate())
    snippet = write_key_file(tmp_path / "carol.key", identity)
    assert "demo" not in snippet
    assert (tmp_path / "carol.key.pub").read_text() == snippet
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    (keys_dir / "carol.pub").write_text(snippet)
    assert ring_of(keys_dir, allow_demo=False) == {
        "carol": ("operator", identity.public_b64, False)}


def test_a_demo_key_is_marked_and_left_out_where_demo_keys_are_not_allowed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    identity = OperatorIdentity("demo-op", "operator", Ed25519PrivateKey.generate())
    snippet = write_key_file(tmp_path / "demo.key", identity, demo=True)
    assert snippet.endswith('"\ndemo = true\n')
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    (keys_dir / "demo.pub").write_text(snippet)
    other = OperatorIdentity("demo-two", "operator", Ed25519PrivateKey.generate())
    (keys_dir / "two.toml").write_text(  # one key at the top level, marked demo
        f'id = "demo-two"\nrole = "operator"\npublic_key = "{other.public_b64}"\ndemo = true\n')
    assert ring_of(keys_dir) == {"demo-op": ("operator", identity.public_b64, True),
                                 "demo-two": ("operator", other.public_b64, True)}
    with caplog.at_level(logging.ERROR):
        assert ring_of(keys_dir, allow_demo=False) == {}
    assert f"demo key 'demo-op' from {keys_dir / 'demo.pub'} ignored" in caplog.text
    assert f"demo key 'demo-two' from {keys_dir / 'two.toml'} ignored" in caplog.text


def test_a_keys_dir_takes_key_lists_and_single_keys_and_skips_what_it_cannot_read(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    alice, bob, root = (OPERATORS[n] for n in ("alice", "bob", "root"))
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    # a bare [[keys]] list
    (keys_dir / "a.toml").write_text(
        f'[[keys]]\nid = "alice"\nrole = "operator"\npublic_key = "{alice.public_b64}"\n')
    # one key at the top level (an operator's key file: the private half is never taken)
    write_key_file(keys_dir / "bob.toml", bob)
    (keys_dir / "bob.toml.pub").unlink()  # only the key file's own top level tells of bob
    # the same id with another public key: the first one read stays
    (keys_dir / "c.toml").write_text(
        f'[[keys]]\nid = "alice"\nrole = "admin"\npublic_key = "{root.public_b64}"\n')
    (keys_dir / "d.toml").write_text("[[keys]\n")
    (keys_dir / "e.toml").write_text("# no keys in here yet\n")
    with caplog.at_level(logging.ERROR):
        ring = ring_of(keys_dir)
    assert ring == {"alice": ("operator", alice.public_b64, False),
                    "bob": ("operator", bob.public_b64, False)}
    assert f"key 'alice' in {keys_dir / 'c.toml'} differs from an earlier one" in caplog.text
    assert f"keys file {keys_dir / 'd.toml'} skipped" in caplog.text
    assert "e.toml" not in caplog.text  # a file without keys is no error


@pytest.mark.parametrize(("text", "fault"), [
    (None, "cannot read: No such file or directory"),
    ("id = ", "not a key file (Invalid value (at end of document))"),
    ('id = "x"\nrole = "operator"\n', "needs id, role and a 32-byte base64 private_key "
     "(KeyError)"),
    ('id = "x"\nrole = "operator"\nprivate_key = "AAAA"\n',
     "needs id, role and a 32-byte base64 private_key (ValueError)"),
    ('id = "x"\nrole = "pilot"\nprivate_key = "' + "A" * 43 + '="\n',
     "role 'pilot' is not one of ['observer', 'technician', 'operator', 'admin']"),
    # A character outside base64 (a mangled copy) is refused, not skipped over.
    ('id = "x"\nrole = "operator"\nprivate_key = "' + "A" * 20 + "!" + "A" * 23 + '="\n',
     "needs id, role and a 32-byte base64 private_key (Error)"),
])
def test_a_bad_key_file_is_refused_naming_the_file_and_the_fault(
        tmp_path: Path, text: str | None, fault: str) -> None:
    path = tmp_path / "op.key"
    if text is not None:
        path.write_text(text)
    with pytest.raises(KeyFileError) as caught:
        load_key_file(path)
    assert str(caught.value) == f"key file {path}: {fault}"


def test_a_key_id_or_role_that_no_node_takes_is_refused_before_any_file_is_written(
        tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        generate_key_file(tmp_path / "x.key", "alice", "pilot")
    assert not list(tmp_path.iterdir())


def entries(n: int) -> list[dict[str, Any]]:
    return [{**key_entry(OPERATORS["alice"]), "id": f"k{i}"} for i in range(n)]


@pytest.mark.parametrize(("value", "message"), [
    ({"id": "x"}, "'keys' must be a non-empty list of at most 1000 keys"),
    ([], "'keys' must be a non-empty list of at most 1000 keys"),
    (entries(1001), "'keys' must be a non-empty list of at most 1000 keys"),
    ([*entries(2), {"id": "k9", "role": "operator", "public_key": "AAAA"}],
     "keys[2] invalid: public_key: String should match pattern '^[A-Za-z0-9+/]{43}=$'"),
    ([{"id": "k0", "role": "pilot", "public_key": "A" * 43 + "="}],
     "keys[0] invalid: role: Input should be 'observer', 'technician', 'operator' or "
     "'admin'"),
    (["alice"], "keys[0] invalid: the entry: Input should be a valid dictionary or instance "
     "of OperatorKey"),
    (entries(1) + entries(1), "'keys' lists a key id twice"),
])
def test_a_keys_update_list_is_refused_naming_the_fault(value: Any, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_key_list(value)
    assert str(caught.value) == message


def test_a_keys_update_list_of_1000_is_taken() -> None:
    assert [k.id for k in parse_key_list(entries(1000))] == [f"k{i}" for i in range(1000)]


def test_revocations_and_the_version_survive_a_restart(tmp_path: Path) -> None:
    root = trusted(OperatorKey.model_validate(key_entry(OPERATORS["root"])))
    ring = KeyRing(7, {"root": root}, {"alice", "bob"}, "keys-update")
    KeyStore(tmp_path).save(ring)
    again = KeyStore(tmp_path).load()
    assert again is not None
    assert again.describe() == ring.describe() == {
        "version": 7, "source": "keys-update", "keys": {"root": "admin"},
        "revoked": ["alice", "bob"]}


def test_a_keys_update_is_audited_with_the_whole_set(make_rig: RigFactory) -> None:
    rig = make_rig()
    keep = [key_entry(OPERATORS[k]) for k in ("root", "bob")]
    assert rig.send("root", "keys-update", {"version": 2, "keys": keep,
                                            "revoked": ["mallory"]})["status"] == "ok"
    assert rig.effector.flush()
    (record,) = [r["data"] for r in rig.audit if r.get("kind") == "keys"]
    assert record == {"version": 2, "source": "keys-update",
                      "keys": {"root": "admin", "bob": "operator"},
                      "revoked": ["alice", "mallory", "obs", "tech"]}


def test_a_damaged_key_set_is_described_as_unreadable_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "keys.json").write_text('{"version": 3, "keys": [')
    ring = current_ring(EffectorSection.model_validate({}), KeyStore(tmp_path))
    assert ring.describe() == {
        "version": 0, "source": "config", "keys": {}, "revoked": [],
        "unreadable": f"{tmp_path / 'keys.json'}: JSONDecodeError: Expecting value: line 1 "
                      "column 25 (char 24)"}


def test_a_demo_key_says_so_in_its_public_snippet(tmp_path: Path) -> None:
    snippet = generate_key_file(tmp_path / "demo.key", "demo-op", "operator", demo=True)
    assert snippet.splitlines()[-1] == "demo = true"
    assert (tmp_path / "demo.key.pub").read_text() == snippet
    plain = generate_key_file(tmp_path / "op.key", "op", "operator")
    assert "demo" not in plain


def test_a_stored_key_set_keeps_its_demo_keys_only_where_they_are_allowed(
        tmp_path: Path) -> None:
    demo = OperatorIdentity("demo-op", "operator", Ed25519PrivateKey.generate())
    key = OperatorKey(id="demo-op", role="operator", public_key=demo.public_b64, demo=True)
    store = KeyStore(tmp_path)
    store.save(KeyRing(version=7, keys={"demo-op": trusted(key)}, source="keys-update"))
    section = EffectorSection.model_validate({})
    assert set(current_ring(section, store, allow_demo=True).keys) == {"demo-op"}
    assert current_ring(section, store, allow_demo=False).keys == {}


def test_a_stored_set_at_version_one_without_revocations_loads(tmp_path: Path) -> None:
    alice = OPERATORS["alice"]
    (tmp_path / "keys.json").write_text(json.dumps({"version": 1, "keys": [
        {"id": alice.id, "role": alice.role, "public_key": alice.public_b64}]}))
    ring = KeyStore(tmp_path).load()
    assert ring is not None and (ring.version, set(ring.keys), ring.revoked) == (
        1, {alice.id}, set())
