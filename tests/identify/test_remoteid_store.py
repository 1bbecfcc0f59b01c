"""The Remote ID identity store: latest state per transmitter, stale after a configured time,
bounded under a flood of fake IDs (oldest and stale evicted first)."""

from __future__ import annotations

import pytest

from edgenode.identify.remoteid import decode
from edgenode.identify.remoteid_store import RemoteIdStore
from hal.sim import remoteid as tx

MAC = "60:60:1f:00:00:01"


def basic(uas_id: str):
    return decode(tx.basic_id(uas_id))


def loc(lat: float, lon: float, ts: float | None = None):
    return decode(tx.location(lat, lon, timestamp_s=ts))


def test_legacy_messages_from_one_address_come_together_under_the_uas_id() -> None:
    store = RemoteIdStore(stale_after_s=10)
    early = store.update(0.0, loc(57.0, 12.0), src=MAC)
    assert early is not None and early.key == f"src:{MAC}" and early.uas_id is None
    ident = store.update(0.3, basic("SERIAL-A"), src=MAC)
    assert ident is not None and ident.key == "SERIAL-A"
    assert store.get(f"src:{MAC}") is None  # merged, not kept twice
    assert [s.lat for s in ident.sightings] == [57.0]
    store.update(0.6, decode(tx.operator_id("OP-1")), src=MAC)
    store.update(0.9, decode(tx.system(56.99, 11.99)), src=MAC)
    later = store.update(1.0, loc(57.0001, 12.0), src=MAC)
    assert later is ident and len(ident.sightings) == 2
    summary = ident.summary()
    assert summary["uas_id"] == "SERIAL-A" and summary["operator_id"] == "OP-1"
    assert summary["operator_lat"] == pytest.approx(56.99) and summary["lat"] == 57.0001
    assert len(store) == 1


def test_a_pack_names_itself() -> None:
    store = RemoteIdStore()
    ident = store.update(5.0, decode(tx.pack([tx.basic_id("PACKED-1"), tx.location(1.0, 2.0)])),
                         src=None, transport="wifi_beacon")
    assert ident is not None and ident.uas_id == "PACKED-1" and ident.transports == \
        {"wifi_beacon"}
    assert store.update(6.0, loc(1.0, 2.0), src=None) is None  # no ID, no address: untied


def test_malformed_and_damaged_frames_count_but_change_nothing() -> None:
    store = RemoteIdStore()
    store.update(0.0, decode(tx.pack([tx.basic_id("B-1"), tx.location(10.0, 20.0)])), src=MAC)
    cut = tx.pack([tx.basic_id("B-1"), tx.location(11.0, 21.0)])[:40]
    ident = store.update(1.0, decode(cut), src=MAC)
    assert ident is not None and ident.frames_bad == 1 and "truncated" in ident.bad[-1][1]
    store.update(2.0, loc(12.0, 22.0), src=MAC, crc_ok=False)
    assert ident.frames_damaged == 1
    store.update(3.0, loc(12.0, 22.0), src=MAC, frame_error="vendor element cut")
    assert ident.frames_bad == 2
    assert [(s.lat, s.lon) for s in ident.sightings] == [(10.0, 20.0)]


def test_a_broken_pack_heard_first_files_under_its_claimed_id() -> None:
    store = RemoteIdStore()
    cut = tx.pack([tx.basic_id("FIRST-CUT"), tx.location(10.0, 20.0)])[:40]
    early = store.update(0.0, decode(cut), src=None)
    assert early is not None and early.uas_id == "FIRST-CUT" and early.frames_bad == 1
    later = store.update(1.0, decode(tx.pack([tx.basic_id("FIRST-CUT"),
                                              tx.location(10.0, 20.0)])), src=None)
    assert later is early and later.frames_ok == 1 and len(later.sightings) == 1
    assert later.summary()["uas_id"] == "FIRST-CUT"


def test_identities_go_stale_after_the_configured_time() -> None:
    store = RemoteIdStore(stale_after_s=5.0)
    store.update(0.0, basic("OLD"), src="00:00:00:00:00:01")
    store.update(4.0, basic("NEW"), src="00:00:00:00:00:02")
    assert [i.key for i in store.active(now=6.0)] == ["NEW"]
    assert store.expire(now=6.0) == 1
    assert store.get("OLD") is None and store.get("NEW") is not None


def test_a_flood_of_10000_fake_ids_keeps_the_store_bounded_and_the_real_drone() -> None:
    store = RemoteIdStore(stale_after_s=30.0, max_identities=500)
    real = "REAL-DRONE-0001"
    for n in range(10_000):
        t = n * 0.001
        store.update(t, basic(f"FAKE{n:06d}"), src=f"02:00:00:{n >> 16 & 255:02x}:"
                     f"{n >> 8 & 255:02x}:{n & 255:02x}")
        if n % 50 == 0:  # the real drone keeps talking, every 50 ms
            store.update(t, loc(57.0, 12.0), src=MAC)
            store.update(t, basic(real), src=MAC)
    assert len(store) == 500
    assert store.evicted >= 9_500
    assert store.get(real) is not None  # recently heard: kept
    assert store.get("FAKE000000") is None  # the oldest went first
    assert store.get("FAKE009999") is not None
    assert len(store._by_src) <= 4 * 500


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="stale_after_s"):
        RemoteIdStore(stale_after_s=0)
