"""Several masts under one sky: a scenario's `[[masts]]`, the twin playing one of them
(`--mast`), and a sky epoch shared by twins started at different moments (`--sky-epoch`)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest

from edgenode.central.geometry import LocalFrame
from edgenode.cli.sim import check_sky, sim_config
from edgenode.config.models import NodeSection
from hal.sim.scenario import ScenarioError, load_scenario
from hal.sim.world import World, bearing_of
from tests.sim.conftest import write_scenario

MASTS = """
[node]
latitude_deg = 57.0
longitude_deg = 11.9
mast_heading_deg = 90.0

[[masts]]
name = "north"
position_m = [0.0, 200.0]

[[masts]]
name = "south"
position_m = [0.0, -200.0]
mast_heading_deg = 45.0
mast_height_m = 10.0

[[targets]]
id = "drone-1"
kind = "quad"
after_end = "hold"
waypoints = [{ position_m = [240.0, 0.0], altitude_m = 40.0 }]
"""


def test_each_mast_sees_the_one_sky_from_where_its_foot_stands(tmp_path: Path) -> None:
    scenario = load_scenario(write_scenario(tmp_path / "masts.toml", MASTS))
    seen = {}
    for mast in ("north", "south"):
        world = World(scenario, mast)
        ((_, pos, _),) = world.bodies_at(1.0)
        assert list(pos) == [240.0, 0.0, 40.0]  # the site's frame, whoever looks
        seen[mast] = bearing_of(pos - world.array_enu)
    assert seen["north"][1] == pytest.approx(math.degrees(math.atan2(240, -200)) % 360)
    assert seen["south"][1] == pytest.approx(math.degrees(math.atan2(240, 200)))
    assert seen["north"][0] == pytest.approx(math.dist([240, 0, 40], [0, 200, 6]))
    assert seen["south"][0] == pytest.approx(math.dist([240, 0, 40], [0, -200, 10]))
    # Each mast's own pose: its latitude/longitude 200 m from the origin, its heading/height
    # where it gives them, [node]'s otherwise.
    frame = LocalFrame(57.0, 11.9)
    north, _ = scenario.mast_pose("north")
    south, _ = scenario.mast_pose("south")
    assert frame.to_en(north.latitude_deg, north.longitude_deg) == pytest.approx((0, 200))
    assert frame.to_en(south.latitude_deg, south.longitude_deg) == pytest.approx((0, -200))
    assert (north.mast_heading_deg, north.mast_height_m) == (90.0, 6.0)
    assert (south.mast_heading_deg, south.mast_height_m) == (45.0, 10.0)


def test_a_scenario_without_masts_is_seen_from_node_at_the_origin() -> None:
    scenario = load_scenario("one-drone-crossing")
    assert scenario.mast_pose(None) == (scenario.node, (0.0, 0.0))
    assert list(World(scenario).array_enu) == [0.0, 0.0, scenario.node.mast_height_m]


def test_which_mast_a_twin_plays_must_be_said_and_must_exist(tmp_path: Path) -> None:
    path = write_scenario(tmp_path / "masts.toml", MASTS)
    with pytest.raises(ValueError, match=r"has masts \['north', 'south'\]: choose the one "
                       r"this twin plays \(--mast NAME\)"):
        check_sky(path, None, None)
    with pytest.raises(ValueError, match=r"mast 'west' is not in scenario 'masts'; its masts "
                       r"are \['north', 'south'\]"):
        check_sky(path, "west", None)
    with pytest.raises(ValueError, match=r"mast 'north' is not in scenario "
                       r"'one-drone-crossing'; it has no \[\[masts\]\]"):
        check_sky("one-drone-crossing", "north", None)
    with pytest.raises(ValueError, match=r"--sky-epoch .* is in the future"):
        check_sky(path, "north", time.time() + 60)
    check_sky(path, "south", time.time() - 60)


def test_a_misspelt_or_repeated_mast_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    path = write_scenario(tmp_path / "bad.toml", """
[[masts]]
name = "north"
position_m = [0.0, 200.0]
heading_deg = 90.0

[[masts]]
name = "east"
position_m = [300.0]
""")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert f"{path}: masts[north].heading_deg = 90.0: unknown key" in str(err.value)
    assert f"{path}: masts[east].position_m = [300.0]: List should have at least 2 items" \
        in str(err.value)
    path = write_scenario(tmp_path / "twice.toml", """
[[masts]]
name = "north"
position_m = [0.0, 200.0]

[[masts]]
name = "north"
position_m = [0.0, -200.0]
""")
    with pytest.raises(ScenarioError, match="mast names must be unique"):
        load_scenario(path)


def test_twins_given_one_sky_epoch_fly_the_drone_alike_and_name_their_nodes_by_mast(
        tmp_path: Path, twin_factory) -> None:
    path = write_scenario(tmp_path / "masts.toml", MASTS.replace(
        'after_end = "hold"\nwaypoints = [{ position_m = [240.0, 0.0], altitude_m = 40.0 }]',
        'waypoints = [{ position_m = [240.0, 0.0], altitude_m = 40.0, speed_mps = 10.0 },\n'
        '  { position_m = [240.0, -3000.0], altitude_m = 40.0 }]'))
    epoch = time.time() - 30.0  # the sky has been under way for 30 s
    north = twin_factory(path, "--mast", "north", "--sky-epoch", repr(epoch), name="north")
    time.sleep(1.0)  # started a second apart, as two daemons are
    south = twin_factory(path, "--mast", "south", "--sky-epoch", repr(epoch), name="south")
    for twin in (north, south):
        twin.wait_truth(lambda r: r.get("id") == "drone-1" and r["t"] > time.time() - 0.6)
    sky = World(load_scenario(path), "north")  # the drone at scenario time t
    for name, twin in (("north", north), ("south", south)):
        records = [r for r in twin.truth() if r.get("id") == "drone-1"]
        assert records[0]["sim_t"] > 30.0  # the sky was under way before this twin started
        for r in records:
            # scenario time runs from the shared epoch, so the drone is where the wall clock
            # says, in both twins (10 m/s: 0.1 m is 10 ms)
            assert r["sim_t"] == pytest.approx(r["t"] - epoch, abs=0.05)
            ((_, pos, _),) = sky.bodies_at(r["t"] - epoch)
            assert r["enu_m"] == pytest.approx(list(pos), abs=0.1)
        # each measures range and bearing from its own mast
        mast = [0.0, 200.0, 6.0] if name == "north" else [0.0, -200.0, 10.0]
        assert records[-1]["range_m"] == pytest.approx(math.dist(records[-1]["enu_m"], mast),
                                                       abs=0.02)
        assert twin.endpoints["mast"] == name and twin.endpoints["sky_epoch"] == epoch
    # the node config each daemon gets: its mast's name and place
    nodes = {name: NodeSection.model_validate(
        sim_config(twin.endpoints, "mqtt://127.0.0.1:1883", "k" * 44)["node"])
        for name, twin in (("north", north), ("south", south))}
    frame = LocalFrame(57.0, 11.9)
    assert {n.id for n in nodes.values()} == {"north", "south"}
    assert frame.to_en(nodes["north"].latitude_deg, nodes["north"].longitude_deg) == \
        pytest.approx((0.0, 200.0), abs=0.01)
    assert frame.to_en(nodes["south"].latitude_deg, nodes["south"].longitude_deg) == \
        pytest.approx((0.0, -200.0), abs=0.01)
    assert nodes["south"].mast_heading_deg == 45.0
