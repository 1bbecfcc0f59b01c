"""Memory stays flat: the daemon on the twin at 4x speed for an hour of scenario time (15 min),
with a broker and a subscriber, and with the broker unreachable (a long network outage, the
outbox filling). Anonymous memory may grow by at most 2 MB per hour after warm-up.
`make test-long` runs it; it prints the slope."""

from __future__ import annotations

import pytest

from tests.soak.memory import run

pytestmark = pytest.mark.long
MAX_SLOPE_MB_PER_H = 2.0


@pytest.mark.timeout(1500)
@pytest.mark.parametrize("broker", [True, False], ids=["broker", "no-broker"])
def test_anonymous_memory_is_flat_for_an_hour_of_twin_time(tmp_path, broker):
    soak = run(tmp_path, minutes=15, speed=4.0, broker=broker, sample_s=20, progress=False)
    slope = soak.slope_mb_per_h()
    first, last = soak.samples[0][1], soak.samples[-1][1]
    print(f"memory soak ({'broker' if broker else 'no broker'}): RssAnon {first:.1f} -> "
          f"{last:.1f} MB, slope after warm-up {slope:+.2f} MB/h (limit {MAX_SLOPE_MB_PER_H})")
    assert slope <= MAX_SLOPE_MB_PER_H, soak.samples
