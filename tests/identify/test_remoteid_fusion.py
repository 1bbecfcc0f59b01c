"""Remote ID onto our tracks, and the allow-list's engage rule: a registered, trusted drone on
a track protects it from an engage without an admin override; a spoofed copy of its ID does
not; a silent track carries no identity."""

from __future__ import annotations

import math

import pytest

from edgenode.identify.remoteid import decode
from edgenode.identify.remoteid_allowlist import AllowEntry, AllowList, engage_allowed
from edgenode.identify.remoteid_fusion import TrackView, associate
from edgenode.identify.remoteid_store import RemoteIdStore
from hal.sim import remoteid as tx

NODE = (57.0, 12.0)
NOW_UNIX = 1_800_000_000.0


def at(north_m: float, east_m: float) -> tuple[float, float]:
    return (NODE[0] + north_m / 111_195.0,
            NODE[1] + east_m / (111_195.0 * math.cos(math.radians(NODE[0]))))


def broadcast(store: RemoteIdStore, uas_id: str, src: str, north: float, east: float,
              t0: float = 0.0, n: int = 5) -> None:
    for k in range(n):
        lat, lon = at(north + 2.0 * k, east)
        store.update(t0 + 0.5 * k, decode(tx.pack([tx.basic_id(uas_id),
                                                   tx.location(lat, lon)])), src=src)


def bearing(north: float, east: float) -> float:
    return math.degrees(math.atan2(east, north)) % 360


def test_tracks_take_the_broadcast_that_matches_their_bearing() -> None:
    store = RemoteIdStore()
    broadcast(store, "SURVEY-01", "00:00:00:00:00:01", 300.0, 300.0)  # north-east
    broadcast(store, "SURVEY-02", "00:00:00:00:00:02", -200.0, 100.0)  # south-south-east
    tracks = [TrackView("trk-b", bearing(-190, 100)), TrackView("trk-a", bearing(308, 300)),
              TrackView("trk-c", 270.0)]
    out = {a.track_id: a for a in associate(tracks, store.active(2.0), node_lat=NODE[0],
                                            node_lon=NODE[1], now=2.0)}
    assert (out["trk-a"].uas_id, out["trk-a"].how) == ("SURVEY-01", "position")
    assert (out["trk-b"].uas_id, out["trk-b"].how) == ("SURVEY-02", "position")
    assert out["trk-a"].verdict.verdict == "trusted"
    assert out["trk-c"].uas_id is None and out["trk-c"].verdict.verdict == "silent"
    assert out["trk-a"].to_dict()["identity"]["uas_id"] == "SURVEY-01"


def test_a_liar_that_is_the_only_broadcaster_is_paired_by_elimination_and_spoofed() -> None:
    store = RemoteIdStore()
    broadcast(store, "LIAR-01", "00:00:00:00:00:09", 2000.0, -1500.0)  # claims far north-west
    tracks = [TrackView("trk-1", bearing(100, 100), t=2.0)]  # we see it north-east, close
    (a,) = associate(tracks, store.active(2.0), node_lat=NODE[0], node_lon=NODE[1], now=2.0)
    assert (a.track_id, a.uas_id, a.how) == ("trk-1", "LIAR-01", "elimination")
    assert a.verdict.verdict == "spoofed"


def test_an_identity_without_a_track_is_still_judged() -> None:
    store = RemoteIdStore()
    broadcast(store, "FAR-AWAY", "00:00:00:00:00:03", 900.0, 0.0)
    store.update(2.0, decode(tx.basic_id("NO-POSITION")), src="00:00:00:00:00:04")
    out = associate([TrackView("trk-1", 90.0), TrackView("trk-2", 180.0)], store.active(2.0),
                    node_lat=NODE[0], node_lon=NODE[1], now=2.0)
    by_id = {a.uas_id: a for a in out}
    assert by_id["FAR-AWAY"].track_id is None and by_id["FAR-AWAY"].verdict.verdict == \
        "trusted"
    assert by_id["NO-POSITION"].verdict.verdict == "suspect"
    assert [a.verdict.verdict for a in out if a.track_id] == ["silent", "silent"]


def registered() -> AllowList:
    return AllowList([AllowEntry("SURVEY-01", NOW_UNIX + 3600, "admin-key-7", "pipeline survey")])


def test_engage_on_an_allow_listed_trusted_drone_is_refused_without_override() -> None:
    store = RemoteIdStore()
    broadcast(store, "SURVEY-01", "00:00:00:00:00:01", 300.0, 300.0)
    (a,) = associate([TrackView("trk-a", bearing(308, 300))], store.active(2.0),
                     node_lat=NODE[0], node_lon=NODE[1], now=2.0)
    ok, why = engage_allowed(a, registered(), NOW_UNIX)
    assert not ok and "SURVEY-01" in why and "admin-key-7" in why and "override" in why
    ok, why = engage_allowed(a, registered(), NOW_UNIX, admin_override=True)
    assert ok and why.startswith("admin override")
    ok, why = engage_allowed(a, registered(), NOW_UNIX + 7200)  # the entry has expired
    assert ok and "not on the allow-list" in why


def test_a_spoofed_copy_of_an_allow_listed_id_is_not_protected() -> None:
    store = RemoteIdStore()
    broadcast(store, "SURVEY-01", "00:00:00:00:00:66", 2000.0, -1500.0)
    (a,) = associate([TrackView("trk-x", bearing(100, 100), t=2.0)], store.active(2.0),
                     node_lat=NODE[0], node_lon=NODE[1], now=2.0)
    ok, why = engage_allowed(a, registered(), NOW_UNIX)
    assert ok and "allow-listed but its broadcast is spoofed" in why
    assert engage_allowed(None, registered(), NOW_UNIX)[0]


def test_allow_list_entries_are_checked() -> None:
    allow = AllowList()
    with pytest.raises(ValueError, match="not in the future"):
        allow.add(AllowEntry("X-1", NOW_UNIX - 1, "admin"), NOW_UNIX)
    with pytest.raises(ValueError, match="approved_by is required"):
        allow.add(AllowEntry("X-1", NOW_UNIX + 1, ""), NOW_UNIX)
    with pytest.raises(ValueError, match=r"1\.\.20 printable"):
        AllowList([AllowEntry("X" * 21, NOW_UNIX + 1, "admin")])
    allow.add(AllowEntry("X-1", NOW_UNIX + 10, "admin"), NOW_UNIX)
    assert allow.allowed("X-1", NOW_UNIX) is not None
    assert [e.uas_id for e in allow.prune(NOW_UNIX + 11)] == ["X-1"]
    assert allow.entries() == [] and not allow.remove("X-1")
