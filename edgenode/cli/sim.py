"""`edgenode simulate`: run the digital twin; and `prepare_sim_run` for `edgenode run --sim`.

The twin is its own process: the daemon reaches it only through its ordinary backends (the
radar's pty with the real serial driver, and the `sim` backends over the twin's socket), so
nothing in the daemon knows it is being simulated except its config.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hal.sim.scenario import (
    FAULT_NAMES,
    ScenarioError,
    load_hardware,
    load_scenario,
    resolve_scenario,
)

log = logging.getLogger(__name__)

ENDPOINTS_TIMEOUT_S = 20.0
DEMO_KEY_ID = "demo-operator"
DEMO_ADMIN_KEY_ID = "demo-admin"
# Set to 1 to have `edgenode run --sim` also make STATE/admin.key (role admin) and trust it,
# for `edgenode ctl --key STATE/admin.key reset` (the FAULT paths) and keys-update demos.
ADMIN_KEY_ENV = "EDGENODE_SIM_ADMIN_KEY"


def cmd_simulate(args: argparse.Namespace) -> int:
    from hal.sim.run import run_twin

    try:
        check_sky(args.scenario, args.mast, args.sky_epoch)
    except ScenarioError as exc:
        print(f"scenario invalid: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 78
    except ValueError as exc:
        print(f"simulate: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path(args.state_dir or "state") / "sim"
    return run_twin(args.scenario, out, speed=args.speed, faults=args.fault or [],
                    with_parent=args.with_parent, linger_s=args.linger_s, mast=args.mast,
                    sky_epoch=args.sky_epoch)


def check_sky(scenario: str | Path, mast: str | None, sky_epoch: float | None) -> None:
    """Before a twin starts: the scenario is valid (ScenarioError, naming file and keys), the
    mast is one of its `[[masts]]` (or none is asked for and it has none), and the sky's
    epoch is not in the future (ValueError saying which and why)."""
    scenario_model = load_scenario(scenario)
    scenario_model.mast_pose(mast)
    if sky_epoch is not None and sky_epoch > time.time():
        raise ValueError(f"--sky-epoch {sky_epoch:.3f} is in the future; give a time already "
                         "past (e.g. when the first twin was started), the same to every twin")


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def register(add: Any) -> None:
    p = add("simulate", cmd_simulate,
            "run the digital twin of a scenario (hardware/scenarios/) for a daemon to use")
    p.add_argument("--scenario", required=True,
                   help="scenario file, or a shipped scenario's name (one-drone-crossing)")
    p.add_argument("--speed", type=_positive, default=1.0,
                   help="run scenario and sensors this many times faster (relay board: wall "
                   "clock)")
    p.add_argument("--fault", action="append", choices=FAULT_NAMES,
                   help="inject a fault from the start (repeatable)")
    p.add_argument("--out", help="directory for endpoints.json, truth.jsonl, the socket and "
                   "the pty links (default STATE_DIR/sim)")
    p.add_argument("--with-parent", action="store_true",
                   help="belong to the parent process: leave Ctrl-C to it, and stop a few "
                   "seconds after it is gone")
    p.add_argument("--linger-s", type=float, default=3.0,
                   help="with --with-parent: seconds to keep recording after the parent dies")
    add_sky_options(p)


def add_sky_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """--mast and --sky-epoch: several twins (one per mast) sharing one scenario's sky."""
    p.add_argument("--mast", metavar="NAME",
                   help=f"{prefix}play this one of the scenario's [[masts]] (its place, "
                   "heading and node id); needed when the scenario has masts")
    p.add_argument("--sky-epoch", type=float, metavar="UNIX_TIME",
                   help=f"{prefix}the wall-clock time scenario time 0 maps to (default: the "
                   "twin's start); give every mast's twin the same one to share the sky")


# -- edgenode run --sim ---------------------------------------------------------------------
def demo_operator_key(state_dir: Path) -> str:
    """The demo operator's public key (raw Ed25519, base64); the key file is made on first
    use in the operator tool's format, so `edgenode ctl --key STATE/operator.key` works."""
    return _demo_key(state_dir / "operator.key", DEMO_KEY_ID, "operator")


def demo_admin_key(state_dir: Path) -> str:
    """Like demo_operator_key, for STATE/admin.key with role admin (may `reset`)."""
    return _demo_key(state_dir / "admin.key", DEMO_ADMIN_KEY_ID, "admin")


def _demo_key(path: Path, key_id: str, role: str) -> str:
    from edgenode.control.keys import generate_key_file, load_key_file

    if not path.exists():
        generate_key_file(path, key_id, role, demo=True)
        log.info("sim: demo %s key created: %s (use: edgenode ctl --key %s)", role, path, path)
    return load_key_file(path).public_b64


def sim_config(endpoints: dict[str, Any], broker_url: str, public_key: str,
               admin_public_key: str | None = None) -> dict[str, Any]:
    """A node config for the twin described by endpoints.json; with admin_public_key, the
    demo admin key is trusted too."""
    hardware = load_hardware(endpoints["hardware"])
    pose = endpoints["node"]
    socket_path = endpoints["socket"]
    relay = dict(hardware["relay"]) | endpoints["relay"]
    relay.pop("chip_label", None)
    relay |= {"backend": "sim", "device": socket_path}
    effector = {k: v for k, v in hardware.get("effector", {}).items() if k != "keys"}
    keys = [{"id": DEMO_KEY_ID, "role": "operator", "public_key": public_key, "demo": True}]
    if admin_public_key is not None:
        keys.append({"id": DEMO_ADMIN_KEY_ID, "role": "admin", "public_key": admin_public_key,
                     "demo": True})
    effector |= {"enabled": True, "keys": keys}
    config: dict[str, Any] = {
        # A mast of a shared sky is a node of its own, named after it, at the one site.
        "node": {"site": "sim", "id": endpoints.get("mast") or "twin-01",
                 "hardware": endpoints["hardware"],
                 "latitude_deg": pose["latitude_deg"], "longitude_deg": pose["longitude_deg"],
                 "altitude_m": pose["altitude_m"],
                 "mast_heading_deg": pose["mast_heading_deg"]},
        "broker": {"url": broker_url},
        "relay": relay,
        "effector": effector,
        "sensors": {"system_backend": "sim", "i2c_backend": "sim", "i2c_device": socket_path,
                    "system_device": socket_path,
                    "i2c": endpoints["i2c"]},
    }
    radar = hardware.get("radar")
    if radar and endpoints.get("radar_data"):
        radar = dict(radar) | {"data_port": endpoints["radar_data"],
                               "cli_port": endpoints["radar_cli"],
                               "mount_height_m": pose["mast_height_m"],
                               "frame_period_ms": endpoints["radar_frame_period_ms"]}
        radar.pop("chirp_config", None)
        config["radar"] = radar
    acoustic = hardware.get("acoustic")
    if acoustic:
        config["acoustic"] = dict(acoustic) | {"backend": "sim", "device": socket_path}
    if endpoints.get("adsb"):
        # The twin's manned aircraft on its Beast port: the airspace rules apply (fail safe).
        config["airspace"] = {"adsb_source": endpoints["adsb"]}
    if endpoints.get("remoteid"):
        # The twin's broadcasting drones: one socket receiver per link type.
        config["remoteid"] = {"receivers": [
            {"backend": "socket", "device": path, "linktype": int(linktype)}
            for linktype, path in endpoints["remoteid"].items()]}
    return config


def prepare_sim_run(scenario: Path, state_dir: Path, broker_url: str, speed: float,
                    faults: list[str], *, admin_key: bool | None = None,
                    extra_sections: dict[str, dict[str, Any]] | None = None,
                    mast: str | None = None, sky_epoch: float | None = None,
                    ) -> tuple[Path, subprocess.Popen[bytes]]:
    """Start the twin as a child process and write a node config that uses it.

    Returns (config path, the twin's process). The twin writes to state_dir/sim (truth.jsonl,
    endpoints.json, twin.log); it stops a few seconds after the calling process is gone.
    `admin_key` (default: $EDGENODE_SIM_ADMIN_KEY = 1) also trusts STATE/admin.key as admin.
    `extra_sections` are merged into the node config (e.g. {"cot": {"url": ...}} for --cot,
    {"sapient": {...}} for --sapient). `mast` and `sky_epoch`: the twin plays that one of the
    scenario's `[[masts]]` in a sky whose time 0 is that wall-clock time (check_sky).
    """
    if admin_key is None:
        admin_key = os.environ.get(ADMIN_KEY_ENV) == "1"
    scenario = resolve_scenario(scenario)
    check_sky(scenario, mast, sky_epoch)  # a bad scenario fails here, naming file and key
    sim_dir = state_dir / "sim"
    sim_dir.mkdir(parents=True, exist_ok=True)
    endpoints_path = sim_dir / "endpoints.json"
    endpoints_path.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "edgenode", "simulate", "--scenario", str(scenario),
            "--out", str(sim_dir), "--speed", repr(speed), "--with-parent"]
    for fault in faults:
        argv += ["--fault", fault]
    if mast is not None:
        argv += ["--mast", mast]
    if sky_epoch is not None:
        argv += ["--sky-epoch", repr(sky_epoch)]
    log_path = sim_dir / "twin.log"
    with log_path.open("ab") as log_fh:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_fh,
                                 stderr=subprocess.STDOUT)
    deadline = time.monotonic() + ENDPOINTS_TIMEOUT_S
    while not endpoints_path.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            if child.poll() is None:
                child.terminate()
                child.wait(5)
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"sim: twin for '{scenario}' did not start (exit "
                               f"{child.returncode}); {log_path}:\n{tail}")
        time.sleep(0.05)
    endpoints = json.loads(endpoints_path.read_text())
    config = sim_config(endpoints, broker_url, demo_operator_key(state_dir),
                        demo_admin_key(state_dir) if admin_key else None)
    for section, body in (extra_sections or {}).items():
        config[section] = dict(config.get(section, {})) | body
    config_path = state_dir / "sim-node.toml"
    config_path.write_text(f"# Written by edgenode run --sim for {scenario}; "
                           "regenerated each run.\n" + to_toml(config))
    return config_path, child


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(config: dict[str, Any]) -> str:
    """Sections of scalars, and lists of tables (`[[sensors.i2c]]`)."""
    out: list[str] = []
    for section, body in config.items():
        out.append(f"\n[{section}]")
        tables = []
        for key, value in body.items():
            if isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
                tables.append((key, value))
            elif value is not None:
                out.append(f"{key} = {_value(value)}")
        for key, items in tables:
            for item in items:
                out.append(f"\n[[{section}.{key}]]")
                out.extend(f"{k} = {_value(v)}" for k, v in item.items() if v is not None)
    return "\n".join(out).lstrip() + "\n"
