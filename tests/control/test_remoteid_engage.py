"""The allow-list at the effector: a drone's broadcasts (the twin's transmitter, through the
real carrier parser and decoder) fill the daemon's RemoteIdGuard; the effector (fake relay
board) asks it before an engage. Refused on an allow-listed, trusted track unless an admin's
identity_override says why; the refusal and the override are audited."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgenode.config.models import RemoteIdSection
from edgenode.daemon.remoteid import AllowListKeeper
from edgenode.identify.identity_guard import RemoteIdGuard
from edgenode.ulid import new_ulid
from hal.remoteid.linktypes import Extractor
from hal.sim.remoteid import Broadcast, Broadcaster
from tests.control.conftest import (
    Rig,
    RigFactory,
)

REASON = "hijacked survey drone, confirmed by phone"
EAST, NORTH = 30.0, 40.0  # the drone, metres from the node (lat 0, lon 0: make_config's)
BEARING = math.degrees(math.atan2(EAST, NORTH)) % 360


def broadcast(guard: RemoteIdGuard, b: Broadcast, seconds: int = 4) -> None:
    tx, ex = Broadcaster(b, 0.0, 0.0), Extractor()
    now = time.time()
    for k in range(seconds):
        t = now - seconds + 1 + k
        for linktype, data in tx.frames(t, EAST, NORTH, 20.0, wall_t=t):
            for frame in ex.extract(linktype, data, t):
                guard.feed(frame)


def track(object_id: str) -> dict[str, Any]:
    return {"object_id": object_id, "status": "confirmed", "t": time.time(),
            "azimuth_deg": {"value": BEARING, "error": 2.0},
            "range_m": {"value": math.hypot(EAST, NORTH, 20.0), "error": 1.0}}


@pytest.fixture
def rig(tmp_path: Path, make_rig: RigFactory) -> Iterator[tuple[Rig, RemoteIdGuard]]:
    section = RemoteIdSection.model_validate({"allow": [
        {"uas_id": "SURVEY-0001", "expires": "2099-01-01T00:00:00Z", "approved_by": "root"}]})
    guard = RemoteIdGuard(section, 0.0, 0.0)
    keeper = AllowListKeeper(guard, tmp_path / "remoteid-allow.json")
    rig = make_rig(hooks={"identity": guard.check, "allow_list": keeper.change})
    try:
        yield rig, guard
    finally:
        rig.effector.stop()


def engage(rig: Rig, who: str = "bob", **params: Any) -> dict[str, Any]:
    assert rig.send("alice", "arm", {"ttl_s": 60})["status"] == "ok"
    return rig.send(who, "engage", {"duration_s": 2, **params})


def test_engage_on_an_allow_listed_trusted_track_needs_an_admin_override(
        rig: tuple[Rig, RemoteIdGuard]) -> None:
    r, guard = rig
    broadcast(guard, Broadcast("SURVEY-0001"))
    tid = new_ulid()
    guard.associate([track(tid)], time.time())
    ident = guard.identity(tid)
    assert (ident["uas_id"], ident["verdict"], ident["allowed"]) == ("SURVEY-0001", "trusted",
                                                                    True)
    refused = engage(r, track=tid)
    assert refused["status"] == "rejected"
    assert refused["reason"].startswith("allow_listed: refused: the track carries SURVEY-0001")
    # towards its bearing, without naming the track: refused as well
    assert engage(r, bearing_deg=round(BEARING, 1))["reason"].startswith("allow_listed")
    # the override is an admin's alone
    by_operator = engage(r, track=tid, identity_override=REASON)
    assert by_operator["reason"].startswith("role_not_allowed: identity_override")
    assert not r.drive_went_high()
    ok = engage(r, "root", track=tid, identity_override=REASON)
    assert ok["status"] == "ok", ok
    assert r.drive()
    assert r.effector.flush()
    overrides = [a for a in r.audit if a.get("kind") == "identity_override"]
    assert overrides and overrides[0]["data"]["reason"] == REASON
    assert overrides[0]["data"]["overrode"].startswith("allow_listed: refused")
    results = [a["data"]["reason"] or "" for a in r.audit if a.get("kind") == "result"]
    assert any(x.startswith("allow_listed") for x in results)


def test_a_copied_allow_listed_id_that_lies_protects_nothing(
        rig: tuple[Rig, RemoteIdGuard]) -> None:
    r, guard = rig
    broadcast(guard, Broadcast("SURVEY-0001", mode="spoofed", offset_m=(1732.0, -1000.0)))
    tid = new_ulid()
    guard.associate([track(tid)], time.time())
    ident = guard.identity(tid)
    assert ident["verdict"] == "spoofed" and ident["allowed"]
    assert engage(r, track=tid)["status"] == "ok"


def test_a_track_with_no_broadcast_is_silent_and_engageable(
        rig: tuple[Rig, RemoteIdGuard]) -> None:
    r, guard = rig
    tid = new_ulid()
    guard.associate([track(tid)], time.time())
    assert guard.identity(tid)["verdict"] == "silent"
    assert guard.identity(tid)["uas_id"] is None
    assert engage(r, track=tid)["status"] == "ok"


def test_an_allow_list_expiry_without_a_time_zone_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="needs a time zone"):
        RemoteIdSection.model_validate({"allow": [
            {"uas_id": "X-1", "expires": "2099-01-01T00:00:00", "approved_by": "root"}]})


def test_allow_list_changes_by_admin_command_are_audited_and_kept(
        rig: tuple[Rig, RemoteIdGuard], tmp_path: Path) -> None:
    r, guard = rig
    until = time.time() + 3600
    by_operator = r.send("alice", "allow-add", {"uas_id": "FARM-0007", "expires_at": until})
    assert by_operator["reason"].startswith("role_not_allowed")
    past = r.send("root", "allow-add", {"uas_id": "FARM-0007", "expires_at": time.time() - 1})
    assert past["status"] == "rejected" and "is not in the future" in past["reason"]
    added = r.send("root", "allow-add", {"uas_id": "FARM-0007", "expires_at": until,
                                         "note": "crop spraying"})
    assert added["status"] == "ok", added
    assert r.send("root", "allow-remove", {"uas_id": "SURVEY-0001"})["status"] == "ok"
    assert guard.allow.allowed("FARM-0007", time.time()).approved_by == "root"
    assert guard.allow.allowed("SURVEY-0001", time.time()) is None
    # a restart: the config's list again, with the changes made by command on top
    again = RemoteIdGuard(guard.section, 0.0, 0.0)
    AllowListKeeper(again, tmp_path / "remoteid-allow.json")
    assert [e.uas_id for e in again.allow.entries()] == ["FARM-0007"]
    assert r.effector.flush()
    changes = [a["data"] for a in r.audit if a.get("kind") == "allow_list"]
    assert [(c["action"], c["params"]["uas_id"], c["by"]) for c in changes] == [
        ("allow-add", "FARM-0007", "root"), ("allow-remove", "SURVEY-0001", "root")]
    # the removed ID no longer protects its track
    broadcast(guard, Broadcast("SURVEY-0001"))
    tid = new_ulid()
    guard.associate([track(tid)], time.time())
    assert guard.identity(tid)["verdict"] == "trusted"
    assert engage(r, track=tid)["status"] == "ok"
