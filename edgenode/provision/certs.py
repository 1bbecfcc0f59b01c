"""The node's TLS key, its certificate request, and the signed certificate's checks."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edgenode.provision.errors import ProvisionError
from edgenode.provision.files import Staged, owner_ids
from edgenode.provision.identity import NodeLayout


def new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: small, fast on a Pi, accepted by every MQTT broker's TLS stack.
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def csr_pem(key: ec.EllipticCurvePrivateKey, common_name: str, site: str) -> bytes:
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edgenode"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, site),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])
    csr = (x509.CertificateSigningRequestBuilder().subject_name(subject)
           .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.CLIENT_AUTH]),
                          critical=False)
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM)


def fingerprint(public_key: object) -> str:
    """SHA-256 of the public key (SubjectPublicKeyInfo, DER), as colon-separated hex."""
    der = public_key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.sha256(der).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def read_node_key(layout: NodeLayout) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(layout.key.read_bytes(), password=None)
    except OSError as exc:
        raise ProvisionError(f"node key {layout.key}: cannot read: {exc.strerror} (provision "
                             "the node first)") from None
    except ValueError as exc:
        raise ProvisionError(f"node key {layout.key}: not a PEM private key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ProvisionError(f"node key {layout.key}: not an EC key")
    return key


@dataclass(frozen=True)
class CertInfo:
    path: Path
    subject: str
    issuer: str
    not_after: dt.datetime
    fingerprint: str

    def __str__(self) -> str:
        return (f"certificate {self.path}: {self.subject}, issued by {self.issuer}, valid until "
                f"{self.not_after:%Y-%m-%d %H:%M} UTC; node key {self.fingerprint}")


def _chain_to_ca(cert: x509.Certificate, cas: list[x509.Certificate], source: str) -> None:
    """Walk issuer links through the CA file up to a self-signed root, checking signatures."""
    current = cert
    for _ in range(len(cas) + 1):
        issuers = [ca for ca in cas if ca.subject == current.issuer]
        for issuer in issuers:
            try:
                current.verify_directly_issued_by(issuer)
            except (ValueError, TypeError, InvalidSignature):
                continue
            if issuer.subject == issuer.issuer:
                return
            current = issuer
            break
        else:
            raise ProvisionError(f"{source}: does not chain to the CA in the node's ca.pem "
                                 f"(issuer {current.issuer.rfc4514_string()} not found there, "
                                 "or its signature does not verify)")
    raise ProvisionError(f"{source}: the CA file's chain does not end in a self-signed root")


def install_cert(cert_file: Path, layout: NodeLayout, *, owner: str | None = None,
                 now: dt.datetime | None = None) -> CertInfo:
    """Check `cert_file` is for the node key and chains to its CA, then install it."""
    option = f"--install-cert {cert_file}"
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except OSError as exc:
        raise ProvisionError(f"{option}: cannot read: {exc.strerror}") from None
    except ValueError:
        raise ProvisionError(f"{option}: not a PEM certificate") from None
    key = read_node_key(layout)
    mine, theirs = fingerprint(key.public_key()), fingerprint(cert.public_key())
    if mine != theirs:
        raise ProvisionError(f"{option}: the certificate is for another key (its key {theirs}, "
                             f"this node's {layout.key} {mine}): was it signed from this "
                             "node's node.csr?")
    try:
        cas = x509.load_pem_x509_certificates(layout.ca.read_bytes())
    except (OSError, ValueError) as exc:
        raise ProvisionError(f"CA {layout.ca}: cannot read a certificate from it: {exc}") from None
    _chain_to_ca(cert, cas, option)
    now = now or dt.datetime.now(dt.UTC)
    if cert.not_valid_after_utc <= now:
        # Only the end date is checked: a Pi without network may not know the time yet, and a
        # start date "in the future" would then refuse a good certificate.
        raise ProvisionError(f"{option}: expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} "
                             "UTC")
    _, gid = owner_ids(owner)
    with Staged() as staged:
        staged.add(layout.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644, gid=gid)
        staged.commit()
    return CertInfo(layout.cert, cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(),
                    cert.not_valid_after_utc, mine)
