"""The twin's Remote ID transmitter: ASTM F3411 messages and packs as a drone sends them, in
the real carriers (BLE legacy and extended advertising, Wi-Fi beacon vendor element, NAN
service discovery frame), and capture files holding them. Used by tests and by the twin to make
drones broadcast, truthfully or not: nothing here checks that what it is told to send is true.

Encoding follows the same layouts the receiver decodes (opendroneid-core-c's packed structs);
values are given in SI units and degrees, None for "unknown".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from hal.sim.geo import offset_latlon

MESSAGE_SIZE = 25
AUTH_EPOCH_UNIX_S = 1_546_300_800


def _head(kind: int, version: int) -> int:
    return (kind << 4) | (version & 0x0F)


def _text(text: str, size: int) -> bytes:
    return text.encode("latin-1")[:size].ljust(size, b"\x00")


def _alt(metres: float | None) -> int:
    if metres is None:
        return 0
    return max(0, min(0xFFFF, int((metres + 1000.0) / 0.5)))


def _e7(deg: float | None) -> int:
    return 0 if deg is None else round(deg * 1e7)


def basic_id(uas_id: str, *, id_type: int = 1, ua_type: int = 2, version: int = 2) -> bytes:
    return bytes([_head(0, version), (id_type << 4) | ua_type]) + _text(uas_id, 20) + bytes(3)


def location(lat: float | None, lon: float | None, *, altitude_geo_m: float | None = 100.0,
             altitude_baro_m: float | None = None, height_m: float | None = None,
             direction_deg: float | None = None, speed_mps: float | None = None,
             vspeed_mps: float | None = None, timestamp_s: float | None = None,
             status: int = 2, height_ground: bool = False, horizontal_accuracy: int = 10,
             vertical_accuracy: int = 4, version: int = 2) -> bytes:
    flags = status << 4 | (0x04 if height_ground else 0)
    if direction_deg is None:
        direction, flags = 181, flags | 0x02  # 361: unknown
    else:
        d = round(direction_deg) % 360
        direction = d - 180 if d >= 180 else d
        flags |= 0x02 if d >= 180 else 0
    if speed_mps is None:
        speed, flags = 255, flags | 0x01
    elif speed_mps <= 63.75:
        speed = int(speed_mps / 0.25)
    else:
        speed, flags = min(254, int((speed_mps - 63.75) / 0.75)), flags | 0x01
    vspeed = 126 if vspeed_mps is None else max(-124, min(124, int(vspeed_mps / 0.5)))
    ts = 0xFFFF if timestamp_s is None else round(timestamp_s * 10) % 36000
    return struct.pack("<BBBBbiiHHHBBHBB", _head(1, version), flags, direction, speed, vspeed,
                       _e7(lat), _e7(lon), _alt(altitude_baro_m), _alt(altitude_geo_m),
                       _alt(height_m), vertical_accuracy << 4 | horizontal_accuracy,
                       4 << 4 | 3, ts, 1, 0)


def auth_page(page: int, data: bytes, *, auth_type: int = 1, last_page_index: int = 0,
              length: int = 0, timestamp_unix_s: int | None = None, version: int = 2) -> bytes:
    head = bytes([_head(2, version), (auth_type << 4) | page])
    if page == 0:
        ts = 0 if timestamp_unix_s is None else timestamp_unix_s - AUTH_EPOCH_UNIX_S
        return head + struct.pack("<BBI", last_page_index, length, ts) + data[:17].ljust(17,
                                                                                      b"\0")
    return head + data[:23].ljust(23, b"\x00")


def self_id(text: str, *, desc_type: int = 0, version: int = 2) -> bytes:
    return bytes([_head(3, version), desc_type]) + _text(text, 23)


def system(lat: float | None, lon: float | None, *, operator_location_type: int = 1,
           area_count: int = 1, area_radius_m: int = 0, operator_altitude_geo_m: float | None
           = None, timestamp_unix_s: int | None = None, category_eu: int = 1,
           class_eu: int = 2, version: int = 2) -> bytes:
    ts = 0 if timestamp_unix_s is None else timestamp_unix_s - AUTH_EPOCH_UNIX_S
    return struct.pack("<BBiiHBHHBHIB", _head(4, version), (1 << 2) | operator_location_type,
                       _e7(lat), _e7(lon), area_count, area_radius_m // 10, 0, 0,
                       category_eu << 4 | class_eu, _alt(operator_altitude_geo_m), ts, 0)


def operator_id(text: str, *, operator_id_type: int = 0, version: int = 2) -> bytes:
    return bytes([_head(5, version), operator_id_type]) + _text(text, 20) + bytes(3)


def pack(messages: list[bytes], *, version: int = 2) -> bytes:
    return bytes([_head(0xF, version), MESSAGE_SIZE, len(messages)]) + b"".join(messages)


# ------------------------------------------------------------------ carriers

def _mac(text: str) -> bytes:
    return bytes(int(x, 16) for x in text.split(":"))


def ble_service_data(counter: int, payload: bytes) -> bytes:
    """The AD structure: service data, UUID 0xFFFA, application code 0x0D, counter, payload."""
    body = b"\x16\xfa\xff\x0d" + bytes([counter & 0xFF]) + payload
    return bytes([len(body)]) + body


def ble_legacy_pdu(src: str, counter: int, message: bytes) -> bytes:
    """ADV_NONCONN_IND carrying one message (legacy advertising has room for one)."""
    # AdvData is 31 bytes: the service data structure (1 + 4 + 1 + 25) fills it, no flags
    payload = _mac(src)[::-1] + ble_service_data(counter, message)
    return bytes([0x02, len(payload)]) + payload


def ble_extended_pdu(src: str, counter: int, payload: bytes) -> bytes:
    """AUX_ADV_IND with AdvA and ADI, carrying a message pack (Bluetooth 5)."""
    ext = bytes([0x09]) + _mac(src)[::-1] + b"\x00\x10"
    body = bytes([len(ext)]) + ext + ble_service_data(counter, payload)
    return bytes([0x07, len(body)]) + body


def ble_ll_packet(pdu: bytes) -> bytes:
    """LINKTYPE_BLUETOOTH_LE_LL: access address, PDU, a (not computed) CRC."""
    return b"\xd6\xbe\x89\x8e" + pdu + b"\x00\x00\x00"


def hci_le_adv_report(src: str, ad: bytes, rssi: int = -60) -> bytes:
    """H4 event packet: LE Meta, LE Advertising Report with one report."""
    params = bytes([0x02, 1, 0x03, 0x01]) + _mac(src)[::-1] + bytes([len(ad)]) + ad \
        + struct.pack("b", rssi)
    return bytes([0x04, 0x3E, len(params)]) + params


def wifi_beacon(src: str, counter: int, payload: bytes, *, ssid: bytes = b"UAS-ID",
                extra_elements: bytes = b"") -> bytes:
    """An 802.11 beacon with the ASTM vendor element (OUI FA:0B:BC, type 0x0D)."""
    mac = _mac(src)
    header = b"\x80\x00\x00\x00" + b"\xff" * 6 + mac + mac + b"\x00\x00"
    fixed = bytes(8) + struct.pack("<HH", 100, 0x0421)
    vendor = b"\xfa\x0b\xbc\x0d" + bytes([counter & 0xFF]) + payload
    elements = bytes([0, len(ssid)]) + ssid + b"\x01\x01\x8c" + extra_elements \
        + bytes([221, len(vendor)]) + vendor
    return header + fixed + elements


def wifi_nan(src: str, counter: int, payload: bytes) -> bytes:
    """A NAN service discovery frame (public action) for org.opendroneid.remoteid."""
    header = b"\xd0\x00\x00\x00" + bytes.fromhex("516f9a010000") + _mac(src) \
        + bytes.fromhex("506f9a0100ff") + b"\x00\x00"
    info = bytes([counter & 0xFF]) + payload
    sda = bytes.fromhex("8869199d9209") + b"\x01\x00\x10" + bytes([len(info)]) + info
    sdea = b"\x0e\x04\x00\x01\x00\x02" + bytes([counter & 0xFF])
    return header + b"\x04\x09\x50\x6f\x9a\x13" + b"\x03" + struct.pack("<H", len(sda)) \
        + sda + sdea


def radiotap(frame: bytes, rssi: int = -50) -> bytes:
    """A minimal radiotap header (flags, antenna signal) in front of an 802.11 frame."""
    return struct.pack("<BBHIBb", 0, 0, 10, 0x22, 0, rssi) + frame


def write_pcap(path: Path, linktype: int, records: list[tuple[float, bytes]]) -> Path:
    """A classic pcap file (microsecond time stamps) of `records` (time s, bytes)."""
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)]
    for t, data in records:
        sec = int(t)
        out.append(struct.pack("<IIII", sec, round((t - sec) * 1e6), len(data),
                               len(data)) + data)
    path.write_bytes(b"".join(out))
    return path


# ------------------------------------------------------------------ broadcasting drones


@dataclass(frozen=True)
class Broadcast:
    """What one simulated drone broadcasts. `mode`: "truthful" sends where it is; "spoofed"
    sends where it is plus `offset_m` (east, north); "silent" sends nothing. The System
    message's operator position is `operator_m` (east, north of the mast foot) in every mode."""

    uas_id: str
    mode: str = "truthful"
    offset_m: tuple[float, float] = (0.0, 0.0)
    transport: str = "bluetooth"  # "bluetooth" (BT5 extended advertising) or "wifi_beacon"
    rate_hz: float = 1.0  # F3411 asks for at least one location a second
    src: str = "60:60:1f:00:00:01"
    operator_id: str = "SWE-OP-TWIN"
    operator_m: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        if self.mode not in ("truthful", "spoofed", "silent"):
            raise ValueError(f"broadcast mode '{self.mode}' unknown: truthful, spoofed, silent")
        if self.transport not in ("bluetooth", "wifi_beacon"):
            raise ValueError(f"broadcast transport '{self.transport}' unknown: bluetooth, "
                             "wifi_beacon")


class Broadcaster:
    """Turns a drone's true position (metres east, north, up of the site origin, where the
    operator stands) into the link-layer frames a receiver would capture, at the broadcast
    rate."""

    def __init__(self, broadcast: Broadcast, node_lat: float, node_lon: float,
                 node_alt_m: float = 0.0) -> None:
        self.b = broadcast
        self.node = (node_lat, node_lon, node_alt_m)
        self.counter = 0
        self._next_t: float | None = None

    def to_latlon(self, east_m: float, north_m: float) -> tuple[float, float]:
        lat0, lon0, _ = self.node
        return offset_latlon(lat0, lon0, east_m, north_m)

    def frames(self, t: float, east_m: float, north_m: float, up_m: float,
               wall_t: float | None = None) -> list[tuple[int, bytes]]:
        """(link type, frame bytes) due by scenario time `t`; none between broadcasts."""
        if self.b.mode == "silent":
            return []
        if self._next_t is not None and t < self._next_t:
            return []
        self._next_t = t + 1.0 / self.b.rate_hz
        dx, dy = self.b.offset_m if self.b.mode == "spoofed" else (0.0, 0.0)
        lat, lon = self.to_latlon(east_m + dx, north_m + dy)
        op_lat, op_lon = self.to_latlon(*self.b.operator_m)
        clock = t if wall_t is None else wall_t
        payload = pack([basic_id(self.b.uas_id),
                        location(lat, lon, altitude_geo_m=self.node[2] + up_m,
                                 height_m=up_m, timestamp_s=clock % 3600.0),
                        system(op_lat, op_lon), operator_id(self.b.operator_id)])
        self.counter = (self.counter + 1) & 0xFF
        if self.b.transport == "wifi_beacon":
            return [(127, radiotap(wifi_beacon(self.b.src, self.counter, payload)))]
        return [(251, ble_ll_packet(ble_extended_pdu(self.b.src, self.counter, payload)))]


def write_btsnoop(path: Path, records: list[tuple[float, bytes]], *,
                  monitor: bool = False) -> Path:
    """A btsnoop file as `btmon -w` writes it: H4 packets (datalink 1002), or with
    `monitor` the btmon datalink 2001 (the packet type moves into the record flags)."""
    epoch_us = 0x00DCDDB30F2F8000
    out = [b"btsnoop\x00" + struct.pack(">II", 1, 2001 if monitor else 1002)]
    for t, h4 in records:
        body, flags = h4, 0x03 if h4[0] == 0x04 else 0x00
        if monitor:
            opcodes = {0x01: 2, 0x04: 3, 0x02: 5, 0x03: 7}
            body, flags = h4[1:], opcodes[h4[0]]
        out.append(struct.pack(">IIIIq", len(body), len(body), flags, 0,
                               epoch_us + round(t * 1e6)) + body)
    path.write_bytes(b"".join(out))
    return path


def hci_le_ext_adv_reports(src: str, ad: bytes, *, rssi: int = -60, sid: int = 1,
                           piece: int = 229) -> list[bytes]:
    """H4 events: LE Meta, LE Extended Advertising Report(s) carrying `ad`, split as a
    controller splits it (at most `piece` bytes each; all but the last marked incomplete)."""
    out = []
    chunks = [ad[i:i + piece] for i in range(0, len(ad), piece)] or [b""]
    for k, chunk in enumerate(chunks):
        status = 0 if k == len(chunks) - 1 else 1
        etype = 0x0000 | status << 5  # non-connectable, non-scannable, undirected, extended
        report = struct.pack("<HB", etype, 0x01) + _mac(src)[::-1] \
            + struct.pack("<BBBbbHB", 0x03, 0x03, sid, 127, rssi, 0, 0) + bytes(6) \
            + bytes([len(chunk)]) + chunk
        params = bytes([0x0D, 1]) + report
        out.append(bytes([0x04, 0x3E, len(params)]) + params)
    return out
