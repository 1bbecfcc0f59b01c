"""Link-layer records (a capture's, or a live socket's) -> Remote ID carriers, by link type."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from hal.remoteid import RemoteIdFrame
from hal.remoteid.bluetooth import (
    ReportAssembler,
    parse_h4,
    parse_ll_packet,
    parse_ll_phdr,
    parse_nordic,
)
from hal.remoteid.capture import CaptureReader
from hal.remoteid.wifi import WifiCounts, parse_80211, strip_radiotap

IEEE802_11 = 105
IEEE802_11_RADIOTAP = 127
BLUETOOTH_HCI_H4 = 187
BLUETOOTH_HCI_H4_WITH_PHDR = 201
BLUETOOTH_LE_LL = 251
BLUETOOTH_LE_LL_WITH_PHDR = 256
NORDIC_BLE = 272
SUPPORTED = {IEEE802_11, IEEE802_11_RADIOTAP, BLUETOOTH_HCI_H4, BLUETOOTH_HCI_H4_WITH_PHDR,
             BLUETOOTH_LE_LL, BLUETOOTH_LE_LL_WITH_PHDR, NORDIC_BLE}


class Extractor:
    """Feeds records of any supported link type; keeps the tallies a health check reads."""

    def __init__(self) -> None:
        self.wifi = WifiCounts()
        self.records = 0
        self.unsupported = 0  # records of a link type we do not read
        self.damaged = 0  # records whose own framing was cut (radiotap, sniffer header)
        self.hci = ReportAssembler()  # extended advertising reports come in pieces

    def extract(self, linktype: int, data: bytes, t: float, index: int = 0
                ) -> list[RemoteIdFrame]:
        self.records += 1
        if linktype == IEEE802_11_RADIOTAP:
            stripped = strip_radiotap(data)
            if stripped is None:
                self.damaged += 1
                self.wifi.bad_radiotap += 1
                return []
            frame, rssi = stripped
            return parse_80211(frame, t, rssi, index, self.wifi)
        if linktype == NORDIC_BLE:
            return parse_nordic(data, t, index)
        if linktype == IEEE802_11:
            return parse_80211(data, t, None, index, self.wifi)
        if linktype == BLUETOOTH_LE_LL:
            return parse_ll_packet(data, t, index=index)
        if linktype == BLUETOOTH_LE_LL_WITH_PHDR:
            return parse_ll_phdr(data, t, index)
        if linktype == BLUETOOTH_HCI_H4_WITH_PHDR:
            return parse_h4(data[4:], t, index, self.hci)
        if linktype == BLUETOOTH_HCI_H4:
            return parse_h4(data, t, index, self.hci)
        self.unsupported += 1
        return []


def capture_frames(reader: CaptureReader, extractor: Extractor | None = None
                   ) -> Iterator[RemoteIdFrame]:
    """Every Remote ID carrier in a capture, in file order. After the loop, reader.error says
    whether the file ended early."""
    ex = extractor or Extractor()
    for rec in reader.records():
        yield from ex.extract(rec.linktype, rec.data, rec.t, rec.index)


def read_capture(path: Path) -> list[RemoteIdFrame]:
    """All carriers of a capture file (CaptureError if it is no capture; a cut file gives
    what was read before the cut)."""
    return list(capture_frames(CaptureReader.open(path)))
