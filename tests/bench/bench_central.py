"""Bench: the central service at fleet scale. 500 simulated nodes (100 sites of 5, 100
drones) on one Mosquitto, two `edgenode central` instances on one shared subscription, then
the same with one instance SIGKILLed and restarted mid-run. Run by `make bench`.

Prints events/s per instance and fused-track latency p99 (from the node's publish to the
fused track's publish). Targets: nothing lost or processed twice (against the simulator's own
log) in both runs; p99 <= 250 ms in both. Exits 1 when one is missed. In the kill run the
instances keep resumable sessions (--session-expiry-s 60): Mosquitto queues the dead
instance's share in its session, and the survivor stands in for that session until the
instance is back (edgenode/central/standin.py), so the killed instance's share is fused
meanwhile: its p99 (the stand-in's, and the restarted instance's) is gated too; with
--clean-kill, a run on clean sessions shows what those lose. docs/fleet.md.

    .venv/bin/python tests/bench/bench_central.py [--nodes 500] [--seconds 30] [--broker URL]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as paho  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from tests.bench.targets import Targets  # noqa: E402
from tests.conftest import EDGENODE, Mosquitto, terminate  # noqa: E402

P99_TARGET_MS = 250.0


def central(url: str, name: str, log: Path, expiry_s: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen([*EDGENODE, "central", "--broker", url, "--instance", name,
                             "--events-log", str(log), "--log-level", "warning",
                             "--session-expiry-s", str(expiry_s)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc


def stop(proc: subprocess.Popen[str]) -> dict:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    stats = json.loads(out.strip().splitlines()[-1])
    lag = [line.split("intake lag p99 ")[1].split(" ms")[0] for line in err.splitlines()
           if "intake lag p99" in line]
    stats["intake_p99_ms"] = lag[-1] if lag else "?"
    stats["stand_in"] = [line.split("central: ", 1)[1] for line in err.splitlines()
                         if "standing in for" in line or "from a stand-in" in line]
    return stats


targets = Targets("bench_central")  # every run checks its figures here


class IntakeProbe:
    """A passive subscriber to every node's events (QoS 0: no acknowledgements to send), in
    this process: node publish -> broker -> a consumer doing nothing else. Tells the fleet
    simulator's and the broker's share of the latency from the central instances' own (an
    instance's "intake" also counts the time an event waits behind its other messages)."""

    def __init__(self, url: str):
        host, port = url.rsplit("/", 1)[1].rsplit(":", 1)
        self.lags: list[float] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-probe",
                                  protocol=paho.MQTTv5)
        self.client.on_message = self._on
        self.client.on_connect = lambda c, *_: c.subscribe("edgenode/+/+/events", qos=0)
        self.client.connect(host, int(port))
        self.client.loop_start()

    def _on(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        now = time.time()
        with contextlib.suppress(ValueError, KeyError, TypeError):
            self.lags.append(now - json.loads(msg.payload)["t"])

    def stop(self) -> str:
        self.client.disconnect()
        self.client.loop_stop()
        lags = sorted(self.lags)
        if not lags:
            return "?"
        return f"{lags[min(len(lags) - 1, int(0.99 * len(lags)))] * 1000:.1f}"

def run(url: str, work: Path, nodes: int, seconds: float, kill: bool, expiry_s: int,
        gate_latency: bool) -> bool:
    """`gate_latency`: whether p99 counts toward the verdict (see the module docstring)."""
    label = f"{'kill+restart' if kill else 'steady'}, session expiry {expiry_s} s"
    tag = f"{'kill' if kill else 'steady'}{expiry_s}"
    logs = {n: work / f"{tag}-{n}.log" for n in ("a", "b")}
    sim_log = work / f"{tag}-sim.log"
    procs = {n: central(url, f"bench-{tag}-{n}", logs[n], expiry_s) for n in logs}
    try:
        return _measure(url, procs, logs, sim_log, nodes, seconds, kill, expiry_s, label,
                        tag, gate_latency)
    finally:  # also when the simulator failed: no instance outlives the bench
        for p in procs.values():
            terminate(p)


def _measure(url: str, procs: dict[str, subprocess.Popen[str]], logs: dict[str, Path],
             sim_log: Path, nodes: int, seconds: float, kill: bool, expiry_s: int,
             label: str, tag: str, gate_latency: bool) -> bool:
    time.sleep(3)  # both subscribed
    probe = IntakeProbe(url)
    load_before = os.getloadavg()
    sim = subprocess.Popen([*EDGENODE, "fleet-sim", "--broker", url, "--nodes", str(nodes),
                            "--drones", str(nodes // 5), "--seconds", str(seconds),
                            "--events-log", str(sim_log), "--log-level", "warning"],
                           stdout=subprocess.PIPE, text=True)
    if kill:
        time.sleep(8 + seconds / 3)  # nodes connected and publishing
        procs["b"].send_signal(signal.SIGKILL)
        procs["b"].wait()
        time.sleep(3)
        procs["b"] = central(url, f"bench-{tag}-b", logs["b"], expiry_s)
    out, _ = sim.communicate(timeout=seconds + 300)
    result = json.loads(out.strip().splitlines()[-1])
    load_after = os.getloadavg()
    published = sim_log.read_text().split()
    _wait_taken(logs, len(published))
    time.sleep(2)
    probe_p99 = probe.stop()
    stats = {n: stop(p) for n, p in procs.items()}
    # The journals keep each instance's last 500 000 ids (rotation): a run must take fewer.
    taken = logs["a"].read_text().split() + logs["b"].read_text().split()
    lost = len(set(published) - set(taken))
    twice = len(taken) - len(set(taken))
    print(f"{label}: {nodes} nodes, {result['sites']} sites, {result['drones']} drones, "
          f"{result['events']} events in {result['seconds']} s "
          f"({result['events'] / result['seconds']:.0f} events/s); load average "
          f"{load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(f"  fleet simulator + broker alone (a passive subscriber): p99 {probe_p99} ms")
    for n, s in stats.items():
        note = " (after its restart)" if kill and n == "b" else ""
        print(f"  instance {n}{note}: {s['events']} events, {s['events'] / seconds:.0f} events/s, "
              f"duplicates {s['duplicates']}, lost(seq) {s['lost']}, fused tracks "
              f"{s['fused_tracks']}, p99 {s['p99_latency_ms']} ms (of which intake p99 "
              f"{s['intake_p99_ms']} ms)")
        if s.get("stood_in"):
            print(f"    standing in for the killed instance: {s['stood_in']} events of its "
                  f"share, p99 {s['stood_in_p99_latency_ms']} ms")
        for line in s["stand_in"]:
            print(f"    {line[:160]}")
    print(f"  against the simulator's log: lost {lost}, processed twice {twice}")
    p99s = [v for s in stats.values() for v in (s["p99_latency_ms"],
                                                 s.get("stood_in_p99_latency_ms"))
            if v is not None]
    latency_ok = bool(p99s) and max(p99s) <= P99_TARGET_MS
    ok = lost == 0 and twice == 0 and (latency_ok or not gate_latency)
    gate = f", p99 <= {P99_TARGET_MS} ms" if gate_latency else " (p99 reported, not gated)"
    print(f"  {'PASS' if ok else 'FAIL'} (targets: lost 0, twice 0{gate})")
    targets.at_most(f"{label}: events lost", lost, 0, "events")
    targets.at_most(f"{label}: events processed twice", twice, 0, "events")
    if gate_latency:
        targets.at_most(f"{label}: fused-track p99", max(p99s, default=float("inf")),
                        P99_TARGET_MS, "ms")
    return ok


def _wait_taken(logs: dict[str, Path], published: int, stall_s: float = 10.0) -> None:
    """Stop the instances only once their journals hold every published event, or have
    stopped growing: on a loaded machine an instance may be seconds behind the simulator,
    and stopping it then would count its backlog as lost."""
    seen, last_change = -1, time.monotonic()
    while time.monotonic() - last_change < stall_s:
        taken = sum(len(log.read_bytes().split()) for log in logs.values() if log.exists())
        if taken >= published:
            return
        if taken != seen:
            seen, last_change = taken, time.monotonic()
        time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--broker", help="use this broker instead of a private Mosquitto")
    parser.add_argument("--clean-kill", action="store_true",
                        help="also kill an instance on a clean session (shows what it loses)")
    parser.add_argument("--kill-only", action="store_true",
                        help="skip the steady run (rerunning the kill run on a busy machine)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker = None
        url = args.broker
        if url is None:
            # Not -v: a line per packet, ~10 000 lines/s here, was ~40 % of the broker's CPU.
            # set_tcp_nodelay as in the shipped hardware/mosquitto/mosquitto.conf: with Nagle
            # on, a message to an instance could wait for the ACK of the one before (~40 ms).
            broker = Mosquitto(work / "broker", verbose=False,
                               extra="max_queued_messages 100000\nset_tcp_nodelay true\n").start()
            url = broker.url
        try:
            if not args.kill_only:
                run(url, work, args.nodes, args.seconds, kill=False, expiry_s=0,
                    gate_latency=True)
            run(url, work, args.nodes, args.seconds, kill=True, expiry_s=60,
                gate_latency=True)
            if args.clean_kill:
                run(url, work, args.nodes, args.seconds, kill=True, expiry_s=0,
                    gate_latency=True)  # informative: what a clean session loses
        finally:
            if broker:
                broker.stop()
    return targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
