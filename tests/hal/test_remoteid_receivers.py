"""Remote ID carriers out of capture files and link-layer frames: every transport, other
vendors' elements left alone, and damaged input (cut radiotap, oversized lengths, garbage)
stopping or skipping with a reason, never raising."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from hal.remoteid.capture import CaptureError, CaptureReader
from hal.remoteid.linktypes import (
    BLUETOOTH_HCI_H4,
    BLUETOOTH_HCI_H4_WITH_PHDR,
    BLUETOOTH_LE_LL,
    IEEE802_11,
    IEEE802_11_RADIOTAP,
    SUPPORTED,
    Extractor,
    capture_frames,
    read_capture,
)
from hal.sim import remoteid as tx
from tests.conftest import SHARED_DATA

DRONE = "60:60:1f:aa:bb:cc"
PACK = tx.pack([tx.basic_id("1596F3500000001"), tx.location(57.7, 11.97)])


def test_beacon_nan_and_ble_carriers_round_trip_through_a_pcap(tmp_path: Path) -> None:
    wifi = tx.write_pcap(tmp_path / "wifi.pcap", IEEE802_11_RADIOTAP, [
        (100.25, tx.radiotap(tx.wifi_beacon(DRONE, 7, PACK), rssi=-61)),
        (100.50, tx.radiotap(tx.wifi_nan(DRONE, 8, PACK))),
    ])
    frames = read_capture(wifi)
    assert [(f.transport, f.counter, f.src, f.payload) for f in frames] == [
        ("wifi_beacon", 7, DRONE, PACK), ("wifi_nan", 8, DRONE, PACK)]
    assert frames[0].t == pytest.approx(100.25) and frames[0].rssi_dbm == -61
    assert all(f.error is None for f in frames)

    message = tx.basic_id("LEGACY00000001")
    ble = tx.write_pcap(tmp_path / "ble.pcap", BLUETOOTH_LE_LL, [
        (1.0, tx.ble_ll_packet(tx.ble_legacy_pdu(DRONE, 3, message))),
        (2.0, tx.ble_ll_packet(tx.ble_extended_pdu(DRONE, 4, PACK))),
    ])
    frames = read_capture(ble)
    assert [(f.transport, f.counter, f.src, f.payload) for f in frames] == [
        ("bluetooth", 3, DRONE, message), ("bluetooth", 4, DRONE, PACK)]


def test_hci_advertising_reports_carry_remote_id(tmp_path: Path) -> None:
    ad = tx.ble_service_data(9, tx.basic_id("HCI0000000001"))
    event = tx.hci_le_adv_report(DRONE, ad, rssi=-77)
    ex = Extractor()
    for linktype, data in ((BLUETOOTH_HCI_H4, event),
                           (BLUETOOTH_HCI_H4_WITH_PHDR, b"\x00\x00\x00\x01" + event)):
        (frame,) = ex.extract(linktype, data, 5.0)
        assert (frame.src, frame.counter, frame.rssi_dbm) == (DRONE, 9, -77)


def test_a_pack_split_over_two_extended_reports_is_joined() -> None:
    pack9 = tx.pack([tx.basic_id("LONGRANGE000001"), tx.location(57.7, 11.97),
                     tx.self_id("long range"), tx.system(57.69, 11.96), tx.operator_id("OP"),
                     tx.auth_page(0, b"a"), tx.auth_page(1, b"b"), tx.auth_page(2, b"c"),
                     tx.auth_page(3, b"d")])
    ad = tx.ble_service_data(6, pack9)
    first, second = tx.hci_le_ext_adv_reports(DRONE, ad, rssi=-88)
    other = tx.hci_le_ext_adv_reports("60:60:1f:00:00:02", tx.ble_service_data(1, PACK))[0]
    ex = Extractor()
    assert ex.extract(BLUETOOTH_HCI_H4, first, 1.0) == []  # waits for the rest
    (elsewhere,) = ex.extract(BLUETOOTH_HCI_H4, other, 1.01)  # another advertiser between
    assert elsewhere.payload == PACK
    (frame,) = ex.extract(BLUETOOTH_HCI_H4, second, 1.02)
    assert (frame.src, frame.counter, frame.rssi_dbm, frame.error) == (DRONE, 6, -88, None)
    assert frame.payload == pack9 and len(ad) > 229


@pytest.mark.parametrize("monitor", [False, True], ids=["h4", "btmon-monitor"])
def test_btmon_btsnoop_captures_are_read(tmp_path: Path, monitor: bool) -> None:
    ad = tx.ble_service_data(4, tx.basic_id("BTSNOOP0000001"))
    command = bytes.fromhex("010c200201 00".replace(" ", ""))  # LE Set Scan Enable: no RID
    path = tx.write_btsnoop(tmp_path / "hci.btsnoop",
                            [(1700000000.5, command),
                             (1700000001.25, tx.hci_le_adv_report(DRONE, ad))], monitor=monitor)
    reader = CaptureReader.open(path)
    (frame,) = list(capture_frames(reader))
    assert reader.error is None and reader.format == "btsnoop"
    assert (frame.src, frame.counter, frame.index) == (DRONE, 4, 1)
    assert frame.t == pytest.approx(1700000001.25)


def test_other_vendors_elements_are_never_taken_as_astm() -> None:
    # DJI's OUI with bytes that would decode as a perfect ASTM pack, and ASTM's OUI with the
    # wrong type: neither is handed on
    dji = b"\x26\x37\x12\x0d\x01" + PACK
    wrong_type = b"\xfa\x0b\xbc\x0e\x01" + PACK
    extra = bytes([221, len(dji)]) + dji
    beacon = tx.wifi_beacon(DRONE, 1, PACK, extra_elements=extra)
    beacon = beacon[: -(len(PACK) + 7)] + bytes([221, len(wrong_type)]) + wrong_type
    ex = Extractor()
    assert ex.extract(IEEE802_11, beacon, 0.0) == []
    assert ex.wifi.other_vendor_elements == 2
    # BLE: another service UUID, and 0xFFFA with another application code
    for ad in (b"\x1e\x16\xaa\xfe\x0d\x01" + PACK[:25], b"\x1e\x16\xfa\xff\x0e\x01" + PACK[:25]):
        pdu = bytes([0x02, 6 + len(ad)]) + bytes(6) + ad
        assert ex.extract(BLUETOOTH_LE_LL, tx.ble_ll_packet(pdu), 0.0) == []


def test_a_vendor_element_running_past_the_frame_is_marked_cut() -> None:
    beacon = tx.wifi_beacon(DRONE, 1, PACK)[:-10]
    (frame,) = Extractor().extract(IEEE802_11, beacon, 0.0)
    assert frame.error is not None and "left in the frame" in frame.error


def test_truncated_radiotap_headers_are_counted_and_skipped() -> None:
    ex = Extractor()
    good = tx.radiotap(tx.wifi_beacon(DRONE, 1, PACK))
    for bad in (good[:5], b"\x00\x00\xff\x00" + good[4:30], b"\x01" + good[1:]):
        assert ex.extract(IEEE802_11_RADIOTAP, bad, 0.0) == []
    assert ex.damaged == 3 and ex.wifi.bad_radiotap == 3
    assert len(ex.extract(IEEE802_11_RADIOTAP, good, 0.0)) == 1


def test_a_record_with_an_oversized_length_stops_the_reading_with_a_reason(
        tmp_path: Path) -> None:
    path = tx.write_pcap(tmp_path / "ok.pcap", IEEE802_11_RADIOTAP,
                         [(1.0, tx.radiotap(tx.wifi_beacon(DRONE, n, PACK))) for n in range(3)])
    data = bytearray(path.read_bytes())
    second = 24 + 16 + len(tx.radiotap(tx.wifi_beacon(DRONE, 0, PACK)))
    struct.pack_into("<I", data, second + 8, 0x7FFFFFF0)  # caplen of record 1
    reader = CaptureReader(bytes(data), "bad.pcap")
    frames = list(capture_frames(reader))
    assert len(frames) == 1
    assert reader.error is not None and "bad.pcap" in reader.error
    assert "record 1" in reader.error and "declares" in reader.error
    cut = CaptureReader(path.read_bytes()[:-7], "cut.pcap")
    assert len(list(capture_frames(cut))) == 2 and "record 2" in (cut.error or "")


def test_a_file_that_is_no_capture_is_named() -> None:
    with pytest.raises(CaptureError, match=r"junk\.bin: not a pcap, pcapng or btsnoop"):
        CaptureReader(b"GIF89a....", "junk.bin")


@pytest.mark.skipif(not (SHARED_DATA / "remoteid").exists(), reason="shared remoteid data absent")
def test_a_cut_pcapng_gives_what_came_before_the_cut() -> None:
    data = (SHARED_DATA / "remoteid" / "odid_bt5_lr_sample.pcapng").read_bytes()
    reader = CaptureReader(data[: len(data) // 2], "half.pcapng")
    frames = list(capture_frames(reader))
    assert 100 < len(frames) < 200
    assert reader.error is not None and "declares" in reader.error
    bad = bytearray(data)
    struct.pack_into("<I", bad, len(data) // 2 - (len(data) // 2) % 4, 0x0A0D0D0A)
    list(capture_frames(CaptureReader(bytes(bad), "x")))  # a corrupt block: no exception


def test_garbage_of_every_link_type_never_raises() -> None:
    rng = random.Random(16)
    ex = Extractor()
    seeds = [tx.radiotap(tx.wifi_beacon(DRONE, 1, PACK)), tx.radiotap(tx.wifi_nan(DRONE, 1, PACK)),
             tx.ble_ll_packet(tx.ble_extended_pdu(DRONE, 1, PACK)),
             tx.hci_le_adv_report(DRONE, tx.ble_service_data(1, PACK[:25]))]
    for _ in range(3000):
        seed = rng.choice(seeds)
        data = bytearray(seed[: rng.randrange(len(seed) + 1)])
        for _ in range(rng.randrange(4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.2:
            data = bytearray(rng.randbytes(rng.randrange(300)))
        for linktype in SUPPORTED:
            for frame in ex.extract(linktype, bytes(data), 0.0):
                assert frame.transport in ("bluetooth", "wifi_beacon", "wifi_nan")
