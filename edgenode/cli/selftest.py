"""`edgenode selftest`: ask the running daemon to check every configured part (or one, with
--part) and print PASS/WARN/FAIL/SKIP per check with its value, expected range and hint.

Exit 0 when nothing FAILs, 1 on any FAIL, 2 when the self-test could not run.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from edgenode.cli.main import report_config_error, state_dir
from edgenode.daemon.control_socket import request
from edgenode.selftest import PART_NAMES, UnknownPart, exit_code

CANNOT_RUN = 2


def cmd_selftest(args: argparse.Namespace) -> int:
    if args.local:
        return _local(args)
    sock = state_dir(args) / "control.sock"
    message: dict[str, Any] = {"cmd": "selftest"}
    if args.part:
        message["parts"] = args.part
    if args.pulse_relay:
        message["pulse_relay"] = True
    try:
        answer = request(sock, message, timeout_s=60)
    except (OSError, ValueError) as exc:
        print(f"selftest: no daemon answers at {sock} ({getattr(exc, 'strerror', None) or exc})"
              "; is edgenode running? (systemctl status edgenode); with the daemon stopped, "
              "`edgenode selftest --local` opens the parts itself", file=sys.stderr)
        return CANNOT_RUN
    if not answer.get("ok", False) or "report" not in answer:
        print(f"selftest: {answer.get('error')}", file=sys.stderr)
        return CANNOT_RUN
    return _print(args, answer["report"])


def _local(args: argparse.Namespace) -> int:
    """The daemon stopped: open the parts here (never while a daemon answers: it owns them)."""
    from edgenode.config import ConfigError, config_path, load_config
    from edgenode.daemon.standalone import StandaloneParts

    path = config_path(args.config)
    try:
        config = load_config(path)
    except ConfigError as exc:
        return report_config_error(exc)
    state = state_dir(args, config.storage.state_dir)
    try:
        request(state / "control.sock", {"cmd": "status"}, timeout_s=2)
    except (OSError, ValueError):
        pass  # nobody there: the parts are ours for a few seconds
    else:
        print(f"selftest: the daemon answers at {state / 'control.sock'} and owns the parts; "
              "run `edgenode selftest` without --local", file=sys.stderr)
        return CANNOT_RUN
    if args.pulse_relay:
        print("selftest: --pulse-relay needs the running daemon (its effector moves the relay)",
              file=sys.stderr)
        return CANNOT_RUN
    try:
        report = StandaloneParts(config, path, state).run(args.part)
    except UnknownPart as exc:
        print(f"selftest: {exc}", file=sys.stderr)
        return CANNOT_RUN
    return _print(args, report)


def _print(args: argparse.Namespace, report: dict[str, Any]) -> int:
    if args.json:
        print(json.dumps(report))
    else:
        print(render(report))
    return exit_code(report)


def _value(c: dict[str, Any]) -> str:
    value = c["value"]
    if value is None:
        return "-"
    text = f"{value:.1f}" if isinstance(value, float) else str(value)
    return f"{text} {c['unit']}".strip()


def render(report: dict[str, Any]) -> str:
    """One line per check: result, name, value, expected; the hint below anything not PASS."""
    lines = []
    for c in report["checks"]:
        lines.append(f"{c['result']:<5} {c['name']:<28} {_value(c):<22} "
                     f"(expected {c['expected'] or '-'})")
        if c["result"] != "PASS":
            lines.append(f"      -> {c['hint']}")
    counts = report["counts"]
    lines.append(f"{counts['PASS']} passed, {counts['WARN']} warned, {counts['FAIL']} failed, "
                 f"{counts['SKIP']} skipped")
    return "\n".join(lines)


def register(add: Any) -> None:
    p = add("selftest", cmd_selftest,
            "check every configured part of the running daemon: PASS/WARN/FAIL/SKIP per "
            "check with a hint; exit 0 when nothing fails, 1 on a FAIL, 2 when it cannot run")
    p.add_argument("--json", action="store_true",
                   help="print the report as one JSON document (report_version 2)")
    p.add_argument("--part", action="append", metavar="NAME",
                   help=f"check only this part (repeatable): {', '.join(PART_NAMES)}, or "
                   "i2c:NAME for one I2C part")
    p.add_argument("--local", action="store_true",
                   help="with the daemon stopped: open the parts here (read-only; the relay "
                   "held OFF) instead of asking the daemon; needs --config")
    p.add_argument("--pulse-relay", action="store_true",
                   help="also pulse the jammer relay for 100 ms and time its aux contact: only "
                   "with the key switch at TEST and the effector SAFE; audited")
