"""hal.adsb on its own: Beast framing (escapes, any chunking, garbage), CRC failures, position
jumps, SBS lines, and the feed's reconnect with backoff (fake backend and the twin's sky)."""

from __future__ import annotations

import random
import time

import pytest

from hal.adsb.beast import BeastFramer, encode_frame
from hal.adsb.feed import AdsbFeed, FakeAdsbBackend, parse_url
from hal.adsb.modes import ModeSDecoder
from hal.adsb.sbs import SbsError, parse_line
from hal.sim.adsb import (
    BeastSky,
    Flight,
    encode_identification,
    encode_position,
    encode_velocity,
)

ICAO = "3C6DD1"


def track(lat0: float, lon0: float, n: int, dlat: float = 0.001) -> list[bytes]:
    return [encode_position(ICAO, lat0 + i * dlat, lon0, 3000, i % 2) for i in range(n)]


def test_frames_survive_any_chunking_and_escapes() -> None:
    msgs = [encode_identification(ICAO, "CHX24"), *track(52.0, 13.0, 6)]
    # 0x1a in the timestamp and in the signal byte: both must be doubled on the wire.
    stream = b"".join(encode_frame(m, mlat_ticks=0x1A1A1A1A1A1A, signal=0x1A) for m in msgs)
    assert stream.count(b"\x1a\x1a") >= 4 * len(msgs)
    for size in (1, 2, 3, 7, 64):
        framer = BeastFramer()
        frames = []
        for i in range(0, len(stream), size):
            frames += framer.feed(stream[i:i + size])
        assert [f.message for f in frames] == msgs
        assert {f.mlat_ticks for f in frames} == {0x1A1A1A1A1A1A}
        assert framer.garbage_bytes == 0


def test_garbage_between_frames_is_counted_and_skipped() -> None:
    good = encode_frame(encode_identification(ICAO, "CHX24"))
    framer = BeastFramer()
    frames = framer.feed(b"hello\x00\xff" + good + b"\x1a\x99junk" + good)
    assert len(frames) == 2
    assert framer.garbage_bytes >= 9


def test_random_bytes_never_give_a_trusted_aircraft() -> None:
    rng = random.Random(7)
    feed = AdsbFeed("beast://127.0.0.1:1", backend=FakeAdsbBackend(
        [bytes(rng.randrange(256) for _ in range(4096)) for _ in range(25)]))
    updates = []
    for _ in range(30):
        updates += feed.poll(0.01)
    assert updates == []
    stats = feed.stats()
    assert stats["garbage_bytes"] > 50_000


def test_crc_failures_are_counted_never_trusted() -> None:
    dec = ModeSDecoder()
    good = encode_identification(ICAO, "CHX24")
    bad = bytearray(good)
    bad[6] ^= 0x04  # one flipped bit in the callsign
    assert dec.decode(bytes(bad), 0.0) is None
    assert dec.counters["crc_fail"] == 1
    update = dec.decode(good, 0.1)
    assert update is not None and update.callsign == "CHX24"


def test_replies_from_an_address_never_heard_in_a_squitter_are_dropped() -> None:
    dec = ModeSDecoder()
    # DF4 altitude reply: its address is only the parity; nothing vouches for it.
    df4 = bytes.fromhex("20001838CA3804")
    assert dec.decode(df4, 0.0) is None
    assert dec.counters["unknown_address"] == 1


def test_positions_come_from_cpr_pairs() -> None:
    dec = ModeSDecoder()
    ups = [dec.decode(m, i * 0.5) for i, m in enumerate(track(52.0, 13.0, 4))]
    assert ups[0] is not None and ups[0].lat is None  # one frame alone: no position yet
    for i, u in enumerate(ups[1:], start=1):
        assert u is not None and u.lat == pytest.approx(52.0 + i * 0.001, abs=1e-4)
        assert u.lon == pytest.approx(13.0, abs=1e-4) and u.alt_ft == 3000
    v = dec.decode(encode_velocity(ICAO, 120, 90), 2.0)
    assert v is not None and v.speed_kt == pytest.approx(120, abs=1)
    assert v.track_deg == pytest.approx(90, abs=0.5)


def test_a_50_km_jump_is_not_trusted_until_consistent() -> None:
    dec = ModeSDecoder()
    for i, m in enumerate(track(52.0, 13.0, 4)):
        dec.decode(m, i * 0.5)
    # 0.45 deg of latitude is 50 km: a position there half a second later is held...
    jumped = dec.decode(encode_position(ICAO, 52.45, 13.0, 3000, 0), 2.0)
    assert jumped is not None and jumped.lat is None
    assert dec.counters["position_held"] >= 1
    # ...and trusted once the next position agrees with it (the aircraft really is there).
    again = dec.decode(encode_position(ICAO, 52.451, 13.0, 3000, 1), 2.5)
    assert again is not None and again.lat == pytest.approx(52.451, abs=1e-4)


def test_a_phantom_jump_does_not_move_the_aircraft() -> None:
    dec = ModeSDecoder()
    for i, m in enumerate(track(52.0, 13.0, 4)):
        dec.decode(m, i * 0.5)
    phantom = dec.decode(encode_position(ICAO, 52.45, 13.0, 3000, 0), 2.0)
    assert phantom is None or phantom.lat is None
    back = dec.decode(encode_position(ICAO, 52.0045, 13.0, 3000, 1), 2.5)
    assert back is not None and back.lat == pytest.approx(52.0045, abs=1e-4)


def test_sbs_lines() -> None:
    line = ("MSG,3,1,1,4D2023,1,2026/12/07,00:48:13.217,2026/12/07,00:48:13.551,,22875,,,"
            "37.10156,13.78474,,,,,,")
    u = parse_line(line, 5.0)
    assert u is not None and (u.icao, u.lat, u.lon, u.alt_ft) == ("4D2023", 37.10156,
                                                                 13.78474, 22875.0)
    emergency = "MSG,6,1,1,4D2023,1,,,,,,,,,,,,7700,0,1,0,0"
    assert parse_line(emergency, 0).emergency == "general"  # type: ignore[union-attr]
    assert parse_line("MSG,8,1,1,4D2023,1,,,,,,,,,,,,,,,,0", 0) is None
    for bad, field in (("MSG,3,1,1,XYZ,1,,,,,,100,,,,,,,,,,", "hex ident"),
                       ("MSG,3,1,1,4D2023,1,,,,,,high,,,,,,,,,,", "altitude"),
                       ("MSG,3,1,1,4D2023,1,,,,,,1,,,95.0,13.0,,,,,,", "latitude"),
                       ("BOGUS,1", "record type"), ("MSG,3,1", "22")):
        with pytest.raises(SbsError, match=field):
            parse_line(bad, 0)


def test_url_must_name_the_format() -> None:
    assert str(parse_url("beast://127.0.0.1:30005")) == "beast://127.0.0.1:30005"
    for bad in ("http://x:1", "beast://x", "sbs://host:99999", "beast://a b:1"):
        with pytest.raises(ValueError, match="beast://HOST:PORT"):
            parse_url(bad)


def test_feed_reconnects_with_backoff_after_the_receiver_hangs_up() -> None:
    backend = FakeAdsbBackend([encode_frame(encode_identification(ICAO, "CHX24"))],
                              hang_up_at_end=True)
    feed = AdsbFeed("beast://127.0.0.1:1", backend=backend, reconnect_min_s=0.2,
                    reconnect_max_s=0.4)
    first = feed.poll(0.01)
    assert [u.callsign for u in first] == ["CHX24"]
    feed.poll(0.01)  # the hang-up
    assert not feed.connected and "closed" in feed.last_error
    lost_at = time.monotonic()
    while backend.connects < 2:
        feed.poll(0.02)
        assert time.monotonic() - lost_at < 2
    assert time.monotonic() - lost_at >= 0.2 * 0.8  # not before the (jittered) backoff
    backend.refuse = True
    feed.poll(0.01)
    for _ in range(50):
        feed.poll(0.02)
    assert "refuses" in feed.last_error and not feed.connected


def test_feed_reads_the_twins_sky_over_tcp() -> None:
    flights = [Flight("3C6DD1", "CHX24", 0, -3000, 120, 0, 1300, category=7),
               Flight("4CA7B2", "EIN12K", 60_000, 0, 450, 0, 35_000)]
    sky = BeastSky(52.0, 13.0, flights, rate_hz=10).start()
    try:
        feed = AdsbFeed(f"beast://127.0.0.1:{sky.port}")
        seen: dict[str, dict] = {}
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (
                len(seen) == 2 and all("lat" in s and "callsign" in s for s in seen.values())):
            for u in feed.poll(0.1):
                s = seen.setdefault(u.icao, {})
                s.update({k: getattr(u, k) for k in ("lat", "lon", "callsign", "alt_ft")
                          if getattr(u, k) is not None})
        feed.close()
    finally:
        sky.stop()
    assert seen["3C6DD1"]["callsign"] == "CHX24" and seen["4CA7B2"]["callsign"] == "EIN12K"
    assert seen["3C6DD1"]["lat"] == pytest.approx(52.0 - 3000 / 111_195, abs=0.005)
    assert seen["4CA7B2"]["alt_ft"] == 35_000
    assert feed.stats().get("crc_fail", 0) == 0


def test_sbs_feed_holds_a_position_that_jumps_50_km() -> None:
    def line(lat: float) -> bytes:
        return (f"MSG,3,1,1,4D2023,1,,,,,,22000,,,{lat:.5f},13.00000,,,,,,0\n").encode()

    backend = FakeAdsbBackend([line(52.0), line(52.001), line(52.45), line(52.451),
                               b"garbage line\n", line(52.452)])
    feed = AdsbFeed("sbs://127.0.0.1:1", backend=backend)
    got = []
    for _ in range(8):
        got += feed.poll(0.01)
    assert [u.lat for u in got] == [52.0, 52.001, None, 52.451, 52.452]
    assert feed.stats()["position_held"] == 1 and feed.stats()["sbs_errors"] == 1


def test_emergency_status_is_decoded() -> None:
    from hal.sim.adsb import _df17

    dec = ModeSDecoder()
    dec.decode(encode_identification(ICAO, "CHX24"), 0.0)
    status = _df17(ICAO, (28 << 51) | (1 << 48) | (2 << 45))  # BDS 6,1: lifeguard / medical
    update = dec.decode(status, 0.5)
    assert update is not None and update.emergency == "lifeguard"
