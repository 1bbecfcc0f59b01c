"""The airspace picture, the no-jam geometry and the [airspace] config section."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from edgenode.config import ConfigError, load_config
from edgenode.config.models import AirspaceSection
from edgenode.identify.airspace import AirspacePicture, Site
from edgenode.identify.nojam import NoJamGeometry
from edgenode.identify.rules import AirspaceGuard
from hal.adsb.types import AircraftUpdate
from tests.conftest import ROOT

SITE = Site(52.0, 13.0, 100.0)
M_PER_DEG = 111_195.0


def at(east_m: float, north_m: float) -> tuple[float, float]:
    return (SITE.latitude_deg + north_m / M_PER_DEG,
            SITE.longitude_deg + east_m / (M_PER_DEG * math.cos(math.radians(52.0))))


def update(icao: str, east_m: float, north_m: float, alt_ft: float | None = 1312.0,
           t: float = 100.0, **kw: object) -> AircraftUpdate:
    lat, lon = at(east_m, north_m)
    return AircraftUpdate(t=t, icao=icao, lat=lat, lon=lon, alt_ft=alt_ft, **kw)  # type: ignore[arg-type]


def test_picture_gives_distance_bearing_height_and_closing_speed() -> None:
    pic = AirspacePicture(SITE)
    pic.apply(update("AAAAAA", 0, -3000, alt_ft=(100 + 300) / 0.3048))
    pic.apply(AircraftUpdate(t=100.5, icao="AAAAAA", speed_kt=100.0, track_deg=0.0,
                             callsign="CHX24"))
    (c,) = pic.contacts(101.0)
    assert c.distance_m == pytest.approx(3000, rel=0.01)
    assert c.bearing_deg == pytest.approx(180, abs=0.5)
    assert c.height_m == pytest.approx(300, abs=1)
    assert c.closing_mps == pytest.approx(100 * 1852 / 3600, rel=0.01)  # flying at the site
    assert c.aircraft.callsign == "CHX24" and c.age_s == pytest.approx(1.0)


def test_aircraft_go_stale_and_memory_is_bounded() -> None:
    pic = AirspacePicture(SITE, stale_s=10, max_aircraft=50)
    for i in range(200):
        pic.apply(update(f"{i:06X}", 100.0 * i, 0))
    assert len(pic) == 50
    # the nearest are kept
    assert {c.aircraft.icao for c in pic.contacts(100.0)} == {f"{i:06X}" for i in range(50)}
    pic.apply(AircraftUpdate(t=105.0, icao="000001", alt_ft=2000.0))  # heard, no new position
    assert pic.contacts(111.0) == []  # every position older than 10 s
    assert len(pic) == 1  # only 000001 was heard within 10 s


def section(**kw: object) -> AirspaceSection:
    return AirspaceSection.model_validate(kw)


def test_sectors_wrap_through_north_and_widen_by_half_the_beam() -> None:
    geo = NoJamGeometry(section(sectors=[{"name": "road", "from_deg": 350, "to_deg": 10}],
                                beam_width_deg=20), SITE)
    assert "road" in (geo.refusal(355.0) or "")
    assert "road" in (geo.refusal(5.0) or "")
    assert "road" in (geo.refusal(19.0) or "")  # the beam's edge reaches the sector
    assert geo.refusal(25.0) is None
    assert geo.refusal(180.0) is None


def test_circles_block_the_bearings_they_cover_within_reach() -> None:
    lat, lon = at(2000, 0)  # 2 km east
    far_lat, far_lon = at(0, 20_000)
    geo = NoJamGeometry(section(jam_range_m=3000, circles=[
        {"name": "helipad", "latitude_deg": lat, "longitude_deg": lon, "radius_m": 500},
        {"name": "airport", "latitude_deg": far_lat, "longitude_deg": far_lon,
         "radius_m": 2000}]), SITE)
    assert geo.refusal(90.0).startswith("no_jam_sector")  # type: ignore[union-attr]
    assert "helipad" in (geo.refusal(100.0) or "")  # asin(0.5/2) = 14.5 deg either side
    assert geo.refusal(110.0) is None
    assert geo.refusal(0.0) is None  # the airport is out of the jammer's reach


def test_ceiling_and_a_site_inside_a_circle() -> None:
    geo = NoJamGeometry(section(ceiling_m=200), SITE)
    assert "ceiling" in (geo.refusal(90.0, height_m=250) or "")
    assert geo.refusal(90.0, height_m=150) is None
    inside = NoJamGeometry(section(circles=[{"name": "town", "latitude_deg": 52.0,
                                             "longitude_deg": 13.0, "radius_m": 1000}]), SITE)
    assert "inside no-jam circle 'town'" in (inside.refusal(90.0) or "")


def test_guard_refuses_for_aircraft_in_the_volume_and_a_lost_feed() -> None:
    guard = AirspaceGuard(section(adsb_source="beast://127.0.0.1:30005"), SITE)
    assert (guard.engage_refusal(90.0, now=100) or "").startswith("adsb_feed_lost")
    guard.feed_state(True)
    assert guard.engage_refusal(90.0, now=100) is None
    guard.apply(update("AAAAAA", 0, -3000, alt_ft=(100 + 300) / 0.3048, callsign="CHX24"))
    reason = guard.engage_refusal(90.0, now=100.5) or ""
    assert reason.startswith("manned_aircraft: CHX24 (AAAAAA) 3.0 km at 180 deg")
    # above the protection height, or beyond the radius: not in the volume
    guard = AirspaceGuard(section(), SITE)
    guard.apply(update("BBBBBB", 0, -3000, alt_ft=(100 + 2000) / 0.3048))
    guard.apply(update("CCCCCC", 6000, 0))
    assert guard.engage_refusal(90.0, now=100.5) is None
    snap = guard.snapshot(now=100.5)
    assert [a["icao"] for a in snap["aircraft"]] == ["BBBBBB", "CCCCCC"]
    # fail_safe off: a lost feed no longer refuses
    guard = AirspaceGuard(section(adsb_source="sbs://127.0.0.1:30003", fail_safe=False), SITE)
    assert guard.engage_refusal(90.0, now=100) is None


def test_airspace_config_mistakes_are_reported_with_their_keys(tmp_path: Path) -> None:
    text = (ROOT / "hardware/dev-fake.toml").read_text() + """
[airspace]
adsb_source = "http://127.0.0.1:30005"
protection_radius_m = 100
picture_radius_m = 2000
sectors = [{ name = "village", from_deg = 400, to_deg = 20 },
           { name = "road", from_deg = 20, to_deg = 20 }]
circles = [{ name = "helipad", latitude_deg = 52.0, longitude_deg = 13.0 }]
"""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    keys = {p.key for p in info.value.problems}
    assert keys == {"airspace.adsb_source", "airspace.protection_radius_m",
                    "airspace.sectors.0.from_deg", "airspace.sectors.1",
                    "airspace.circles.0.radius_m"}
    text = text.replace('"http:', '"beast:').replace("= 100\n", "= 5000\n") \
        .replace("400", "40").replace("to_deg = 20 }]", "to_deg = 30 }]") \
        .replace("13.0 }]", "13.0, radius_m = 300 }]")
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.key == "airspace" and "picture_radius_m 2000" in problem.rule


def test_aircraft_become_manned_aircraft_tracks_that_are_never_engageable() -> None:
    import jsonschema

    from edgenode.link.payloads import load_schema

    schema = load_schema("events")
    track_schema = {**schema["$defs"]["track"], "$defs": schema["$defs"]}
    guard = AirspaceGuard(section(), SITE)
    guard.apply(update("AAAAAA", 0, -3000, callsign="CHX24", t=100.0))
    guard.apply(AircraftUpdate(t=100.0, icao="AAAAAA", speed_kt=80.0, track_deg=0.0))
    (new,) = guard.track_events(now=100.0)
    assert new["type"] == "new"
    state = new["after"]
    jsonschema.validate(state, track_schema)
    assert state["classification"] == [{"type": "manned_aircraft", "confidence": 1.0}]
    assert state["sensors"] == ["adsb"] and state["adsb"]["callsign"] == "CHX24"
    assert state["azimuth_deg"]["value"] == pytest.approx(180, abs=0.5)
    assert state["velocity_enu_mps"]["north"] == pytest.approx(80 * 1852 / 3600, abs=0.1)
    assert guard.track_events(now=100.3) == []  # nothing new
    guard.apply(update("AAAAAA", 0, -2900, t=101.5))
    (upd,) = guard.track_events(now=101.5)
    assert upd["type"] == "update" and upd["object_id"] == new["object_id"]
    reason = guard.check({"track": new["object_id"], "duration_s": 5}, running=False)
    assert (reason or "").startswith(f"never_engageable: track {new['object_id']} is the "
                                     "manned aircraft AAAAAA")
    (end,) = guard.track_events(now=200.0)  # not heard for longer than stale_s
    assert end["type"] == "end" and end["after"]["status"] == "ended"
    jsonschema.validate(end["after"], track_schema)
