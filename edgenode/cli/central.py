"""`edgenode central` (one instance of the control room's fusion service) and
`edgenode fleet-sim` (many lightweight nodes for scale). docs/fleet.md says how to run them."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
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
    print(json.dumps(central.stats()), flush=True)
    return 0


def cmd_fleet_sim(args: argparse.Namespace) -> int:
    from edgenode.central.fleetsim import FleetSim

    sim = FleetSim(args.broker, nodes=args.nodes, drones=args.drones, seconds=args.seconds,
                   nodes_per_site=args.nodes_per_site, rate_hz=args.rate_hz,
                   noise_deg=args.noise_deg, mqtt_version=args.mqtt_version, seed=args.seed,
                   events_log=Path(args.events_log) if args.events_log else None)
    result = sim.run(_stop_on_signals())
    print(json.dumps(result), flush=True)
    return 0 if result["acked"] >= result["events"] else 1


def register(add: Any) -> None:
    p = add("central", cmd_central, "run one instance of the central fusion service; "
            "prints {events, duplicates, lost, fused_tracks, p99_latency_ms} when stopped")
    p.add_argument("--broker", required=True, help="MQTT broker URL, e.g. mqtt://127.0.0.1:1883")
    p.add_argument("--group", default="central",
                   help="shared-subscription group: instances in one group split the events")
    p.add_argument("--mqtt-version", default="5", choices=["5", "3.1.1"])
    p.add_argument("--sites", help="with --mqtt-version 3.1.1: the sites this instance serves "
                   "(comma-separated)")
    p.add_argument("--instance", help="client id of this instance (default: generated)")
    p.add_argument("--events-log", help="append the event_id of every event taken here")
    p.add_argument("--session-expiry-s", type=int, default=0,
                   help="keep this instance's MQTT session (and its share of the events) this "
                   "long after a crash, for a restart to resume (needs --instance); 0: the "
                   "share moves to the other instances at once (docs/fleet.md)")
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
