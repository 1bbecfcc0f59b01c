"""Cursor-on-Target: events encoded per second, XML and TAK protobuf (one core).

Run by `make bench`. A node sends at most a few events per second per track (max_rate_hz), so
a few hundred per second is the most it ever needs; the targets leave two orders of magnitude
for the Pi. Rates are per CPU second (process time) so that a busy machine does not read as a
slow encoder; wall-clock rates are printed beside. Exits 1 when a target is missed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edgenode.interop.cot.events import NodeInfo, track_event
from tests.bench.targets import Targets
from tests.link.helpers import track_state

N = 20_000
TARGETS = {"xml": 20_000.0, "protobuf": 10_000.0}


def rates(kind: str) -> tuple[float, float]:
    node = NodeInfo("bench", "n1", 51.5, -0.12, 30.0, 90.0)
    states = [track_state(f"01J9ZT3W6D8K4M2N5P7Q9R{k:04d}", 1000.0 + k) for k in range(100)]
    n = N if kind == "xml" else N // 4
    cpu, wall = time.process_time(), time.perf_counter()
    for k in range(n):
        event = track_event(states[k % 100], node, 1.8e9 + k, 1.8e9 + k + 15)
        assert event is not None
        if kind == "protobuf":
            event.protobuf(stream=True)
        else:
            event.xml()
    return n / (time.process_time() - cpu), n / (time.perf_counter() - wall)


def main() -> int:
    targets = Targets("bench_cot")
    for kind, target in TARGETS.items():
        per_cpu, per_wall = rates(kind)
        verdict = targets.at_least(f"cot {kind} encoding", per_cpu, target, "events/CPU s")
        print(f"cot {kind}: {per_cpu:,.0f} events per CPU second ({per_wall:,.0f}/s wall), "
              f"target >= {target:,.0f}: {verdict}")
    return targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
