"""Two quads crossing in front of the mast (the twin's `two-drones-crossing`), heard by the
acoustic chain offline: their blade-pass lines (180 and 240 Hz) meet every 720 Hz, and a
block's comb can hold lines of both. A bearing from such a block fell between the two drones,
where it started a track of its own (a false drone track in the daemon's twin run). Every
bearing from the crossing on now points at one of the drones or is not issued
(edgenode/detect/acoustic.py, _bearings: the block's comb must be the track's, and leaving out
any one bin must not move the bearing far).

Three stray bearings remain before the crossing (3.8 s: drone-a alone, 16 degrees off on
three bins, too few to leave one out; 7.0 and 8.3 s: drone-a's comb read 17 and 10 degrees
off while drone-b, 95 degrees away, shares three of its five lines, and where most bins are
shared leaving one out does not move the mix). Down from eleven; pinned below."""

from __future__ import annotations

import numpy as np

from edgenode.detect.acoustic import AcousticDetector
from hal.acoustic import load_geometry
from hal.sim.audio import ArrayRenderer
from hal.sim.scenario import load_scenario
from hal.sim.world import World, bearing_of

FS = 48000
BLOCK = 4096
# Seed 6 of tests/detect/twin_audio.py: its bearings at 17.8-19.5 s fell between the drones
# (0.7, 347, 10.9, 13.9, 358.9 deg with the drones at 35-41 and 341-331 deg) and made a
# false track. From the start: the chain needs the seconds before to learn the site.
SEED = 6
CROSSING_S = 12.0  # the drones 27 degrees apart, closing; their bearings cross at 13.5 s
END_S = 21.0


def angle_gap(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def test_crossing_quads_give_no_bearing_between_them() -> None:
    scenario = load_scenario("two-drones-crossing")
    world = World(scenario)
    positions = load_geometry("uma16").positions_m
    renderer = ArrayRenderer(scenario, world, positions, FS, seed=SEED)
    detector = AcousticDetector(FS, len(positions), positions_m=positions,
                                heading_deg=scenario.node.mast_heading_deg)
    bearings = []
    for k in range(round(END_S * FS) // BLOCK):
        for result in detector.process(renderer.render(k * BLOCK / FS, BLOCK), k * BLOCK / FS):
            bearings += result.bearings
    assert len(bearings) >= 15, "the drones were not heard"
    stray = []
    for b in bearings:
        truth = [bearing_of(pos - world.array_enu)[1] for _, pos, _ in world.bodies_at(b.t)]
        miss = min(angle_gap(b.azimuth_deg, t) for t in truth)
        if miss > max(3.0 * b.error_deg, 8.0):
            stray.append((round(b.t, 2), round(b.azimuth_deg, 1), [round(t, 1) for t in truth]))
    assert not [s for s in stray if s[0] >= CROSSING_S], f"bearings on neither drone: {stray}"
    assert len(stray) <= 3, f"bearings on neither drone: {stray}"
    assert np.isfinite([b.azimuth_deg for b in bearings]).all()
