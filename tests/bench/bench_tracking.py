"""Radar chain and tracker speed (issue 5). Prints each figure with its unit and target.

- radar chain: RadarPlotter.process on frames of 64 points (8 objects x 6 points + 16 lone
  noise points, so ~24 plots a frame), clutter map included. Target >= 2,000 frames/s.
- tracker: 20 live confirmed tracks; one "update" is one plot-to-track measurement update
  carried through a whole Tracker.update() call (prediction of all tracks, gating, GNN
  assignment, Kalman and doppler updates, lifecycle, classification, event building). Each
  call carries 20 plots, one per track. Target >= 10,000 updates/s.
Figures are CPU time of this process (time.process_time: one core, no threads), best of
several runs, so that other load on a shared machine does not count against the code.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from edgenode.detect.plots import Plot, RadarPlotter
from edgenode.detect.tracker import Tracker
from hal.radar import RadarFrame
from tests.bench.targets import Targets

REPEATS = 5


def radar_frames(count: int, rng: np.random.Generator) -> list[RadarFrame]:
    frames = []
    for k in range(count):
        pts = []
        for j in range(8):
            centre = np.array([10.0 * j - 35.0, 40.0 + 5.0 * j, 5.0 + j])
            for _ in range(6):
                pts.append([*(centre + rng.normal(0.0, 0.3, 3)), 1.0 + j + rng.normal(0, 0.1),
                            15.0, 40.0])
        for _ in range(16):
            pts.append([rng.uniform(-50, 50), rng.uniform(1, 100), rng.uniform(-2, 10), 0.0,
                        12.0, 40.0])
        frames.append(RadarFrame(k, 1000.0 + 0.05 * k, np.array(pts, dtype=np.float32)))
    return frames


def tracker_batches(count: int, rng: np.random.Generator) -> list[tuple[float, list[Plot]]]:
    angles = np.linspace(0.0, 2.0 * math.pi, 20, endpoint=False)
    pos = np.column_stack([60.0 * np.cos(angles), 60.0 * np.sin(angles) + 100.0,
                           np.full(20, 20.0)])
    vel = np.column_stack([-3.0 * np.sin(angles), 3.0 * np.cos(angles), np.zeros(20)])
    batches = []
    for k in range(count):
        t = 1000.0 + 0.1 * k
        plots = []
        for p, v in zip(pos + vel * 0.1 * k, vel, strict=True):
            q = p + rng.normal(0.0, 0.3, 3)
            r = float(np.linalg.norm(q))
            plots.append(Plot(t, r, 0.1, 0.0, math.degrees(math.atan2(q[0], q[1])) % 360.0, 1.0,
                              math.degrees(math.asin(q[2] / r)), 1.5,
                              float(v @ p) / float(np.linalg.norm(p)), 15.0, 3,
                              float(q[0]), float(q[1]), float(q[2]), float(q[2]) + 3.0))
        batches.append((t, plots))
    return batches


def bench_plotter() -> float:
    frames = radar_frames(1000, np.random.default_rng(0))
    best = math.inf
    for _ in range(REPEATS):
        plotter = RadarPlotter(boresight_azimuth_deg=0.0, mount_height_m=3.0,
                               mast_heading_deg=0.0)
        start = time.process_time()
        for frame in frames:
            plotter.process(frame)
        best = min(best, time.process_time() - start)
    return len(frames) / best


def bench_tracker() -> tuple[float, int]:
    batches = tracker_batches(320, np.random.default_rng(1))
    best, live = math.inf, 0
    for _ in range(REPEATS):
        tracker = Tracker(latitude_deg=57.0, longitude_deg=12.0, altitude_m=0.0,
                          mast_heading_deg=0.0)
        for t, plots in batches[:20]:  # warm-up: tracks confirmed and settled
            tracker.update(t, plots, [])
        updates = 0
        start = time.process_time()
        for t, plots in batches[20:]:
            tracker.update(t, plots, [])
            updates += len(plots)
        best = min(best, (time.process_time() - start) / updates)
        live = len(tracker.tracks())
    return 1.0 / best, live


def main() -> int:
    targets = Targets("bench_tracking")
    fps = bench_plotter()
    verdict = targets.at_least("radar chain", fps, 2000, "frames/s")
    print(f"radar chain (plots, 64 points/frame): {fps:,.0f} frames/s "
          f"(target >= 2,000 frames/s) {verdict}")
    ups, live = bench_tracker()
    verdict = targets.at_least("tracker", ups, 10000, "updates/s")
    print(f"tracker ({live} live tracks): {ups:,.0f} updates/s "
          f"(target >= 10,000 updates/s) {verdict}")
    return targets.exit_code()


if __name__ == "__main__":
    sys.exit(main())
