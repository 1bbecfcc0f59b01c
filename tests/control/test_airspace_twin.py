"""Airspace rules on the twin: the twin's sky serves a helicopter crossing the site at 300 m and
an airliner far away as Beast on a loopback port; the node's ADS-B stage reads it into the
airspace guard; the effector (on the fake relay board) asks the guard before and during an
engagement."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgenode.config.models import AirspaceSection
from edgenode.daemon.airspace import AdsbStage
from edgenode.health import Health
from edgenode.identify.airspace import Site
from edgenode.identify.rules import AirspaceGuard
from hal.sim.adsb import BeastSky, airliner_far, helicopter_crossing
from tests.control.conftest import (
    Rig,
    RigFactory,
    wait_for,
)

SITE = Site(0.0, 0.0, 0.0)  # make_config's node
HELI = "3C6DD1"
REASON = "medevac flight requested the engagement: known emergency"


class Twin:
    def __init__(self, sky: BeastSky, guard: AirspaceGuard, stage: AdsbStage, rig: Rig):
        self.sky, self.guard, self.stage, self.rig = sky, guard, stage, rig

    def heli_distance(self) -> float | None:
        for a in self.guard.snapshot()["aircraft"]:
            if a["icao"] == HELI:
                return float(a["distance_m"])
        return None

    def arm_and_engage(self, who: str = "alice", **params: Any) -> dict[str, Any]:
        assert self.rig.send("alice", "arm", {"ttl_s": 60})["status"] == "ok"
        return self.rig.send(who, "engage", {"duration_s": 20, **params})


@pytest.fixture
def twin(tmp_path: Path, request: pytest.FixtureRequest, make_rig: RigFactory) -> Iterator[Twin]:
    opts = getattr(request, "param", {})
    heli = helicopter_crossing(SITE.altitude_m, start_m=opts.get("start_m", 3000),
                               speed_kt=opts.get("speed_kt", 5))
    flights = [airliner_far(0)] if opts.get("no_helicopter") else [heli, airliner_far(0)]
    sky = BeastSky(SITE.latitude_deg, SITE.longitude_deg, flights,
                   speed=opts.get("speed", 1.0), rate_hz=4).start()
    section = AirspaceSection.model_validate({
        "adsb_source": f"beast://127.0.0.1:{sky.port}",
        "sectors": [{"name": "village", "from_deg": 80, "to_deg": 120}]})
    guard = AirspaceGuard(section, SITE)
    health = Health()
    stage = AdsbStage(section, guard, health)
    stage.feed.reconnect_min_s = stage.feed.reconnect_max_s = 0.2
    rig = make_rig(health=health, hooks={"airspace": guard.check})
    stage.start()
    t = Twin(sky, guard, stage, rig)
    try:
        assert wait_for(lambda: guard.snapshot()["tracked"] == len(flights) and (
            opts.get("no_helicopter") or t.heli_distance() is not None), 5), guard.snapshot()
        yield t
    finally:
        stage.stop()
        rig.effector.stop()  # before the sky goes (make_rig stops the coil)
        sky.stop()


def audit_kinds(rig: Rig, kind: str) -> list[dict[str, Any]]:
    assert rig.effector.flush()
    return [r for r in rig.audit if r.get("kind") == kind]


def test_engage_is_refused_while_the_helicopter_is_3_km_out(twin: Twin) -> None:
    assert twin.heli_distance() == pytest.approx(3000, abs=100)
    result = twin.arm_and_engage(bearing_deg=200)
    assert result["status"] == "rejected"
    assert result["reason"].startswith("manned_aircraft: CHX24 (3C6DD1) 3.0 km at 180 deg")
    assert not twin.rig.drive_went_high()
    # the airliner 60 km out is in the picture, but far outside the protection volume
    snap = twin.guard.snapshot()
    assert snap["in_volume"] == [HELI] and snap["tracked"] == 2


@pytest.mark.parametrize("twin", [{"start_m": 5400, "speed_kt": 120, "speed": 4.0}],
                         indirect=True)
def test_running_engagement_stops_within_1_s_of_the_helicopter_entering(twin: Twin) -> None:
    result = twin.arm_and_engage(bearing_deg=200)
    assert result["status"] == "ok", result
    assert twin.rig.drive()
    # The helicopter enters the 5 km volume at sky time (5400 - 5000) m / 61.7 m/s.
    entry_mono = twin.sky._mono0 + (400 / (120 * 1852 / 3600)) / twin.sky.speed
    assert wait_for(lambda: not twin.rig.drive(), 8)
    off_at = next(t for t, level in reversed(twin.rig.drive_history()) if not level)
    print(f"relay off {off_at - entry_mono:.3f} s after the helicopter entered the volume")
    assert off_at - entry_mono < 1.0, f"relay off {off_at - entry_mono:.2f} s after entry"
    assert off_at > entry_mono - 0.3  # and not long before it (it was flying outside)
    assert wait_for(lambda: twin.rig.effector.state == "ARMED", 2)
    # The state changes a moment before its audit record is written: wait for the record.
    assert twin.rig.effector.flush(5)
    states = audit_kinds(twin.rig, "state")
    assert any("airspace: manned_aircraft" in (s["data"]["reason"] or "") for s in states), \
        [s["data"]["reason"] for s in states]


@pytest.mark.parametrize("twin", [{"no_helicopter": True}], indirect=True)
def test_engage_towards_a_no_jam_sector_is_refused(twin: Twin) -> None:
    result = twin.arm_and_engage(bearing_deg=100)
    assert result["status"] == "rejected"
    assert result["reason"].startswith("no_jam_sector: bearing 100.0 deg in sector 'village'")
    ok = twin.rig.send("bob", "engage", {"duration_s": 2, "bearing_deg": 200})
    assert ok["status"] == "ok", ok


def test_with_the_feed_cut_engage_is_refused_with_the_reason(twin: Twin) -> None:
    twin.sky.cut()
    assert wait_for(lambda: twin.stage.health.state == "failed", 3)
    result = twin.arm_and_engage(bearing_deg=200)
    assert result["status"] == "rejected"
    assert result["reason"].startswith("adsb_feed_lost: no connection to beast://127.0.0.1:")
    assert "health" not in result["reason"]
    assert twin.stage.health.reason.startswith("no connection")
    twin.sky.restore()
    assert wait_for(lambda: twin.stage.health.state == "ok", 5)


def test_admin_override_engages_and_is_audited(twin: Twin) -> None:
    refused = twin.arm_and_engage("bob", bearing_deg=200, airspace_override=REASON)
    assert refused["status"] == "rejected"
    assert refused["reason"].startswith("role_not_allowed: airspace_override needs an admin")
    short = twin.rig.send("root", "engage", {"duration_s": 3, "bearing_deg": 200,
                                              "airspace_override": "because"})
    assert short["status"] == "rejected" and "8 to 200 characters" in short["reason"]
    result = twin.rig.send("root", "engage", {"duration_s": 3, "bearing_deg": 200,
                                               "airspace_override": REASON})
    assert result["status"] == "ok", result
    assert twin.rig.drive()
    (record,) = audit_kinds(twin.rig, "airspace_override")
    assert record["data"]["reason"] == REASON and record["data"]["by"] == "root"
    assert record["data"]["command"] == result["id"]
    assert record["data"]["overrode"].startswith("manned_aircraft: CHX24")
    time.sleep(0.6)  # the helicopter is still inside: the override holds the engagement
    assert twin.rig.drive()
    assert twin.rig.effector._engaged["airspace_override"] == REASON  # type: ignore[index]


@pytest.mark.parametrize("twin", [{"no_helicopter": True}], indirect=True)
def test_a_running_engagement_stops_when_the_feed_is_lost(twin: Twin) -> None:
    assert twin.arm_and_engage(bearing_deg=200)["status"] == "ok"
    cut = time.monotonic()
    twin.sky.cut()
    assert wait_for(lambda: not twin.rig.drive(), 3)
    off_at = next(t for t, level in reversed(twin.rig.drive_history()) if not level)
    assert off_at - cut < 1.0
    assert wait_for(lambda: twin.rig.effector.state == "ARMED", 2)
    reasons = [s["data"]["reason"] for s in audit_kinds(twin.rig, "state")]
    assert any(r.startswith("airspace: adsb_feed_lost") for r in reasons), reasons
