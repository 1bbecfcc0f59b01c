"""Broker secrets: the password comes from a file or a systemd credential, never the config."""

from __future__ import annotations

import os
from pathlib import Path

from edgenode.config import BrokerSection


class LinkConfigError(ValueError):
    """A broker setting that cannot work; the message names the config key and the fix."""


def _read_secret(path: Path, key: str) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LinkConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    secret = text.rstrip("\r\n")
    if not secret:
        raise LinkConfigError(f"{key}: {path} is empty")
    return secret


def broker_password(broker: BrokerSection, environ: dict[str, str] | None = None) -> str | None:
    """broker.password_file, else broker.password_credential looked up in
    $CREDENTIALS_DIRECTORY (systemd LoadCredential=/SetCredentialEncrypted=), else None."""
    env = os.environ if environ is None else environ
    if broker.password_file is not None:
        return _read_secret(broker.password_file, "broker.password_file")
    if broker.password_credential is not None:
        directory = env.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise LinkConfigError(
                f"broker.password_credential = {broker.password_credential!r}: "
                "$CREDENTIALS_DIRECTORY is not set (add LoadCredential= to the service unit, "
                "or use broker.password_file)")
        return _read_secret(Path(directory) / broker.password_credential,
                            "broker.password_credential")
    return None
