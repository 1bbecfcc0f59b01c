"""Operator keys: who may do what, where the node's key set comes from, operator key files.

The node holds public keys only, each with a role. The key set is the config's
(`[[effector.keys]]` plus `effector.keys_dir`, version `effector.keys_version`) until an
admin-signed `keys-update` with a higher version replaces it; that set is kept in
`<state_dir>/control/keys.json` and wins over the config while its version is higher.
Versions are bounded by KEYS_VERSION_MAX in both places, so the config can always outbid a
stored set (README, "Recovering the key set").

Revocation fails closed: when keys.json exists but cannot be read, the config's keys only
authenticate (so `safe` works and an admin can send a new `keys-update`), and the ring is
marked `unreadable`: the effector refuses arm and engage (`keys_unreadable`) until a key update
replaces it. Demo keys (made by `edgenode run --sim`) are dropped from every source unless the
relay is the simulated one.

An operator key file (written by `edgenode ctl keygen`, mode 0600) is TOML:

    id = "alice"
    role = "operator"
    private_key = "<base64 of the raw 32-byte Ed25519 seed>"
    public_key = "<base64 of the raw 32-byte public key>"

and `<file>.pub` holds the `[[effector.keys]]` snippet an installer pastes into the node config
or drops into the keys directory.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import ValidationError

from edgenode.config import KEYS_VERSION_MAX, EffectorSection, OperatorKey

log = logging.getLogger(__name__)

ROLES = ("observer", "technician", "operator", "admin")
# What each role may send; any valid key may send `safe`.
ALLOWED: dict[str, frozenset[str]] = {
    "observer": frozenset({"safe"}),
    "technician": frozenset({"safe", "selftest", "rebirth"}),
    "operator": frozenset({"safe", "selftest", "rebirth", "arm", "engage", "disengage"}),
    "admin": frozenset({"safe", "selftest", "rebirth", "arm", "engage", "disengage", "reset",
                        "keys-update", "allow-add", "allow-remove"}),
    # Not a key's role (not in ROLES): an in-process issuer the daemon authenticated (the
    # SAPIENT peer over mutual TLS, admission.admit_trusted). It may engage only within an
    # operator's signed arm, and always stop; never arm, reset or change keys.
    "peer": frozenset({"safe", "engage", "disengage"}),
}


class KeyFileError(ValueError):
    """A key file is unreadable or malformed; the message names the file."""


@dataclass(frozen=True)
class TrustedKey:
    id: str
    role: str
    public_key: Ed25519PublicKey
    public_b64: str
    demo: bool = False

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self.public_key.verify(signature, data)
        except InvalidSignature:
            return False
        return True


@dataclass
class KeyRing:
    version: int
    keys: dict[str, TrustedKey]
    revoked: set[str] = field(default_factory=set)
    source: str = "config"
    # Why the persisted key set could not be read (None when it could, or there is none).
    unreadable: str | None = None

    def describe(self) -> dict[str, Any]:
        out = {"version": self.version, "source": self.source,
               "keys": {k.id: k.role for k in self.keys.values()},
               "revoked": sorted(self.revoked)}
        if self.unreadable:
            out["unreadable"] = self.unreadable
        return out


class KeysUnreadable(Exception):
    """keys.json exists but cannot be used; the message names the file and the fault."""


def without_demo(keys: list[OperatorKey], allow_demo: bool, source: str) -> list[OperatorKey]:
    """Demo keys are for the simulated relay only, whatever their source."""
    if allow_demo:
        return keys
    for key in keys:
        if key.demo:
            log.error("effector: demo key '%s' from %s ignored: demo keys work only with the "
                      "simulated relay", key.id, source)
    return [k for k in keys if not k.demo]


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    raw = base64.b64decode(text, validate=True)
    if len(raw) != 32:
        raise ValueError(f"public key is {len(raw)} bytes, not 32")
    return Ed25519PublicKey.from_public_bytes(raw)


def trusted(key: OperatorKey) -> TrustedKey:
    return TrustedKey(key.id, key.role, public_key_from_b64(key.public_key), key.public_key,
                      key.demo)


def _keys_from_toml(path: Path) -> list[OperatorKey]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    entries = data.get("effector", {}).get("keys", data.get("keys", []))
    if not entries and "public_key" in data:
        entries = [{k: data[k] for k in ("id", "role", "public_key", "demo") if k in data}]
    return [OperatorKey.model_validate(entry) for entry in entries]


def load_config_keys(section: EffectorSection, *, allow_demo: bool = True) -> KeyRing:
    """The config's key set: [[effector.keys]] and every *.toml / *.pub file in keys_dir."""
    keys = {k.id: trusted(k) for k in without_demo(list(section.keys), allow_demo, "the config")}
    if section.keys_dir is not None:
        files = sorted([*section.keys_dir.glob("*.toml"), *section.keys_dir.glob("*.pub")])
        for path in files:
            try:
                for key in without_demo(_keys_from_toml(path), allow_demo, str(path)):
                    if key.id in keys and keys[key.id].public_b64 != key.public_key:
                        log.error("effector: key '%s' in %s differs from an earlier one; "
                                  "keeping the first", key.id, path)
                        continue
                    keys[key.id] = trusted(key)
            except (OSError, tomllib.TOMLDecodeError, ValidationError, ValueError) as exc:
                log.error("effector: keys file %s skipped: %s", path, exc)
    return KeyRing(section.keys_version, keys, set(), "config")


def parse_key_list(entries: Any) -> list[OperatorKey]:
    """Validate a keys-update list; raises ValueError naming the entry at fault."""
    if not isinstance(entries, list) or not entries or len(entries) > 1000:
        raise ValueError("'keys' must be a non-empty list of at most 1000 keys")
    out = []
    for index, entry in enumerate(entries):
        try:  # its pattern leaves a public_key 32 bytes, and Ed25519 takes any 32 bytes
            out.append(OperatorKey.model_validate(entry))
        except ValidationError as exc:  # name the field: "1 validation error" says nothing
            error = exc.errors()[0]
            where = str(error["loc"][0]) if error["loc"] else "the entry"  # entries are flat
            raise ValueError(f"keys[{index}] invalid: {where}: {error['msg']}") from None
    ids = [k.id for k in out]
    if len(set(ids)) != len(ids):
        raise ValueError("'keys' lists a key id twice")
    return out


class KeyStore:
    """The persisted key set from the last accepted keys-update."""

    def __init__(self, directory: Path, *, fsync: Callable[[int], None] = os.fsync):
        self.path = directory / "keys.json"
        self._fsync = fsync

    def load(self, *, allow_demo: bool = True) -> KeyRing | None:
        """The stored set; None when there is none; KeysUnreadable when it cannot be used
        (never a silent fall back: its revocations would be lost)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            keys = [OperatorKey.model_validate(k) for k in data["keys"]]
            version = data["version"]
            revoked = data.get("revoked", [])
            if (isinstance(version, bool) or not isinstance(version, int)
                    or not 1 <= version <= KEYS_VERSION_MAX):
                raise ValueError(f"version {version!r} outside [1, {KEYS_VERSION_MAX}]")
            if not isinstance(revoked, list) or not all(isinstance(r, str) for r in revoked):
                raise ValueError("revoked is not a list of key ids")
            keys = without_demo(keys, allow_demo, str(self.path))
            return KeyRing(version, {k.id: trusted(k) for k in keys}, set(revoked),
                           "keys-update")
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, ValidationError,
                binascii.Error) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise KeysUnreadable(f"{self.path}: {type(exc).__name__}: {first}") from None

    def save(self, ring: KeyRing) -> None:
        data = {"version": ring.version, "revoked": sorted(ring.revoked),
                "keys": [{"id": k.id, "role": k.role, "public_key": k.public_b64,
                          "demo": k.demo} for k in ring.keys.values()]}
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1)
            fh.flush()
            self._fsync(fh.fileno())
        os.replace(tmp, self.path)
        # The rename is durable only once the directory itself is on the disk.
        fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)


def current_ring(section: EffectorSection, store: KeyStore, *,
                 allow_demo: bool = True) -> KeyRing:
    config_ring = load_config_keys(section, allow_demo=allow_demo)
    try:
        stored = store.load(allow_demo=allow_demo)
    except KeysUnreadable as exc:
        log.critical("effector: key set %s; arm and engage are refused (keys_unreadable) "
                     "until an admin keys-update replaces it; safe still works", exc)
        config_ring.unreadable = str(exc)
        return config_ring
    if stored is not None and stored.version > config_ring.version:
        return stored
    return config_ring


# -- operator key files (the ctl side) ---------------------------------------------------
@dataclass(frozen=True)
class OperatorIdentity:
    id: str
    role: str
    private_key: Ed25519PrivateKey

    @property
    def public_b64(self) -> str:
        raw = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode("ascii")


def public_snippet(key_id: str, role: str, public_b64: str, *, demo: bool) -> str:
    lines = ["[[effector.keys]]", f'id = "{key_id}"', f'role = "{role}"',
             f'public_key = "{public_b64}"']
    if demo:
        lines.append("demo = true")
    return "\n".join(lines) + "\n"


def generate_key_file(path: Path, key_id: str, role: str, *, demo: bool = False) -> str:
    """Write a new key pair (private file 0600 and `<path>.pub`); return the public snippet.

    Refuses to overwrite an existing key file (FileExistsError).
    """
    OperatorKey.model_validate({"id": key_id, "role": role,
                                "public_key": "A" * 43 + "="})  # checks id and role
    return write_key_file(path, OperatorIdentity(key_id, role, Ed25519PrivateKey.generate()),
                          demo=demo)


def write_key_file(path: Path, identity: OperatorIdentity, *, demo: bool = False) -> str:
    seed = identity.private_key.private_bytes_raw()
    text = (f"# edgenode operator key: keep secret, never copy it to a node\n"
            f'id = "{identity.id}"\nrole = "{identity.role}"\n'
            f'private_key = "{base64.b64encode(seed).decode("ascii")}"\n'
            f'public_key = "{identity.public_b64}"\n')
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    snippet = public_snippet(identity.id, identity.role, identity.public_b64, demo=demo)
    Path(f"{path}.pub").write_text(snippet, encoding="utf-8")
    return snippet


def load_key_file(path: Path) -> OperatorIdentity:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KeyFileError(f"key file {path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise KeyFileError(f"key file {path}: not a key file ({exc})") from None
    try:
        seed = base64.b64decode(data["private_key"], validate=True)
        private = Ed25519PrivateKey.from_private_bytes(seed)
        key_id, role = str(data["id"]), str(data["role"])
    except (KeyError, ValueError, TypeError, binascii.Error) as exc:
        raise KeyFileError(f"key file {path}: needs id, role and a 32-byte base64 "
                           f"private_key ({type(exc).__name__})") from None
    if role not in ROLES:
        raise KeyFileError(f"key file {path}: role '{role}' is not one of {list(ROLES)}")
    return OperatorIdentity(key_id, role, private)
