"""The daemon's anonymous memory over a short soak on the twin (4x speed), with a broker and
with it unreachable: the slope after warm-up in MB per hour, beside bench_daemon's RSS figure.
The hour-long soak with the pass mark (2 MB/h) is tests/soak/test_memory_soak.py (make
test-long); this shorter run only reports. Run: .venv/bin/python tests/bench/bench_memory.py
[minutes per run]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.bench.targets import Targets  # noqa: E402
from tests.soak.memory import run  # noqa: E402

SHORT_RUN_LIMIT_MB_PER_H = 6.0


def main() -> int:
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    # A short run's slope is noisy: it is held only to a loose bound (the hour-long soak in
    # make test-long holds 2 MB/h); a real leak (the issue measured 12 MB/h) still fails.
    targets = Targets("bench_memory")
    for broker in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            soak = run(Path(tmp), minutes=minutes, speed=4.0, broker=broker, sample_s=10,
                       progress=False)
        first, last = soak.samples[0][1], soak.samples[-1][1]
        targets.at_most(f"RssAnon slope, {'broker' if broker else 'no broker'}",
                        soak.slope_mb_per_h(), SHORT_RUN_LIMIT_MB_PER_H, "MB/h")
        print(f"memory, {minutes:g} min at 4x, {'broker up' if broker else 'broker unreachable'}:"
              f" RssAnon {first:.1f} -> {last:.1f} MB, slope after warm-up "
              f"{soak.slope_mb_per_h():+.1f} MB/h (soak limit 2 MB/h over an hour: make "
              f"test-long)")
    return targets.exit_code()


if __name__ == "__main__":
    raise SystemExit(main())
