"""`edgenode audit verify` and `edgenode audit export [--from ISO] [--to ISO]`."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgenode.control.audit import export, parse_head, verify
from edgenode.control.store import read_meta


def _audit_dir(args: argparse.Namespace) -> Path:
    from edgenode.cli.main import state_dir
    from edgenode.config import ConfigError, config_path, load_config

    configured = None
    if not args.state_dir:
        path = config_path(args.config)
        if path.exists():
            try:
                configured = load_config(path).storage.state_dir
            except ConfigError:
                configured = None
    return state_dir(args, configured) / "audit"


def _when(text: str) -> float:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an ISO 8601 time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def cmd_verify(args: argparse.Namespace) -> int:
    directory = _audit_dir(args)
    if not directory.is_dir():
        print(f"audit: no audit log at {directory}", file=sys.stderr)
        return 1
    # The last seq the node knows it wrote, kept outside the audit directory: a log that
    # ends before it lost its tail.
    store = directory.parent / "control" / "effector.db"
    known = parse_head(read_meta(store, "audit_head"))
    # The node's own copy of the anchor (when it keeps one): a forged anchor.json hides
    # removed head segments.
    anchor_text = read_meta(store, "audit_anchor")
    report = verify(directory, known, node_anchor=parse_head(anchor_text),
                    check_anchor=anchor_text is not None)
    span = (f"seq {report.first_seq}..{report.last_seq}" if report.records else "no records")
    if report.ok:
        print(f"audit: {directory}: chain intact: {report.records} records in "
              f"{report.segments} segment(s), {span}")
        return 0
    if report.broken:
        print(f"audit: {directory}: chain BROKEN at {report.broken} "
              f"({report.records} records verified before it)", file=sys.stderr)
    for gone in report.missing:
        print(f"audit: {directory}: records MISSING: {gone}", file=sys.stderr)
    return 1


def cmd_export(args: argparse.Namespace) -> int:
    directory = _audit_dir(args)
    if not directory.is_dir():
        print(f"audit: no audit log at {directory}", file=sys.stderr)
        return 1
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout  # noqa: SIM115
    count = 0
    try:
        for record in export(directory, args.start, args.end):
            out.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n")
            count += 1
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"audit: exported {count} record(s)", file=sys.stderr)
    return 0


def register(add: Any) -> None:
    parser = add("audit", lambda args: args.audit_func(args),
                 "check or export the effector's hash-chained audit log")
    sub = parser.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify_p = sub.add_parser("verify", help="check the chain across segments; exit 1 naming "
                              "the first broken record")
    verify_p.set_defaults(audit_func=cmd_verify)
    export_p = sub.add_parser("export", help="write records as JSON lines")
    export_p.add_argument("--from", dest="start", type=_when, help="ISO time (UTC if no zone)")
    export_p.add_argument("--to", dest="end", type=_when, help="ISO time, exclusive")
    export_p.add_argument("--output", "-o", help="file (default stdout)")
    export_p.set_defaults(audit_func=cmd_export)
    for action in (verify_p, export_p):
        # Also accepted after the action; SUPPRESS keeps the value given before it.
        action.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
        action.add_argument("--state-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
