"""Shared by the installer tests: a tree's fingerprint, a throw-away CA, operator keys."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edgenode.config import Config, load_config
from edgenode.control.keys import generate_key_file

ROOT = Path(__file__).resolve().parents[2]


def tree_hash(top: Path, skip: tuple[str, ...] = ()) -> str:
    """Paths, types, modes, owners, contents, link targets and mtimes of everything under top."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            path = Path(dirpath) / name
            rel = path.relative_to(top).as_posix()
            if any(rel.startswith(s) for s in skip):
                continue
            st = path.lstat()
            digest.update(f"{rel}|{st.st_mode:o}|{st.st_uid}|{st.st_gid}".encode())
            if stat.S_ISLNK(st.st_mode):
                digest.update(os.readlink(path).encode())
            elif stat.S_ISREG(st.st_mode):
                digest.update(f"|{st.st_mtime_ns}|".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def listing(top: Path) -> list[str]:
    return sorted(p.relative_to(top).as_posix() for p in top.rglob("*"))


class ControlRoomCA:
    """A CA that signs node CSRs, as the control room's would."""

    def __init__(self, name: str = "edgenode test CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.UTC)
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - dt.timedelta(days=1))
                     .not_valid_after(now + dt.timedelta(days=365))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
                     .sign(self.key, hashes.SHA256()))

    def write(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def sign(self, csr_path: Path, out: Path, *, days: float = 90) -> Path:
        csr = x509.load_pem_x509_csr(csr_path.read_bytes())
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(csr.subject)
                .issuer_name(self.cert.subject).public_key(csr.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=days))
                .sign(self.key, hashes.SHA256()))
        out.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return out


def operator_key(directory: Path, key_id: str, role: str = "operator") -> Path:
    """A real `ctl keygen` key pair; returns the public file the installer gets."""
    private = directory / f"{key_id}.key"
    generate_key_file(private, key_id, role)
    return Path(f"{private}.pub")


def load_installed_config(path: Path) -> Config:
    """The written config as the node reads it, its /etc/edgenode files looked up under the
    test root (validation checks that keys_dir exists)."""
    root = path.parents[2]
    text = path.read_text().replace('"/etc/edgenode/', f'"{root}/etc/edgenode/')
    check = path.with_name("check.toml")
    check.write_text(text)
    try:
        return load_config(check)
    finally:
        check.unlink()
