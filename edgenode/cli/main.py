"""`edgenode` command line. Each subcommand takes --config and --state-dir.

Exit codes: 0 success, 1 failure, 2 usage, 78 invalid config (EX_CONFIG).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from edgenode import __version__
from edgenode.config import ConfigError, config_path, load_config, load_relay_section
from edgenode.logs import setup_logging

EX_CONFIG = 78
TWIN_LINGER_S = 0.5  # the board's dropout (200 ms) plus margin
DEFAULT_STATE_DIR = Path("/var/lib/edgenode")
log = logging.getLogger("edgenode")

Command = Callable[[argparse.Namespace], int]


def state_dir(args: argparse.Namespace, configured: Path | None = None) -> Path:
    """--state-dir, then $STATE_DIRECTORY (systemd), then [storage] state_dir, then default."""
    if args.state_dir:
        return Path(args.state_dir)
    env = os.environ.get("STATE_DIRECTORY")
    if env:
        return Path(env.split(":")[0])
    return configured or DEFAULT_STATE_DIR


def report_config_error(exc: ConfigError) -> int:
    print(f"config invalid: {len(exc.problems)} problem(s)", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)
    return EX_CONFIG


def cmd_version(args: argparse.Namespace) -> int:
    print(f"edgenode {__version__}")
    return 0


def cmd_validate_config(args: argparse.Namespace) -> int:
    path = config_path(args.path or args.config)
    try:
        config = load_config(path)
    except ConfigError as exc:
        return report_config_error(exc)
    print(f"{path}: valid (site {config.node.site}, node {config.node.id}, "
          f"hardware {config.node.hardware})")
    return 0


def cmd_relay_safe(args: argparse.Namespace) -> int:
    from edgenode.control import relay_safe

    path = config_path(args.config)
    try:
        section = load_relay_section(path)
    except ConfigError as exc:
        return report_config_error(exc)
    return 0 if relay_safe(section) else 1


def cmd_run(args: argparse.Namespace) -> int:
    from edgenode.daemon.memory import tune_malloc

    tune_malloc()  # before the daemon's threads start
    from edgenode.daemon.node import Node

    twin = None
    if args.sim:
        from edgenode.cli.sim import prepare_sim_run

        sim_state = Path(args.state_dir or "state")
        extra: dict[str, dict[str, object]] = {}
        if args.cot:
            extra["cot"] = {"url": args.cot}
        if args.sapient:
            extra["sapient"] = sapient_section(args.sapient)
        if args.second_drone:
            extra["acoustic"] = {"second_drone": True}
        path, twin = prepare_sim_run(Path(args.sim), sim_state, args.broker, args.speed,
                                     args.fault or [], extra_sections=extra, mast=args.mast,
                                     sky_epoch=args.sky_epoch)
        args.state_dir = str(sim_state)
        log.info("run --sim: twin pid %d, config %s; command it with: edgenode ctl --broker %s "
                 "--key %s", twin.pid, path, args.broker, sim_state / "operator.key")
    else:
        if args.sapient:
            log.error("run: --sapient goes with --sim; otherwise set [sapient] host and port "
                      "in the config")
            return 2
        path = config_path(args.config)
    try:
        config = load_config(path)
    except ConfigError as exc:
        return report_config_error(exc)
    node = Node(config, path, state_dir(args, config.storage.state_dir))
    log.info("edgenode %s: site %s node %s starting", __version__, config.node.site,
             config.node.id)
    try:
        return node.run()
    finally:
        if twin is not None:
            _stop_twin(twin)


def sapient_section(host_port: str) -> dict[str, object]:
    """`--sapient HOST:PORT` as a [sapient] section (an IPv6 address in brackets)."""
    host, sep, port = host_port.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"--sapient {host_port!r}: expected HOST:PORT, e.g. 127.0.0.1:5020")
    return {"host": host.strip("[]"), "port": int(port)}


def _stop_twin(twin: subprocess.Popen[bytes]) -> None:
    """Let the twin record the relay board dropping, then stop it."""
    time.sleep(TWIN_LINGER_S)
    twin.terminate()
    try:
        twin.wait(5)
    except subprocess.TimeoutExpired:
        twin.kill()


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="config file (default $EDGENODE_CONFIG or "
                        "/etc/edgenode/edgenode.toml)")
    parser.add_argument("--state-dir", help="state directory (default $STATE_DIRECTORY, "
                        "[storage] state_dir, /var/lib/edgenode)")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", default="text", choices=["text", "json"])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgenode", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Command, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        _common(p)
        p.set_defaults(func=func)
        return p

    p = add("run", cmd_run, "run the daemon")
    p.add_argument("--sim", metavar="SCENARIO",
                   help="run on the digital twin: a scenario file or the name of one in "
                   "hardware/scenarios (the config is derived from it)")
    p.add_argument("--broker", default="mqtt://127.0.0.1:1883",
                   help="with --sim: the MQTT broker URL (default %(default)s)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="with --sim: run scenario and sensors this many times faster")
    p.add_argument("--fault", action="append", metavar="NAME",
                   help="with --sim: inject a fault (repeatable), e.g. radar-unplugged")
    p.add_argument("--cot", metavar="URL",
                   help="with --sim: send CoT to a TAK server or group (tcp://HOST:PORT, "
                   "udp://239.2.3.1:6969)")
    p.add_argument("--sapient", metavar="HOST:PORT",
                   help="with --sim: also report to this SAPIENT peer (docs/sapient.md)")
    p.add_argument("--second-drone", action="store_true",
                   help="with --sim: also look for a second drone beside one heard nearby "
                   "([acoustic] second_drone; docs/detection.md)")
    from edgenode.cli.sim import add_sky_options

    add_sky_options(p, prefix="with --sim: ")
    p = add("validate-config", cmd_validate_config,
            "check a config file and list every problem (exit 78 when invalid)")
    p.add_argument("path", nargs="?", help="config file (default: --config)")
    add("relay-safe", cmd_relay_safe,
        "drive the jammer relay OFF and release it (reads only [relay])")
    add("version", cmd_version, "print the version")
    for module_name in COMMAND_MODULES:
        _register(module_name, add)
    return parser


# Modules that add subcommands: each has `register(add)`, where `add(name, func, help)` returns
# the subcommand's argparse parser (with --config and --state-dir already on it).
COMMAND_MODULES = (
    "edgenode.cli.sim",
    "edgenode.cli.replay",
    "edgenode.cli.ctl",
    "edgenode.cli.audit",
    "edgenode.cli.selftest",
    "edgenode.cli.statuspage",
    "edgenode.cli.adsb",
    "edgenode.cli.provision",
    "edgenode.cli.central",
)


def _register(module_name: str, add: Callable[..., argparse.ArgumentParser]) -> None:
    """Offer a module's commands; a module not written yet offers none (no placeholders)."""
    import importlib

    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return
        raise
    module.register(add)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # never a traceback for the person at the mast
        log.error("%s failed: %s: %s", args.command, type(exc).__name__, exc)
        log.debug("traceback", exc_info=True)
        return 1
