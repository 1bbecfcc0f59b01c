"""The twin's drones broadcast Remote ID (hal.sim.remoteid.Broadcaster), truthfully, spoofed or
not at all; what a receiver captures of it goes through the real receiver path (link-layer
frames -> carriers -> decoder -> identity store) and is judged against the bearing the node's
sensors would measure. The daemon's fusion of this with tracks is not built yet: this proves
the verdicts the done-when asks of it on the twin's own trajectories."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgenode.identify.remoteid import decode
from edgenode.identify.remoteid_honesty import SILENT, SPOOFED, TRUSTED, Measured, judge
from edgenode.identify.remoteid_store import RemoteIdStore
from hal.remoteid.linktypes import Extractor
from hal.sim.remoteid import Broadcast, Broadcaster
from hal.sim.scenario import load_scenario
from hal.sim.world import World, bearing_of

BEARING_NOISE_DEG = 3.0


def fly(broadcast: Broadcast, seconds: float = 12.0) -> list[tuple[float, str]]:
    """Verdicts (scenario time, verdict) once a second while the twin's drone crosses."""
    scenario = load_scenario("one-drone-crossing")
    world = World(scenario)
    node = scenario.node
    tx = Broadcaster(broadcast, node.latitude_deg, node.longitude_deg, node.altitude_m)
    ex = Extractor()
    store = RemoteIdStore(stale_after_s=5.0)
    rng = np.random.default_rng(7)
    start = next(t for t in np.arange(0.0, 60.0, 0.1) if world.bodies_at(float(t)))
    verdicts = []
    for k in range(int(seconds / 0.1)):
        t = float(start) + 0.1 * k
        (_, pos, _), = world.bodies_at(t)
        for linktype, data in tx.frames(t, *pos):
            for frame in ex.extract(linktype, data, t):
                store.update(frame.t, decode(frame.payload), src=frame.src,
                             transport=frame.transport, frame_error=frame.error)
        if k % 10 == 9:
            _, bearing, _ = bearing_of(pos - world.array_enu)
            seen = Measured(node.latitude_deg, node.longitude_deg,
                            bearing + rng.normal(0, BEARING_NOISE_DEG), t=t)
            ident = store.get(broadcast.uas_id)
            verdicts.append((t - start, judge(ident, t, seen).verdict))
    return verdicts


def test_a_truthful_drone_is_trusted() -> None:
    verdicts = fly(Broadcast("TWIN-HONEST-001"))
    assert all(v == TRUSTED for _, v in verdicts[2:]), verdicts


@pytest.mark.parametrize("transport", ["bluetooth", "wifi_beacon"])
def test_a_drone_claiming_to_be_2_km_away_is_spoofed_within_5_s(transport: str) -> None:
    east, north = 2000.0 * math.sin(math.radians(120)), 2000.0 * math.cos(math.radians(120))
    verdicts = fly(Broadcast("TWIN-LIAR-0001", mode="spoofed", offset_m=(east, north),
                             transport=transport))
    first = next(t for t, v in verdicts if v == SPOOFED)
    assert first <= 5.0
    assert all(v == SPOOFED for t, v in verdicts if t >= first)


def test_a_drone_that_broadcasts_nothing_is_silent() -> None:
    assert {v for _, v in fly(Broadcast("TWIN-QUIET-001", mode="silent"))} == {SILENT}


def test_a_bad_broadcast_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="mode 'loud' unknown"):
        Broadcast("X", mode="loud")


def test_the_system_message_puts_the_operator_where_the_scenario_says() -> None:
    tx = Broadcaster(Broadcast("TWIN-PILOT-001", operator_m=(30.0, -40.0)), 57.0, 11.9)
    ((linktype, data),) = tx.frames(0.0, 10.0, 45.0, 15.0)
    (frame,) = Extractor().extract(linktype, data, 0.0)
    (system,) = [m for m in decode(frame.payload).messages if m["type"] == "system"]
    assert (system["lat"], system["lon"]) == pytest.approx(tx.to_latlon(30.0, -40.0), abs=1e-7)
    assert system["lat"] < 57.0 and system["lon"] > 11.9  # south-east of the mast
