"""Scenario files: the shipped ones load; a wrong one is refused naming file and key."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hal.sim.scenario import SCENARIO_DIR, ScenarioError, load_scenario
from hal.sim.world import World, bearing_of
from tests.sim.conftest import write_scenario

SHIPPED = ["one-drone-crossing", "two-drones-crossing", "drone-hover-approach", "bird-flock",
           "machinery-only", "empty-sky", "remote-id-drones", "two-masts-crossing"]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_loads_and_cites_its_levels(name: str) -> None:
    scenario = load_scenario(name)
    assert scenario.name == name
    text = (SCENARIO_DIR / f"{name}.toml").read_text()
    assert "dB(A) at 1 m" in text or "dB(A)," in text, "levels must cite their source"


def test_remote_id_broadcasts_of_the_shipped_scenario() -> None:
    targets = {t.id: t.remote_id for t in load_scenario("remote-id-drones").targets}
    assert {k: v.mode for k, v in targets.items() if v} == {
        "liar": "spoofed", "survey": "truthful", "quiet": "silent"}


def test_unknown_remote_id_mode_names_file_and_key(tmp_path: Path) -> None:
    path = write_scenario(tmp_path / "bad.toml", """
[[targets]]
id = "drone-9"
kind = "quad"
waypoints = [{ position_m = [0.0, 40.0], altitude_m = 10.0 }]
remote_id = { uas_id = "X-1", mode = "loud" }
""")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert "targets[drone-9].remote_id.mode" in str(err.value)


def test_misspelt_key_names_file_and_key(tmp_path: Path) -> None:
    path = write_scenario(tmp_path / "bad.toml", """
[ambient]
levl_dba = 40
""")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert f"{path}: ambient.levl_dba = 40: unknown key" in str(err.value)


def test_bad_waypoint_is_named_by_target_id(tmp_path: Path) -> None:
    path = write_scenario(tmp_path / "bad.toml", """
[[targets]]
id = "drone-9"
kind = "quad"
waypoints = [{ position_m = [0.0, 10.0], altitude_m = -5.0 }]
""")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert "targets[drone-9].waypoints[0].altitude_m = -5.0" in str(err.value)


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\nhardware = "pi3-unknown"\n[[faults]]\nname = "radar-melted"\n'
                    'at_s = 1\n')
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    text = str(err.value)
    assert "hardware = 'pi3-unknown'" in text
    assert "faults[radar-melted].name" in text


def test_bird_fields_on_a_car_are_refused(tmp_path: Path) -> None:
    path = write_scenario(tmp_path / "bad.toml", """
[[targets]]
id = "van"
kind = "car"
count = 3
waypoints = [{ position_m = [0.0, 10.0], altitude_m = 0.0 }]
""")
    with pytest.raises(ScenarioError, match=r"targets\[van\]: count/spread_m"):
        load_scenario(path)


def test_missing_file_is_named() -> None:
    with pytest.raises(ScenarioError, match=r"no-such-scenario\.toml: cannot read"):
        load_scenario("no-such-scenario")


def test_drone_follows_its_waypoints_at_its_speed() -> None:
    world = World(load_scenario("one-drone-crossing"))
    (body, pos, vel), = world.bodies_at(10.0)
    assert body.id == "drone-1"
    np.testing.assert_allclose(pos, [-70 + 6 * 10, 35, 15])
    np.testing.assert_allclose(vel, [6, 0, 0])
    rng, bearing, elevation = bearing_of(pos - world.array_enu)
    assert rng == pytest.approx(np.sqrt(10**2 + 35**2 + 9**2))
    assert bearing == pytest.approx(np.degrees(np.arctan2(-10, 35)) % 360)
    assert elevation == pytest.approx(np.degrees(np.arctan2(9, np.hypot(10, 35))))


def test_hover_then_approach_holds_at_the_end() -> None:
    world = World(load_scenario("drone-hover-approach"))
    (_, hover, v0), = world.bodies_at(10.0)
    np.testing.assert_allclose(hover, [20, 78, 20])
    assert not v0.any()
    (_, late, _), = world.bodies_at(80.0)
    np.testing.assert_allclose(late, [3, 15, 10])
