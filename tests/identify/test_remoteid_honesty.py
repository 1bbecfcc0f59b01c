"""Honesty verdicts: a truthful drone is trusted, a liar is caught by physics, by its own
inconsistency or by our sensors' bearing, and a track that broadcasts nothing is silent."""

from __future__ import annotations

import math

import pytest

from edgenode.identify.remoteid import decode
from edgenode.identify.remoteid_honesty import (
    SILENT,
    SPOOFED,
    SUSPECT,
    TRUSTED,
    Measured,
    bearing_deg,
    distance_m,
    judge,
)
from edgenode.identify.remoteid_store import RemoteIdStore
from hal.remoteid.linktypes import read_capture
from hal.sim import remoteid as tx
from tests.conftest import SHARED_DATA

NODE = (57.0, 12.0)
MAC = "60:60:1f:00:00:01"


def offset(north_m: float, east_m: float) -> tuple[float, float]:
    lat = NODE[0] + north_m / 111_195.0
    lon = NODE[1] + east_m / (111_195.0 * math.cos(math.radians(NODE[0])))
    return lat, lon


def fly(store: RemoteIdStore, uas_id: str, points: list[tuple[float, float, float]], *,
        src: str = MAC, ts0: float = 100.0, ts_step: float | None = None) -> None:
    """Broadcast packs at (t, north_m, east_m); the drone's clock follows t unless told."""
    for k, (t, n, e) in enumerate(points):
        lat, lon = offset(n, e)
        ts = ts0 + (t if ts_step is None else k * ts_step)
        store.update(t, decode(tx.pack([tx.basic_id(uas_id),
                                        tx.location(lat, lon, timestamp_s=ts)])), src=src)


def seen_at(north_m: float, east_m: float, range_known: bool = False) -> Measured:
    return Measured(NODE[0], NODE[1], math.degrees(math.atan2(east_m, north_m)) % 360,
                    math.hypot(north_m, east_m) if range_known else None)


def straight(t0: float = 0.0, n: int = 10) -> list[tuple[float, float, float]]:
    return [(t0 + 0.5 * k, 400.0 + 5.0 * k, 300.0) for k in range(n)]  # 10 m/s north


def test_geometry_helpers() -> None:
    lat, lon = offset(1000.0, 0.0)
    assert distance_m(*NODE, lat, lon) == pytest.approx(1000.0, rel=1e-3)
    assert bearing_deg(*NODE, lat, lon) == pytest.approx(0.0, abs=0.01)
    assert bearing_deg(*NODE, *offset(0.0, 1000.0)) == pytest.approx(90.0, abs=0.01)


def test_a_truthful_drone_is_trusted() -> None:
    store = RemoteIdStore()
    fly(store, "HONEST-1", straight())
    v = judge(store.get("HONEST-1"), now=5.0, measured=seen_at(445.0, 300.0))
    assert v.verdict == TRUSTED, v.reasons
    assert "agrees with our sensors" in " ".join(v.reasons)


def test_a_drone_claiming_a_position_2_km_from_where_we_see_it_is_spoofed() -> None:
    store = RemoteIdStore()
    fly(store, "LIAR-1", [(t, n + 2000.0, e) for t, n, e in straight()])  # claims 2 km north
    ident = store.get("LIAR-1")
    v = judge(ident, now=5.0, measured=seen_at(445.0, 300.0))
    assert v.verdict == SPOOFED
    assert "our sensors see it at 34 deg" in " ".join(v.reasons)
    # the same lie straight down our bearing line: only the radar's range gives it away
    store2 = RemoteIdStore()
    fly(store2, "LIAR-2", [(t, n * 5, e * 5) for t, n, e in straight()])
    assert judge(store2.get("LIAR-2"), 5.0, seen_at(445.0, 300.0)).verdict == TRUSTED
    v = judge(store2.get("LIAR-2"), 5.0, seen_at(445.0, 300.0, range_known=True))
    assert v.verdict == SPOOFED and "our radar measures 537 m" in " ".join(v.reasons)


def test_an_impossible_jump_is_spoofed() -> None:
    store = RemoteIdStore()
    points = [*straight(n=4), (2.0, 3000.0, 300.0)]  # 2.6 km in 0.5 s
    fly(store, "JUMPY", points)
    v = judge(store.get("JUMPY"), now=2.0)
    assert v.verdict == SPOOFED and "jumped" in v.reasons[0]


def test_one_id_from_two_places_at_once_is_spoofed() -> None:
    store = RemoteIdStore()
    fly(store, "CLONED", straight(), src="60:60:1f:00:00:01")
    fly(store, "CLONED", [(t + 0.1, n - 1500.0, e) for t, n, e in straight()],
        src="60:60:1f:00:00:99")
    v = judge(store.get("CLONED"), now=5.0)
    assert v.verdict == SPOOFED and "two places at once" in v.reasons[0]


def test_time_going_backwards_is_suspect() -> None:
    store = RemoteIdStore()
    fly(store, "REPLAYED", straight(), ts_step=-2.0)
    v = judge(store.get("REPLAYED"), now=5.0)
    assert v.verdict == SUSPECT and "went back 2.0 s" in v.reasons[0]
    # the hour turning over is not time going back
    store2 = RemoteIdStore()
    fly(store2, "ON-THE-HOUR", straight(), ts0=3598.0)
    assert judge(store2.get("ON-THE-HOUR"), now=5.0).verdict == TRUSTED


def test_malformed_packs_make_a_sender_suspect_for_a_while() -> None:
    store = RemoteIdStore()
    fly(store, "SLOPPY", straight())
    store.update(5.0, decode(tx.pack([tx.basic_id("SLOPPY"), tx.location(1, 1)])[:30]),
                 src=MAC)
    v = judge(store.get("SLOPPY"), now=6.0)
    assert v.verdict == SUSPECT and "malformed or cut" in v.reasons[0]
    assert judge(store.get("SLOPPY"), now=60.0).verdict == TRUSTED  # long ago


def test_impossible_values_and_missing_positions_are_suspect() -> None:
    store = RemoteIdStore()
    store.update(0.0, decode(tx.pack([tx.basic_id("WEIRD"), tx.location(45.0, -214.6)])),
                 src=MAC)
    v = judge(store.get("WEIRD"), now=1.0)
    assert v.verdict == SUSPECT
    assert any("out of range" in r for r in v.reasons)
    assert any("no position" in r for r in v.reasons)


def test_a_track_without_a_broadcast_is_silent() -> None:
    v = judge(None, now=0.0, measured=seen_at(100.0, 100.0))
    assert v.verdict == SILENT and v.to_dict()["verdict"] == "silent"


@pytest.mark.skipif(not (SHARED_DATA / "remoteid").exists(), reason="shared remoteid data absent")
def test_the_sample_captures_give_a_trusted_beacon_drone_and_a_positionless_ble_one() -> None:
    verdicts = {}
    for name in ("odid_wifi_bcn_sample.pcap", "odid_bt5_lr_sample.pcapng"):
        store = RemoteIdStore(stale_after_s=60)
        last = 0.0
        for f in read_capture(SHARED_DATA / "remoteid" / name):
            store.update(f.t, decode(f.payload), src=f.src, transport=f.transport,
                         frame_error=f.error, crc_ok=f.crc_ok)
            last = f.t
        for ident in store.active(last):
            verdicts[ident.key] = judge(ident, now=last)
    assert verdicts["MFG1A0123456789"].verdict == TRUSTED
    # the BLE demo broadcasts position 0, 0 (unknown) and some damaged packs
    ble = verdicts["SSEVTFG93700070"]
    assert ble.verdict == SUSPECT and any("no position" in r for r in ble.reasons)
