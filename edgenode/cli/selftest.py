"""`edgenode selftest`: ask the running daemon to check every configured part."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from edgenode.cli.main import state_dir
from edgenode.daemon.control_socket import request
from edgenode.selftest import summary


def cmd_selftest(args: argparse.Namespace) -> int:
    sock = state_dir(args) / "control.sock"
    try:
        answer = request(sock, {"cmd": "selftest"}, timeout_s=30)
    except OSError as exc:
        print(f"selftest: no daemon answers at {sock} ({exc.strerror or exc}); is edgenode "
              "running? (systemctl status edgenode)", file=sys.stderr)
        return 2
    if not answer.get("ok", False) and "report" not in answer:
        print(f"selftest: {answer.get('error')}", file=sys.stderr)
        return 2
    report = answer["report"]
    if args.json:
        print(json.dumps(report))
    else:
        for c in report["checks"]:
            verdict = "PASS" if c["state"] == "ok" else "FAIL"
            print(f"{verdict}  {c['name']:<24} {c['reason']}")
        print(summary(report))
    return 0 if report["ok"] else 1


def register(add: Any) -> None:
    p = add("selftest", cmd_selftest,
            "check every configured part of the running daemon: PASS/FAIL per part")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
