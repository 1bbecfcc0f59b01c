"""The central twin test (test_central_twin.py) offline: each mast's audio rendered by the
twin's own renderer with a fixed seed (tests/detect/twin_audio.py), each mast's acoustic chain
and tracker over it, both masts' track events in time order through central's fusion and
payload, and the long test's criteria on the messages. The same every run: what the live test
shows now and then (it depends on the machine's load and on the order the twins start in)
shows here on a seed.

Run as a script for a table per seed (~10 s a seed to render, then cached):
  python -m tests.central.twin_offline --seeds 1 2 3 4 5 6
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np

from edgenode.central.fusion import Observation, SiteFusion
from edgenode.central.geometry import bearing_deg, wrap180
from edgenode.central.tracks import contributing
from edgenode.detect.acoustic import AcousticDetector
from edgenode.detect.acoustic_params import AcousticParams
from edgenode.detect.tracker import Tracker
from hal.acoustic import load_geometry
from hal.sim.scenario import load_scenario
from hal.sim.world import World
from tests.detect.twin_audio import BLOCK, FS, GEOMETRY, T0, render

SCENARIO = "two-masts-crossing"
BAND_M = (255.0, 355.0)  # as the live test
SOUTH_LATE_S = 15.0
SECONDS = 48.0


def node_events(mast: str, seed: int, start_s: float = 0.0) -> list[tuple[float, dict]]:
    """(t, event) of one mast's tracker, its daemon up from scenario time start_s."""
    scenario = load_scenario(SCENARIO)
    pcm = render(SCENARIO, seed, SECONDS, mast=mast)
    heading = scenario.mast_pose(mast)[0].mast_heading_deg
    detector = AcousticDetector(FS, pcm.shape[1], positions_m=load_geometry(GEOMETRY).positions_m,
                                heading_deg=heading, params=AcousticParams())
    tracker = Tracker(latitude_deg=0.0, longitude_deg=0.0, altitude_m=0.0,
                      mast_heading_deg=heading, acoustic_range_m=150.0)
    out: list[tuple[float, dict]] = []
    for start in range(int(start_s * FS) // BLOCK * BLOCK, len(pcm) - BLOCK + 1, BLOCK):
        for result in detector.process(np.asarray(pcm[start:start + BLOCK]), T0 + start / FS):
            out += [(result.t, e) for e in tracker.update(result.t, [], list(result.bearings))]
    return out


def fused_messages(seed: int, keep: float = 1.0) -> list[dict[str, Any]]:
    """Central's messages (as far as the test reads them) for both masts' events; `keep` < 1
    drops that share of the updates at random, as a loaded node publishes fewer."""
    masts = {m.name: m.position_m for m in load_scenario(SCENARIO).masts}
    events = [(t, name, e) for name in masts
              for t, e in node_events(name, seed, SOUTH_LATE_S if name == "south" else 0.0)]
    rng = np.random.default_rng(seed)
    events = [item for item in events if item[2]["type"] != "update" or rng.random() < keep]
    fusion = SiteFusion("sim")
    messages = []
    for t, name, e in sorted(events, key=lambda item: item[0]):
        east, north = masts[name]
        if e["type"] == "end":
            changed = fusion.end(name, e["object_id"], t)
        else:
            az = e["after"]["azimuth_deg"]
            changed = fusion.observe(Observation(name, e["object_id"], t, east, north,
                                                 az["value"], az["error"]))
        for track in changed + fusion.expire(t, 10.0):
            members = contributing(track, [fusion.latest[k] for k in sorted(track.members)
                                           if k in fusion.latest])
            messages.append({"t": t, "fused_id": track.id, "ended": track.ended,
                             "fix": track.fix, "members": members})
    return messages


def score(seed: int, keep: float = 1.0) -> dict[str, Any]:
    """The live test's criteria on one seed's messages."""
    scenario = load_scenario(SCENARIO)
    masts = {m.name: m.position_m for m in scenario.masts}
    world = World(scenario, "north")
    messages = fused_messages(seed, keep)
    errors, lines, wrong = [], [], 0
    for m in messages:
        bodies = world.bodies_at(m["t"] - T0)
        if m["ended"] or not bodies:
            continue
        drone = bodies[0][1]
        nodes = {o.node for o in m["members"]}
        if len(nodes) == 1:
            wrong += m["fix"] is not None
            o = m["members"][0]
            lines.append((o.node, wrap180(o.bearing_deg - bearing_deg(drone[0] - o.east,
                                                                      drone[1] - o.north))))
        elif m["fix"] is None:
            wrong += 1
        elif all(BAND_M[0] <= math.hypot(drone[0] - e, drone[1] - n) <= BAND_M[1]
                 for e, n in masts.values()):
            errors.append(math.hypot(m["fix"].east - drone[0], m["fix"].north - drone[1]))
    located = {m["fused_id"] for m in messages if m["fix"] is not None}
    median = float(np.median(errors)) if errors else math.inf
    lone_north = sum(node == "north" for node, _ in lines)
    line_err = float(np.median([abs(err) for _, err in lines])) if lines else math.inf
    ok = (len(located) == 1 and wrong == 0 and len(errors) >= 10 and median <= 15.0
          and lone_north >= 10 and line_err <= 5.0)
    return {"ok": ok, "located": len(located), "fixes": len(errors), "median_m": median,
            "lone_north": lone_north, "wrong": wrong}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    ap.add_argument("--keep", type=float, default=1.0,
                    help="share of the nodes' updates central gets (a loaded node sends fewer)")
    args = ap.parse_args()
    passed = 0
    for seed in args.seeds:
        s = score(seed, args.keep)
        passed += s["ok"]
        print(f"seed {seed}: {'pass' if s['ok'] else 'FAIL'}: {s['located']} located id(s), "
              f"{s['fixes']} fixes in the band, median {s['median_m']:.1f} m, "
              f"{s['lone_north']} lone north lines, {s['wrong']} messages of the wrong shape",
              flush=True)
    print(f"{passed} of {len(args.seeds)} pass")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
