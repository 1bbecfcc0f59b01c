"""Wi-Fi: radiotap + 802.11 management frames -> Remote ID carriers.

Two carriers (ASTM F3411 / ASD-STAN prEN 4709-002): a beacon's vendor-specific element with
OUI FA:0B:BC and type 0x0D, and a NAN service discovery frame (public action, Wi-Fi Alliance
OUI 50:6F:9A type 0x13) whose service descriptor attribute names the service ID of
"org.opendroneid.remoteid". In both the carrier body is a message counter byte and then the
message pack.
"""

from __future__ import annotations

import struct

from hal.remoteid import RemoteIdFrame

ASTM_OUI = b"\xfa\x0b\xbc"
ASTM_OUI_TYPE = 0x0D
WFA_OUI = b"\x50\x6f\x9a"
NAN_OUI_TYPE = 0x13
NAN_SERVICE_ID = bytes.fromhex("8869199d9209")  # first 6 bytes of SHA-256 of the service name
VENDOR_ELEMENT = 221
MGMT_HEADER = 24
BEACON_FIXED = 12
_RADIOTAP = struct.Struct("<BBHI")
# radiotap fields before the antenna signal: (alignment, size) for bits 0..4
_RT_FIELDS = ((8, 8), (1, 1), (1, 1), (2, 4), (2, 2))
RT_FLAGS_FCS = 0x10


class WifiCounts:
    """Per-receiver tallies of what was seen and set aside, for health and tests."""

    def __init__(self) -> None:
        self.frames = 0
        self.bad_radiotap = 0
        self.other_vendor_elements = 0  # vendor elements of other OUIs (DJI 26:37:12, ...)


def mac(raw: bytes) -> str:
    return raw.hex(":")


def strip_radiotap(data: bytes) -> tuple[bytes, int | None] | None:
    """(802.11 frame, antenna signal dBm or None), or None when the radiotap header is cut or
    claims more bytes than the frame has."""
    if len(data) < 8:
        return None
    version, _, length, present = _RADIOTAP.unpack_from(data)
    if version != 0 or length < 8 or length > len(data):
        return None
    pos = 8
    word = present
    while word & 0x80000000:  # further presence words follow
        if pos + 4 > length:
            return None
        word = struct.unpack_from("<I", data, pos)[0]
        pos += 4
    # a receiver sends the same field set every time: work the offsets out once per set
    key = (present, pos)
    offsets = _RT_OFFSETS.get(key)
    if offsets is None:
        offsets = _radiotap_offsets(present, pos)
        if len(_RT_OFFSETS) < 64:
            _RT_OFFSETS[key] = offsets
    flags_at, rssi_at = offsets
    flags = data[flags_at] if 0 <= flags_at < length else 0
    rssi = None
    if 0 <= rssi_at < length:
        rssi = data[rssi_at] - 256 if data[rssi_at] > 127 else data[rssi_at]
    if flags & RT_FLAGS_FCS:
        return data[length:-4], rssi
    return data[length:], rssi


_RT_OFFSETS: dict[tuple[int, int], tuple[int, int]] = {}


def _radiotap_offsets(present: int, pos: int) -> tuple[int, int]:
    """Offsets of the flags and antenna signal fields (-1 when absent)."""
    flags_at = rssi_at = -1
    for bit, (align, size) in enumerate(_RT_FIELDS):
        if present & (1 << bit):
            pos += -pos % align
            if bit == 1:
                flags_at = pos
            pos += size
    if present & (1 << 5):
        rssi_at = pos
    return flags_at, rssi_at


def parse_80211(frame: bytes, t: float, rssi: int | None = None, index: int = 0,
                counts: WifiCounts | None = None) -> list[RemoteIdFrame]:
    """Remote ID carriers in one 802.11 frame (no radiotap header)."""
    if len(frame) < MGMT_HEADER:
        return []
    fc0, fc1 = frame[0], frame[1]
    if (fc0 >> 2) & 0x03 != 0:  # not a management frame
        return []
    subtype = fc0 >> 4
    header = MGMT_HEADER + (4 if fc1 & 0x80 else 0)  # +HT control when the order bit is set
    src = mac(frame[10:16])
    if subtype == 8:
        return _beacon(frame, header, t, src, rssi, index, counts)
    if subtype == 13:
        return _nan(frame, header, t, src, rssi, index)
    return []


def _beacon(frame: bytes, header: int, t: float, src: str, rssi: int | None, index: int,
            counts: WifiCounts | None) -> list[RemoteIdFrame]:
    out: list[RemoteIdFrame] = []
    pos, end = header + BEACON_FIXED, len(frame)
    while pos + 2 <= end:
        eid, elen = frame[pos], frame[pos + 1]
        body = frame[pos + 2:pos + 2 + elen]
        if eid == VENDOR_ELEMENT and len(body) >= 4:
            if body[:3] == ASTM_OUI and body[3] == ASTM_OUI_TYPE:
                error = None
                if pos + 2 + elen > end:
                    error = (f"vendor element declares {elen} bytes, "
                             f"{end - pos - 2} left in the frame")
                out.append(RemoteIdFrame(t, "wifi_beacon", body[5:],
                                         body[4] if len(body) > 4 else None, src, rssi, index,
                                         error))
            elif counts is not None:
                counts.other_vendor_elements += 1
        pos += 2 + elen
    return out


def _nan(frame: bytes, header: int, t: float, src: str, rssi: int | None,
         index: int) -> list[RemoteIdFrame]:
    body = frame[header:]
    if len(body) < 6 or body[0] != 0x04 or body[1] != 0x09 or body[2:5] != WFA_OUI \
            or body[5] != NAN_OUI_TYPE:
        return []
    out: list[RemoteIdFrame] = []
    pos = 6
    while pos + 3 <= len(body):
        attr_id = body[pos]
        alen = body[pos + 1] | body[pos + 2] << 8
        attr = body[pos + 3:pos + 3 + alen]
        if attr_id == 0x03 and attr[:6] == NAN_SERVICE_ID:
            cut = pos + 3 + alen > len(body)
            out.extend(_service_descriptor(attr, cut, t, src, rssi, index))
        pos += 3 + alen
    return out


def _service_descriptor(attr: bytes, cut: bool, t: float, src: str, rssi: int | None,
                        index: int) -> list[RemoteIdFrame]:
    # service id (6), instance id, requestor instance id, service control, then optional
    # fields in this order: binding bitmap (2), matching filter, response filter, service info
    if len(attr) < 9:
        return [RemoteIdFrame(t, "wifi_nan", b"", None, src, rssi, index,
                              "service descriptor attribute cut")]
    control = attr[8]
    pos = 9
    if control & 0x40:
        pos += 2
    for bit in (0x04, 0x08):
        if control & bit:
            if pos >= len(attr):
                break
            pos += 1 + attr[pos]
    if not control & 0x10 or pos >= len(attr):
        return []
    info_len = attr[pos]
    info = attr[pos + 1:pos + 1 + info_len]
    error = None
    if cut or len(info) < info_len:
        error = f"service info declares {info_len} bytes, {len(info)} present"
    if not info:
        return [RemoteIdFrame(t, "wifi_nan", b"", None, src, rssi, index, error or "no data")]
    return [RemoteIdFrame(t, "wifi_nan", info[1:], info[0], src, rssi, index, error)]
