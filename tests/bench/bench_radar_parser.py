"""TI mmWave parser: throughput (64 points per frame) and bytes-to-frame latency.

Run by `make bench`; prints each figure with its unit and target, exits 1 on a miss.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import tty
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from hal.ports.serial import SerialPort
from hal.radar.ti_mmwave import TiMmwaveParser, encode_frame
from tests.bench.targets import Targets

POINTS = 64
TARGET_FPS = 20_000
TARGET_LATENCY_US = 500.0


def stream(frames: int) -> tuple[bytes, int]:
    rng = np.random.default_rng(1)
    points = rng.normal(0, 10, (POINTS, 6)).astype(np.float32)
    packets = [encode_frame(n, points) for n in range(frames)]
    return b"".join(packets), len(packets[0])


def throughput(data: bytes, frames: int, chunk: int) -> float:
    best = 0.0
    for _ in range(3):
        parser = TiMmwaveParser()
        started = time.perf_counter()
        for i in range(0, len(data), chunk):
            parser.feed(data[i:i + chunk], 0.0)
        elapsed = time.perf_counter() - started
        assert parser.frames == frames, parser.frames
        best = max(best, frames / elapsed)
    return best


def feed_latency_us(packet: bytes, runs: int = 2000) -> np.ndarray:
    parser = TiMmwaveParser()
    out = np.empty(runs)
    for k in range(runs):
        parser.feed(packet[:-1], 0.0)
        started = time.perf_counter()
        frames = parser.feed(packet[-1:], 0.0)
        out[k] = (time.perf_counter() - started) * 1e6
        assert len(frames) == 1
    return out


def pty_latency_us(packet: bytes, runs: int = 300) -> np.ndarray:
    """Last byte written into a pty master -> frame out of SerialPort.read + parser."""
    master, slave = os.openpty()
    tty.setraw(slave)
    parser = TiMmwaveParser()
    out = np.empty(runs)
    sent_at = [0.0]
    ready = threading.Event()
    done = threading.Event()

    def reader(port: SerialPort) -> None:
        for k in range(runs):
            ready.set()
            while True:
                frames = parser.feed(port.read())
                if frames:
                    out[k] = (time.perf_counter() - sent_at[0]) * 1e6
                    break
        done.set()

    with SerialPort(os.ttyname(slave), 921600, name="bench", timeout_s=0.2) as port:
        port.open()
        thread = threading.Thread(target=reader, args=(port,), daemon=True)
        thread.start()
        for _ in range(runs):
            ready.wait(2)
            ready.clear()
            os.write(master, packet[:-1])
            time.sleep(0.002)
            sent_at[0] = time.perf_counter()
            os.write(master, packet[-1:])
            time.sleep(0.001)
        done.wait(5)
    os.close(master)
    os.close(slave)
    return out


def main() -> int:
    frames = 40_000
    data, size = stream(frames)
    print(f"ti-mmwave parser, {POINTS} points/frame ({size} bytes/frame)")
    targets = Targets("bench_radar_parser")
    for chunk in (4096, 65536):
        fps = throughput(data, frames, chunk)
        verdict = targets.at_least(f"parser throughput, {chunk}-byte reads", fps, TARGET_FPS,
                                   "frames/s")
        print(f"  throughput, {chunk:>5}-byte reads: {fps:10,.0f} frames/s   "
              f"(target >= {TARGET_FPS:,} frames/s) {verdict}")
    packet = data[:size]
    lat = feed_latency_us(packet)
    p50, p99 = np.percentile(lat, [50, 99])
    verdict = targets.at_most("bytes-to-frame latency p99", p99, TARGET_LATENCY_US, "us")
    print(f"  bytes-to-frame latency (feed of the last byte -> frame): median {p50:.1f} us, "
          f"p99 {p99:.1f} us   (target p99 <= {TARGET_LATENCY_US:.0f} us) {verdict}")
    lat = pty_latency_us(packet)
    p50, p99 = np.percentile(lat, [50, 99])
    print(f"  bytes-to-frame latency through a pty + SerialPort: median {p50:.0f} us, "
          f"p99 {p99:.0f} us   (informational: includes the kernel and thread wake-up; "
          f"target p99 <= 5000 us)")
    return targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
