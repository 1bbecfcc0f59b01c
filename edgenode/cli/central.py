"""`edgenode central` (one instance of the control room's fusion service) and
`edgenode fleet-sim` (many lightweight nodes for scale). docs/fleet.md says how to run them."""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


def cmd_central(args: argparse.Namespace) -> int:
    from edgenode.central.service import Central

    sites = [s for s in (args.sites or "").split(",") if s] or None
    central = Central(args.broker, group=args.group, mqtt_version=args.mqtt_version,
                      sites=sites, instance=args.instance,
                      session_expiry_s=args.session_expiry_s,
                      events_log=Path(args.events_log) if args.events_log else None)
    stop = _stop_on_signals()
    central.start()
    if not central.wait_ready(30):
        log.error("central: no connection to %s: %s", args.broker,
                  central.client.last_error or "timed out")
    else:
        log.info("central: instance %s ready on %s (group %s)", central.instance, args.broker,
                 args.group)
    stop.wait()
    central.stop()
    log.warning("central: %s: intake lag p99 %s ms (node publish -> this instance)",
                central.instance, central.intake_lag_p99_ms())
    print(json.dumps(central.stats()), flush=True)
    return 0


# One event loop (one thread) per process; ~500 nodes at 1 Hz take ~10 % of a core there, so
# a process per 1000 nodes leaves room before its loop, not the broker, sets the latency.
NODES_PER_PROCESS = 1000


def cmd_fleet_sim(args: argparse.Namespace) -> int:
    from edgenode.central.fleetsim import FleetSim

    processes = args.processes or max(1, math.ceil(args.nodes / NODES_PER_PROCESS))
    if processes > 1 and args.shard is None:
        return _fleet_in_processes(args, processes)
    shard = (0, 1)
    if args.shard:
        k, n = args.shard.split("/")
        shard = (int(k), int(n))
    sim = FleetSim(args.broker, nodes=args.nodes, drones=args.drones, seconds=args.seconds,
                   nodes_per_site=args.nodes_per_site, rate_hz=args.rate_hz,
                   noise_deg=args.noise_deg, mqtt_version=args.mqtt_version, seed=args.seed,
                   events_log=Path(args.events_log) if args.events_log else None,
                   shard=shard)
    result = sim.run(_stop_on_signals())
    print(json.dumps(result), flush=True)
    return 0 if result["acked"] >= result["events"] else 1


def _fleet_in_processes(args: argparse.Namespace, processes: int) -> int:
    """Run the fleet as `processes` shards of this command; sum their counts and logs."""
    children = []
    for k in range(processes):
        argv = [sys.executable, "-m", "edgenode", "fleet-sim", "--shard", f"{k}/{processes}",
                "--log-level", args.log_level]
        for name in ("broker", "nodes", "drones", "seconds", "nodes_per_site", "rate_hz",
                     "noise_deg", "mqtt_version", "seed"):
            argv += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
        if args.events_log:
            argv += ["--events-log", f"{args.events_log}.{k}"]
        children.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True))
    stop = _stop_on_signals()
    results = []
    for child in children:
        while child.poll() is None and not stop.is_set():
            time.sleep(0.2)
        if stop.is_set():
            child.send_signal(signal.SIGINT)
        out, _ = child.communicate()
        lines = out.strip().splitlines()
        if child.returncode not in (0, 1) or not lines:
            log.error("fleet-sim: shard %s failed (exit %s)", child.args[4], child.returncode)
            return 1
        results.append(json.loads(lines[-1]))
    if args.events_log:
        with open(args.events_log, "a") as merged:
            for k in range(processes):
                part = Path(f"{args.events_log}.{k}")
                merged.write(part.read_text())
                part.unlink()
    total = {key: sum(r[key] for r in results) for key in ("events", "acked", "nodes")}
    total.update(sites=results[0]["sites"], drones=results[0]["drones"],
                 seconds=max(r["seconds"] for r in results), processes=processes)
    print(json.dumps(total), flush=True)
    return 0 if total["acked"] >= total["events"] else 1


def register(add: Any) -> None:
    p = add("central", cmd_central, "run one instance of the central fusion service; "
            "prints {events, duplicates, lost, fused_tracks, p99_latency_ms, stood_in, "
            "stood_in_p99_latency_ms} when stopped")
    p.add_argument("--broker", required=True, help="MQTT broker URL, e.g. mqtt://127.0.0.1:1883")
    p.add_argument("--group", default="central",
                   help="shared-subscription group: instances in one group split the events")
    p.add_argument("--mqtt-version", default="5", choices=["5", "3.1.1"])
    p.add_argument("--sites", help="with --mqtt-version 3.1.1: the sites this instance serves "
                   "(comma-separated)")
    p.add_argument("--instance", help="client id of this instance (default: generated)")
    p.add_argument("--events-log", help="journal: append the event_id of every event taken "
                   "here (written before the broker gets our acknowledgement); a restart reads "
                   "it back, so a redelivered event counts as a duplicate, not twice")
    p.add_argument("--session-expiry-s", type=int, default=0,
                   help="keep this instance's MQTT session (and its share of the events) this "
                   "long after a crash, for a restart to resume (needs --instance); a live "
                   "instance stands in for it meanwhile (needs --events-log on one host); 0: "
                   "the share moves to the other instances at once (docs/fleet.md)")
    p = add("fleet-sim", cmd_fleet_sim, "simulate a fleet of nodes around shared drones; "
            "prints the number of events published")
    p.add_argument("--broker", required=True, help="MQTT broker URL")
    p.add_argument("--nodes", type=int, default=20)
    p.add_argument("--drones", type=int, default=4)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--nodes-per-site", type=int, default=5)
    p.add_argument("--rate-hz", type=float, default=1.0, help="events per node track per second")
    p.add_argument("--noise-deg", type=float, default=2.0, help="bearing noise, one sigma")
    p.add_argument("--mqtt-version", default="5", choices=["5", "3.1.1"])
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--events-log", help="append the event_id of every event published")
    p.add_argument("--processes", type=int,
                   help=f"split the fleet over this many processes (default: one per "
                   f"{NODES_PER_PROCESS} nodes)")
    p.add_argument("--shard", help=argparse.SUPPRESS)  # k/n: set by --processes
