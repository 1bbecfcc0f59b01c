"""ADS-B input: Beast messages decoded per second (framing + Mode S decoding + CPR + the
position gate), on a busy sky's mix: 40 aircraft, each a position and a velocity twice a second
and an identification every 5 s.

Run by `make bench`; exits non-zero when the target is missed (a busy receiver delivers about
1,000-2,000 messages/s).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hal.adsb.beast import encode_frame
from hal.adsb.feed import AdsbFeed, FakeAdsbBackend
from hal.sim.adsb import Flight, encode_identification, encode_position, encode_velocity
from tests.bench.targets import Targets

TARGET_MSG_S = 5_000


def busy_sky(seconds: int = 30, aircraft: int = 40) -> tuple[bytes, int]:
    flights = [Flight(f"{0x400000 + i:06X}", f"TST{i:03d}", 1000.0 * i, -20_000.0 + 900 * i,
                      250 + 5 * i, (37 * i) % 360, 3000 + 500 * i) for i in range(aircraft)]
    out, n = bytearray(), 0
    for tick in range(seconds * 2):
        t = tick / 2
        for f in flights:
            lat, lon = f.position(52.0, 13.0, t)
            msgs = [encode_position(f.icao, lat, lon, f.alt_ft, tick % 2),
                    encode_velocity(f.icao, f.speed_kt, f.track_deg)]
            if tick % 10 == 0:
                msgs.append(encode_identification(f.icao, f.callsign))
            for m in msgs:
                out += encode_frame(m, mlat_ticks=int(t * 12e6))
                n += 1
    return bytes(out), n


def rate(stream: bytes, messages: int, chunk: int = 4096, runs: int = 3) -> tuple[float, int]:
    best, updates = 0.0, 0
    for _ in range(runs):
        chunks = [stream[i:i + chunk] for i in range(0, len(stream), chunk)]
        feed = AdsbFeed("beast://127.0.0.1:1", backend=FakeAdsbBackend(chunks))
        updates = 0
        started = time.perf_counter()
        for _ in chunks:
            updates += len(feed.poll(0.0))
        elapsed = time.perf_counter() - started
        assert feed.stats()["messages"] == messages, feed.stats()
        best = max(best, messages / elapsed)
    return best, updates


def main() -> int:
    stream, n = busy_sky()
    print(f"adsb: Beast -> aircraft updates ({n} messages, 40 aircraft)")
    msg_s, updates = rate(stream, n)
    targets = Targets("bench_adsb")
    verdict = targets.at_least("Beast messages decoded", msg_s, TARGET_MSG_S, "messages/s")
    print(f"  synthetic busy sky: {msg_s:10,.0f} messages/s ({updates} updates)   "
          f"(target >= {TARGET_MSG_S:,} messages/s) {verdict}")
    return targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
