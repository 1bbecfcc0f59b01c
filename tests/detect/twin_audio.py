"""A twin scenario's microphone audio rendered offline, and the daemon's acoustic chain and
tracker run over it: the twin's own renderer (hal.sim.audio) with a fixed seed, so a run is
the same every time (the twin's renderer seed follows the order the daemon's clients connect
in, and it skips blocks when the machine is loaded).

Run as a script for a table per seed:
  python -m tests.detect.twin_audio two-drones-near-far --seeds 1 2 3 4 5 [--off]
Renderings are cached under $EDGENODE_TWIN_AUDIO (default /tmp/edgenode-twin-audio).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgenode.detect.acoustic import AcousticDetector
from edgenode.detect.acoustic_params import AcousticParams
from edgenode.detect.score import Score, reports_from_events, score_run, truth_samples
from edgenode.detect.tracker import Tracker
from hal.acoustic import load_geometry
from hal.sim.audio import ArrayRenderer
from hal.sim.scenario import load_scenario
from hal.sim.world import World, bearing_of

FS = 48000
BLOCK = 4096  # the twin hardware's block_frames
T0 = 1.8e9  # unix s of scenario time 0: the tracker keeps wall-clock time
ACOUSTIC_RANGE_M = 150.0
GEOMETRY = "uma16"


def render(scenario_name: str, seed: int, seconds: float | None = None,
           mast: str | None = None) -> np.ndarray:
    """(frames, mics) float32 of the scenario from time 0 as `mast` hears it (a scenario
    with [[masts]]; None: [node]), cached on disk per seed."""
    scenario = load_scenario(scenario_name)
    seconds = float(seconds or scenario.duration_s)
    cache = Path(os.environ.get("EDGENODE_TWIN_AUDIO", "/tmp/edgenode-twin-audio"))
    name = scenario.name if mast is None else f"{scenario.name}-{mast}"
    path = cache / f"{name}-{seed}-{seconds:g}.npy"
    if path.exists():
        return np.load(path, mmap_mode="r")
    renderer = ArrayRenderer(scenario, World(scenario, mast), load_geometry(GEOMETRY).positions_m,
                             FS, seed=seed)
    blocks = int(seconds * FS) // BLOCK
    pcm = np.vstack([renderer.render(k * BLOCK / FS, BLOCK) for k in range(blocks)])
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, pcm)
    tmp.replace(path)
    return pcm


def truth(scenario_name: str, seconds: float, period_s: float = 0.5) -> list:
    scenario = load_scenario(scenario_name)
    world = World(scenario)
    records = []
    for sim_t in np.arange(0.0, seconds, period_s):
        for body, pos, _ in world.bodies_at(float(sim_t)):
            rng, bearing, elev = bearing_of(pos - world.array_enu)
            records.append({"t": T0 + float(sim_t), "id": body.id, "kind": body.target.kind,
                            "range_m": rng, "bearing_deg": bearing, "elevation_deg": elev})
    return truth_samples(records)


@dataclass
class Run:
    score: Score
    events: list
    cpu_s: float


def run_chain(scenario_name: str, pcm: np.ndarray, *, second_drone: bool = True) -> Run:
    """The daemon's detection stage without radar: audio blocks -> detector -> tracker."""
    scenario = load_scenario(scenario_name)
    heading = scenario.node.mast_heading_deg
    detector = AcousticDetector(FS, pcm.shape[1],
                                positions_m=load_geometry(GEOMETRY).positions_m,
                                heading_deg=heading,
                                params=AcousticParams(second_drone=second_drone))
    tracker = Tracker(latitude_deg=0.0, longitude_deg=0.0, altitude_m=0.0,
                      mast_heading_deg=heading, acoustic_range_m=ACOUSTIC_RANGE_M)
    events: list = []
    started = time.process_time()
    for start in range(0, len(pcm) - BLOCK + 1, BLOCK):
        block = np.asarray(pcm[start:start + BLOCK])
        for result in detector.process(block, T0 + start / FS):
            events += tracker.update(result.t, [], list(result.bearings))
    cpu = time.process_time() - started
    seconds = len(pcm) / FS
    return Run(score_run(truth(scenario_name, seconds), reports_from_events(events)),
               events, cpu)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("scenario")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--seconds", type=float)
    ap.add_argument("--off", action="store_true", help="the second-drone path off")
    args = ap.parse_args()
    for seed in args.seeds:
        pcm = render(args.scenario, seed, args.seconds)
        r = run_chain(args.scenario, pcm, second_drone=not args.off)
        parts = []
        for s in r.score.targets.values():
            first = None if s.first_detection_s is None else round(s.first_detection_s, 1)
            rms = None if s.bearing_rms_deg is None else round(s.bearing_rms_deg, 1)
            parts.append(f"{s.id}: pd {s.pd:.2f} first {first} rms {rms}")
        false = [(f["object_id"][-4:], round(f["bearing_deg"], 1)) for f in r.score.false_tracks]
        print(f"seed {seed}: " + "; ".join(parts) + f"; false {false}; cpu {r.cpu_s:.1f} s",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
