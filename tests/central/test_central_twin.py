"""Issue 18, "Done when, Twin": two real daemons on the twin, one per mast of one site, sharing
one scenario's sky (`edgenode run --sim two-masts-crossing --mast NAME --sky-epoch T`), and one
`edgenode central` on a real Mosquitto fusing their bearings.

~45 s and 0.5-1 core (two twins rendering 16 microphones each, two daemons): on a machine
loaded far beyond its cores the nodes fall behind and the fix degrades (docs/fleet.md)."""

from __future__ import annotations

import json
import math
import signal
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from edgenode.central.geometry import LocalFrame, bearing_deg, wrap180
from hal.sim.scenario import load_scenario
from hal.sim.world import World
from tests.central.helpers import TrackWatcher, central_proc, central_ready
from tests.conftest import Mosquitto, terminate
from tests.simdaemon import SimDaemon

SCENARIO = "two-masts-crossing"
# "~300 m": where the drone is this far from each mast (it passes both 305 m out).
BAND_M = (255.0, 355.0)
SOUTH_LATE_S = 15.0  # scenario seconds before the south mast's daemon starts


def _drone(world: World, sim_t: float) -> np.ndarray | None:
    """The drone's true position (site ENU metres) at scenario time sim_t, if in the scene."""
    bodies = world.bodies_at(sim_t)
    return bodies[0][1] if bodies else None


# make test-long: two twins rendering 16 microphones each need most of this 2-core machine; at a
# load average near 10 the nodes fell behind and the test failed (2 of 10 runs).
@pytest.mark.long
def test_two_daemons_sharing_one_sky_make_one_fused_track_and_a_bearing_line_alone(
        mosquitto: Mosquitto, tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIO)
    masts = {m.name: m.position_m for m in scenario.masts}
    world = World(scenario, "north")  # every mast's twin flies the drone alike

    def in_band(sim_t: float) -> bool:
        pos = _drone(world, sim_t)
        return pos is not None and all(BAND_M[0] <= math.hypot(pos[0] - e, pos[1] - n)
                                       <= BAND_M[1] for e, n in masts.values())

    # Run until the drone has left the band (a second to spare), from the scenario itself.
    band_end = max(t for t in np.arange(0.0, scenario.duration_s, 0.1) if in_band(t)) + 1.0
    log = tmp_path / "central.log"
    central = central_proc(mosquitto.url, "c-twin", log=log)
    daemons: list[SimDaemon] = []
    started = time.monotonic()
    try:
        central_ready(central, log)
        with TrackWatcher(mosquitto.url) as watch:
            epoch = time.time()  # scenario time 0 for both twins, whichever starts first
            for name in masts:  # the south mast comes up late (a reboot, a lost power feed)
                time.sleep(max(0.0, epoch + (SOUTH_LATE_S if name == "south" else 0.0)
                               - time.time()))
                daemons.append(SimDaemon(SCENARIO, tmp_path / name, mosquitto, "--mast", name,
                                         "--sky-epoch", repr(epoch)))
                daemons[-1].status()
            while time.time() < epoch + band_end:
                assert all(d.proc.poll() is None for d in daemons), daemons[0].log_text()
                time.sleep(0.5)
        central.send_signal(signal.SIGTERM)
        out, _ = central.communicate(timeout=10)
        stats = json.loads(out.strip().splitlines()[-1])
    finally:
        for daemon in daemons:
            daemon.stop()
        terminate(central)
    elapsed = time.monotonic() - started

    assert watch.errors == []
    history = [(round(t["t"] - epoch, 1), t["type"], t["fused_id"][-4:],
                sorted(f"{m['node']}:{m['object_id'][-4:]}" for m in t["members"]))
               for t in watch.tracks]
    fused_ids = {t["fused_id"] for t in watch.tracks}
    # One drone, one fused id for its position, whichever masts hear it. A node's tracker
    # may split the far drone in two for a few seconds (seen under load): its second track
    # stands alone as a bearing line until the first ends and hands over (fusion._handover).
    located = {t["fused_id"] for t in watch.tracks if t["position"] is not None}
    assert len(located) == 1, history
    assert all(t["position"] is None for t in watch.tracks if t["fused_id"] not in located)
    assert stats["lost"] == 0 and stats["duplicates"] == 0, stats
    frame = LocalFrame(scenario.node.latitude_deg, scenario.node.longitude_deg)
    errors, lines = [], []
    for track in watch.tracks:
        if track["type"] == "end":
            continue
        sim_t = track["t"] - epoch
        truth = _drone(world, sim_t)
        assert truth is not None, track  # nothing else flies
        members = {m["node"] for m in track["members"]}
        if len(members) == 1:
            # One mast hears it (no radar range this far out): a bearing line, no position.
            assert track["position"] is None and track["bearing_line"] is not None, track
            (node,) = members
            east, north = masts[node]
            lines.append((node, wrap180(track["bearing_line"]["bearing_deg"]
                                        - bearing_deg(truth[0] - east, truth[1] - north))))
            continue
        assert track["position"] is not None, track
        if in_band(sim_t):
            e, n = frame.to_en(track["position"]["latitude_deg"],
                               track["position"]["longitude_deg"])
            errors.append(math.hypot(e - truth[0], n - truth[1]))
    median = float(np.median(errors)) if errors else math.inf
    summary = (f"fused ids {sorted(fused_ids)} ({len(located)} with a position); "
               f"{len(errors)} fixes in the band, median error {median:.1f} m; bearing-line "
               f"messages {dict(Counter(n for n, _ in lines))}; run {elapsed:.0f} s; "
               f"central {stats}")
    print(summary)
    assert len(errors) >= 10, summary
    assert median <= 15.0, summary
    # Until the south mast is up the north mast alone hears the drone: the fused track is
    # then its bearing line, pointing at the drone (as wherever one mast's track stands
    # alone: before the other's is confirmed, or while it lapses).
    lone_north = [err for node, err in lines if node == "north"]
    assert len(lone_north) >= 10, summary
    assert float(np.median([abs(err) for _, err in lines])) <= 5.0, lines
