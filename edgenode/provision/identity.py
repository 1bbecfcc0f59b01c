"""What a node is given (site, node id, broker, CA, hardware, operators) and where it goes.

Every input is checked here, before anything is written, with a message naming the option.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from pydantic import ValidationError

import edgenode
from edgenode.config.models import OperatorKey
from edgenode.provision.errors import ProvisionError

# The same rule as the config's identifiers: they become MQTT topic levels and file names.
IDENTIFIER = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
VARIANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class NodeLayout:
    """The node's files under `root` ("/" on the unit, a temporary directory in tests).

    `node_*` are the paths as the node sees them (written into the config); the others are
    where they are on this machine.
    """

    root: Path = Path("/")
    node_etc: Path = Path("/etc/edgenode")

    def here(self, node_path: Path) -> Path:
        return self.root / node_path.relative_to("/")

    @property
    def etc(self) -> Path:
        return self.here(self.node_etc)

    @property
    def config(self) -> Path:
        return self.etc / "edgenode.toml"

    @property
    def key(self) -> Path:
        return self.etc / "node.key"

    @property
    def csr(self) -> Path:
        return self.etc / "node.csr"

    @property
    def cert(self) -> Path:
        return self.etc / "node.crt"

    @property
    def ca(self) -> Path:
        return self.etc / "ca.pem"

    @property
    def operators(self) -> Path:
        return self.etc / "operators"

    def templates(self) -> list[Path]:
        """Where hardware templates are looked for: the installed release, then the checkout."""
        installed = self.root / "opt/edgenode/current/hardware/configs"
        checkout = Path(edgenode.__file__).resolve().parents[1] / "hardware" / "configs"
        return [installed, checkout]


@dataclass(frozen=True)
class Position:
    latitude_deg: float
    longitude_deg: float
    altitude_m: float


@dataclass(frozen=True)
class Identity:
    site: str
    node: str
    broker_url: str
    hardware: str
    ca_pem: bytes
    operator_keys: tuple[OperatorKey, ...] = ()
    position: Position | None = None
    mast_heading_deg: float | None = None

    @property
    def client_name(self) -> str:
        """The certificate's CN: the broker's user name for the node (hardware/mosquitto)."""
        return f"node-{self.site}-{self.node}"


def check_identifier(option: str, value: str) -> str:
    if not IDENTIFIER.match(value or ""):
        raise ProvisionError(f"{option} {value!r}: use lower-case letters, digits, '-' and '_' "
                             "(up to 63, starting with a letter or digit); it becomes an MQTT "
                             "topic level")
    return value


def check_broker(option: str, url: str) -> str:
    parts = urlsplit(url or "")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme != "mqtts" or not parts.hostname or port == -1 or parts.path not in ("", "/") \
            or parts.query or parts.username:
        raise ProvisionError(f"{option} {url!r}: not a broker URL of the form "
                             "mqtts://host:8883 (the node authenticates with its TLS key, so "
                             "the link must be mqtts)")
    return url


def load_ca(option: str, pem: bytes, source: str) -> bytes:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ProvisionError(f"{option} {source}: not a PEM certificate (expected "
                             "'-----BEGIN CERTIFICATE-----')") from None
    if not certs:
        raise ProvisionError(f"{option} {source}: holds no certificate")
    return pem


def read_ca_file(option: str, path: Path) -> bytes:
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ProvisionError(f"{option} {path}: cannot read: {exc.strerror}") from None
    return load_ca(option, pem, str(path))


def parse_operator_key(source: str, data: object) -> list[OperatorKey]:
    """One key table, or a file's [[keys]] / [[effector.keys]] list, as `ctl keygen` prints."""
    if isinstance(data, dict):
        entries = data.get("effector", {}).get("keys", data.get("keys"))
        if entries is None:
            entries = [data]
    else:
        entries = data
    if not isinstance(entries, list) or not entries:
        raise ProvisionError(f"operator key {source}: no key in it (expected id, role, "
                             "public_key as `edgenode ctl keygen` prints)")
    keys = []
    for entry in entries:
        try:
            key = OperatorKey.model_validate(entry)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "(key)"
            raise ProvisionError(f"operator key {source}: {where}: {first['msg']}") from None
        if key.demo:
            raise ProvisionError(f"operator key {source}: '{key.id}' is a demo key (made by "
                                 "`edgenode run --sim`); never install one on a unit")
        keys.append(key)
    return keys


def read_operator_key(path: Path) -> list[OperatorKey]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ProvisionError(f"--operator-key {path}: cannot read: {reason}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProvisionError(f"--operator-key {path}: not TOML: {exc}") from None
    if "private_key" in data:
        raise ProvisionError(f"--operator-key {path}: this is a PRIVATE key: give the node the "
                             f"public one ({path}.pub) and keep this file with the operator")
    return parse_operator_key(str(path), data)


def unique_keys(keys: list[OperatorKey]) -> tuple[OperatorKey, ...]:
    seen: dict[str, OperatorKey] = {}
    for key in keys:
        if key.id in seen and seen[key.id].public_key != key.public_key:
            raise ProvisionError(f"operator key id '{key.id}' is given twice with different "
                                 "public keys")
        seen[key.id] = key
    return tuple(seen.values())


def find_template(layout: NodeLayout, variant: str, templates: Path | None = None,
                  option: str = "--hardware") -> Path:
    dirs = [templates] if templates is not None else layout.templates()
    if VARIANT.match(variant or ""):
        for directory in dirs:
            path = directory / f"{variant}.toml"
            if path.is_file():
                return path
    known = sorted({p.stem for d in dirs if d.is_dir() for p in d.glob("*.toml")})
    raise ProvisionError(f"{option} {variant!r}: no such hardware variant (no {variant}.toml "
                         f"in {', '.join(str(d) for d in dirs)}); known: "
                         f"{', '.join(known) or 'none'}")
