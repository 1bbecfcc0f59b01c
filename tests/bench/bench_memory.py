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

from tests.soak.memory import run  # noqa: E402


def main() -> int:
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    for broker in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            soak = run(Path(tmp), minutes=minutes, speed=4.0, broker=broker, sample_s=10,
                       progress=False)
        first, last = soak.samples[0][1], soak.samples[-1][1]
        print(f"memory, {minutes:g} min at 4x, {'broker up' if broker else 'broker unreachable'}:"
              f" RssAnon {first:.1f} -> {last:.1f} MB, slope after warm-up "
              f"{soak.slope_mb_per_h():+.1f} MB/h (soak limit 2 MB/h over an hour: make "
              f"test-long)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
