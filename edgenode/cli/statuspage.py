"""`edgenode status-page`: serve the technician's read-only status page (the daemon starts it
when `[status_page] enabled`); `--hash-password` makes the `password_hash` line."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from edgenode.cli.main import report_config_error, state_dir
from edgenode.config import ConfigError, config_path, load_config
from edgenode.web.auth import hash_password


def cmd_status_page(args: argparse.Namespace) -> int:
    if args.hash_password:
        if sys.stdin.isatty():
            password = getpass.getpass("status page password: ")
        else:
            password = sys.stdin.readline().rstrip("\n")
        try:
            print(f'password_hash = "{hash_password(password)}"')
        except ValueError as exc:
            print(f"status-page: {exc}", file=sys.stderr)
            return 2
        return 0
    from edgenode.web.server import run

    try:
        config = load_config(config_path(args.config))
    except ConfigError as exc:
        return report_config_error(exc)
    run(config.status_page, state_dir(args, config.storage.state_dir) / "control.sock")
    return 0


def register(add: Any) -> None:
    p = add("status-page", cmd_status_page,
            "serve the technician's read-only status page ([status_page]; the daemon starts it)")
    p.add_argument("--hash-password", action="store_true",
                   help="read a password (prompt, or one line on stdin) and print the "
                   "[status_page] password_hash line for it")
