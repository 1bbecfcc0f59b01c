"""Broker checks: connected (which, for mqtts://, means the TLS chain verified), and the days
left on the node's client certificate and CA file."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edgenode.selftest.result import FAIL, PASS, WARN, check, skip

PART = "broker"
CERT_WARN_DAYS = 30


def broker_checks(url: str, counters: dict[str, Any] | None,
                  cert_files: list[Path]) -> list[dict[str, Any]]:
    """`counters`: the link's, or None with the daemon stopped (the broker is not asked: a
    second client with the node's identity would fight the daemon's)."""
    out = []
    if counters is None:
        out.append(skip(PART, "broker.connection", "the daemon is stopped: the broker is "
                        "checked through the running daemon's link"))
    elif counters.get("connected"):
        tls = " (TLS verified)" if url.startswith("mqtts://") else ""
        out.append(check(PART, "broker.connection", PASS, value=f"connected{tls}",
                         expected="connected"))
    else:
        out.append(check(PART, "broker.connection", FAIL, value="not connected",
                         expected="connected", hint=f"broker {url} not reachable "
                         f"({counters.get('last_error') or 'no answer'}): check the network, "
                         "DNS, the broker's port and firewall, and for mqtts:// the CA and "
                         f"the clock; events wait in the outbox (backlog "
                         f"{counters.get('backlog', 0)})"))
    if not cert_files:
        out.append(skip(PART, "broker.certificate", "no CA or client certificate configured "
                        "(broker.ca_file, broker.cert_file)"))
        return out
    out.append(_certificates(cert_files))
    return out


def _certificates(paths: list[Path]) -> dict[str, Any]:
    from cryptography import x509

    expected = f">= {CERT_WARN_DAYS} days left"
    soonest: tuple[float, Path, str] | None = None
    for path in paths:
        try:
            certs = x509.load_pem_x509_certificates(path.read_bytes())
        except (OSError, ValueError) as exc:
            return check(PART, "broker.certificate", FAIL, value=None, unit="days",
                         expected=expected, hint=f"cannot read certificate {path}: {exc}; "
                         "check broker.ca_file and broker.cert_file (PEM files)")
        for cert in certs:
            days = (cert.not_valid_after_utc.timestamp() - time.time()) / 86400
            if soonest is None or days < soonest[0]:
                soonest = (days, path, cert.subject.rfc4514_string())
    if soonest is None:
        return skip(PART, "broker.certificate", "no certificate in the configured files")
    days, path, subject = soonest
    if days < 0:
        return check(PART, "broker.certificate", FAIL, value=days, unit="days",
                     expected=expected, hint=f"certificate '{subject}' in {path} expired "
                     f"{-days:.1f} days ago: TLS to the broker fails; renew it")
    if days < CERT_WARN_DAYS:
        return check(PART, "broker.certificate", WARN, value=days, unit="days",
                     expected=expected, hint=f"certificate '{subject}' in {path} expires in "
                     f"{days:.1f} days, then TLS to the broker fails: renew it")
    return check(PART, "broker.certificate", PASS, value=days, unit="days", expected=expected)
