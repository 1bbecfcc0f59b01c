"""The daemon on the twin for a while, its anonymous memory sampled through the control socket:
the slope after warm-up (MB per hour), for the soak test and `make bench`.

Run by hand (progress on stderr):
  .venv/bin/python -m tests.soak.memory --minutes 15 --speed 4 [--no-broker] [--trace]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgenode.daemon.control_socket import request
from tests.conftest import Mosquitto, free_port
from tests.simdaemon import SimDaemon

WARMUP_FRACTION = 0.3  # the first 30 % of the run fills caches, queues and the allocator


@dataclass(frozen=True)
class Unreachable:
    url: str


@dataclass
class Soak:
    samples: list[tuple[float, float]] = field(default_factory=list)  # (s, RssAnon MB)
    grew: list[dict] = field(default_factory=list)

    def slope_mb_per_h(self) -> float:
        """Least-squares slope of RssAnon over the samples after warm-up."""
        start = self.samples[-1][0] * WARMUP_FRACTION
        pts = [(t, m) for t, m in self.samples if t >= start]
        if len(pts) < 3:
            return float("nan")
        n = len(pts)
        mt = sum(t for t, _ in pts) / n
        mm = sum(m for _, m in pts) / n
        var = sum((t - mt) ** 2 for t, _ in pts)
        return sum((t - mt) * (m - mm) for t, m in pts) / var * 3600.0


def run(workdir: Path, *, minutes: float, speed: float, broker: bool, trace: bool = False,
        scenario: str = "two-drones-crossing", sample_s: float = 20.0,
        progress: bool = True) -> Soak:
    mosquitto = Mosquitto(workdir).start() if broker else None
    # Without a broker: a loopback port nobody listens on (a long network outage).
    target = mosquitto or Unreachable(f"mqtt://127.0.0.1:{free_port()}")
    env = {"EDGENODE_TRACEMALLOC": "1"} if trace else {}
    daemon = SimDaemon(scenario, workdir / "state", target,  # type: ignore[arg-type]
                       "--speed", repr(speed), env=env)
    soak = Soak()
    try:
        daemon.status(timeout_s=60)
        started = time.monotonic()
        end = started + minutes * 60
        while time.monotonic() < end:
            report = request(daemon.state / "control.sock", {"cmd": "memory"}, timeout_s=120)
            t = time.monotonic() - started
            soak.samples.append((t, report["RssAnon"] / 1024))
            soak.grew = report.get("grew", [])
            if progress:
                print(f"soak: {t / 60:5.1f} min  RssAnon {report['RssAnon'] / 1024:6.1f} MB  "
                      f"RSS {report['VmRSS'] / 1024:6.1f} MB", file=sys.stderr, flush=True)
            time.sleep(sample_s)
    finally:
        daemon.stop()
        if mosquitto:
            mosquitto.stop()
    return soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15)
    parser.add_argument("--speed", type=float, default=4)
    parser.add_argument("--no-broker", action="store_true")
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--sample-s", type=float, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        soak = run(Path(tmp), minutes=args.minutes, speed=args.speed, broker=not args.no_broker,
                   trace=args.trace, sample_s=args.sample_s)
    print(json.dumps({"slope_mb_per_h": round(soak.slope_mb_per_h(), 2),
                      "samples": soak.samples, "grew": soak.grew}, indent=1))
    return 0


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parents[2])
    raise SystemExit(main())
