"""What identity a node has now: `edgenode provision --status`, and the certificate's expiry for
whoever reports health."""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from edgenode.provision.certs import fingerprint, read_node_key
from edgenode.provision.errors import ProvisionError
from edgenode.provision.identity import NodeLayout

EXPIRY_WARNING_DAYS = 30


@dataclass(frozen=True)
class CertExpiry:
    not_after: dt.datetime
    days_left: float

    @property
    def state(self) -> str:
        if self.days_left <= 0:
            return "expired"
        return "expiring" if self.days_left < EXPIRY_WARNING_DAYS else "ok"


def cert_expiry(path: Path, now: dt.datetime | None = None) -> CertExpiry | None:
    """The certificate's end date and days left; None when there is no readable certificate."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None
    now = now or dt.datetime.now(dt.UTC)
    left = (cert.not_valid_after_utc - now).total_seconds() / 86400
    return CertExpiry(cert.not_valid_after_utc, left)


def status_lines(layout: NodeLayout) -> list[str]:
    """One line per part of the identity; raises ProvisionError when there is none."""
    try:
        node = tomllib.loads(layout.config.read_text(encoding="utf-8")).get("node", {})
    except OSError as exc:
        raise ProvisionError(f"not provisioned: {layout.config}: {exc.strerror}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ProvisionError(f"{layout.config}: unreadable: {exc}") from None
    lines = [f"site {node.get('site', '?')} node {node.get('id', '?')} "
             f"({node.get('hardware', '?')}), config {layout.config}"]
    try:
        key = read_node_key(layout)
        lines.append(f"node key    {layout.key}, SHA-256 {fingerprint(key.public_key())}")
    except ProvisionError as exc:
        lines.append(f"node key    MISSING: {exc}")
    expiry = cert_expiry(layout.cert)
    if expiry is None:
        lines.append(f"certificate none at {layout.cert}: have {layout.csr} signed, then "
                     "edgenode provision --install-cert CERT")
    else:
        lines.append(f"certificate {layout.cert}: valid until {expiry.not_after:%Y-%m-%d} "
                     f"({expiry.days_left:.0f} days left, {expiry.state})")
    operators = sorted(p.stem for p in layout.operators.glob("*.pub")) \
        if layout.operators.is_dir() else []
    lines.append(f"operators   {', '.join(operators) or 'none'}")
    return lines
