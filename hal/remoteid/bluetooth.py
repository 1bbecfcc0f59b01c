"""Bluetooth LE: advertising PDUs, sniffer headers and HCI events -> Remote ID carriers.

The carrier is an AD structure of type 0x16 (service data, 16-bit UUID) with UUID 0xFFFA
(ASTM) and application code 0x0D, then the message counter and then one message (legacy
advertising, 31 bytes) or a message pack (Bluetooth 5 extended advertising, often on the coded
PHY for long range). The same AD walk serves every source: a sniffer's link-layer packets in a
capture (Nordic nRF Sniffer, LINKTYPE_BLUETOOTH_LE_LL, ..._WITH_PHDR) and the advertising
reports a local controller gives over HCI (BlueZ's raw HCI socket, or its btmon captures).
"""

from __future__ import annotations

import struct

from hal.remoteid import RemoteIdFrame

AD_SERVICE_DATA_16 = 0x16
ASTM_UUID = b"\xfa\xff"  # 0xFFFA, little-endian on the air
ASTM_APP_CODE = 0x0D
ADV_ACCESS_ADDRESS = b"\xd6\xbe\x89\x8e"  # 0x8E89BED6
LEGACY_ADV_TYPES = {0, 2, 4, 6}  # ADV_IND, ADV_NONCONN_IND, SCAN_RSP, ADV_SCAN_IND
ADV_EXT = 7  # ADV_EXT_IND / AUX_ADV_IND / AUX_CHAIN_IND
_SIGNATURE = bytes([AD_SERVICE_DATA_16]) + ASTM_UUID + bytes([ASTM_APP_CODE])
# extended header fields in order: flag bit -> size
_EXT_FIELDS = ((0x01, 6), (0x02, 6), (0x04, 1), (0x08, 2), (0x10, 3), (0x20, 18), (0x40, 1))
NORDIC_ADV_PDU = 0x02
HCI_EVENT = 0x04
HCI_LE_META = 0x3E
LE_ADV_REPORT = 0x02
LE_EXT_ADV_REPORT = 0x0D


def address(raw: bytes) -> str:
    """A BLE device address as sent (little-endian) -> "aa:bb:cc:dd:ee:ff"."""
    return raw[::-1].hex(":")


def carriers_in_ad(ad: bytes, t: float, src: str | None = None, rssi: int | None = None,
                   index: int = 0, error: str | None = None) -> list[RemoteIdFrame]:
    """Remote ID service data in advertising data (a sequence of AD structures)."""
    out: list[RemoteIdFrame] = []
    pos, end = 0, len(ad)
    while pos < end:
        length = ad[pos]
        if length == 0:  # padding: nothing follows
            break
        body = ad[pos + 1:pos + 1 + length]
        if len(body) >= 4 and body[0] == AD_SERVICE_DATA_16 and body[1:3] == ASTM_UUID \
                and body[3] == ASTM_APP_CODE:
            why = error
            if pos + 1 + length > end:
                why = why or f"AD structure declares {length} bytes, {end - pos - 1} present"
            out.append(RemoteIdFrame(t, "bluetooth", body[5:],
                                     body[4] if len(body) > 4 else None, src, rssi, index, why))
        pos += 1 + length
    return out


def parse_adv_pdu(pdu: bytes, t: float, rssi: int | None = None, index: int = 0,
                  error: str | None = None) -> list[RemoteIdFrame]:
    """A link-layer advertising PDU (2-byte header + payload, no access address, no CRC)."""
    if len(pdu) < 2:
        return []
    kind, length = pdu[0] & 0x0F, pdu[1]
    payload = pdu[2:2 + length]
    if len(payload) < length:
        error = error or f"PDU declares {length} bytes, {len(payload)} present"
    frames: list[RemoteIdFrame] = []
    src = None
    if kind in LEGACY_ADV_TYPES:
        if len(payload) < 6:
            return []
        src = address(payload[:6])
        frames = carriers_in_ad(payload[6:], t, src, rssi, index, error)
    elif kind == ADV_EXT:
        src, frames = _extended(payload, t, rssi, index, error)
    else:
        return []
    if not frames:
        # A damaged header (a flipped length bit) can hide a carrier that is still there:
        # find it by its signature, and say the frame around it is damaged.
        at = payload.find(_SIGNATURE, 1)
        if at > 0:
            frames = carriers_in_ad(payload[at - 1:], t, src, rssi, index,
                                    error or "advertising header damaged; Remote ID service "
                                    "data found by its signature")
    return frames


def _extended(payload: bytes, t: float, rssi: int | None, index: int,
              error: str | None) -> tuple[str | None, list[RemoteIdFrame]]:
    if not payload:
        return None, []
    ext_len = payload[0] & 0x3F
    ext = payload[1:1 + ext_len]
    src = None
    if ext:
        flags, pos = ext[0], 1
        for bit, size in _EXT_FIELDS:
            if flags & bit:
                if bit == 0x01 and pos + 6 <= len(ext):
                    src = address(ext[pos:pos + 6])
                pos += size
    return src, carriers_in_ad(payload[1 + ext_len:], t, src, rssi, index, error)


def parse_ll_packet(packet: bytes, t: float, *, coded: bool = False, rssi: int | None = None,
                    index: int = 0, crc_ok: bool = True) -> list[RemoteIdFrame]:
    """Access address, [coding indicator on the coded PHY], PDU, CRC (3 bytes)."""
    if len(packet) < 4 + 2 or packet[:4] != ADV_ACCESS_ADDRESS:
        return []
    pdu = packet[5:] if coded else packet[4:]
    frames = parse_adv_pdu(pdu, t, rssi, index)
    if not crc_ok:
        for frame in frames:
            frame.crc_ok = False
    return frames


def parse_nordic(data: bytes, t: float, index: int = 0) -> list[RemoteIdFrame]:
    """LINKTYPE_NORDIC_BLE (272), nRF Sniffer for Bluetooth LE protocol 2 and 3: board id,
    payload length (2), protocol version, packet counter (2), packet id; then a header of its
    own length (flags, channel, RSSI, event counter, time) and the link-layer packet."""
    if len(data) < 8 or data[6] != NORDIC_ADV_PDU:
        return []
    body = data[7:]
    hlen = body[0]
    if hlen < 4 or len(body) < hlen:
        return []
    flags, rssi = body[1], -body[3]
    phy = (flags >> 4) & 0x07
    return parse_ll_packet(body[hlen:], t, coded=phy == 2, rssi=rssi, index=index,
                           crc_ok=bool(flags & 0x01))


def parse_ll_phdr(data: bytes, t: float, index: int = 0) -> list[RemoteIdFrame]:
    """LINKTYPE_BLUETOOTH_LE_LL_WITH_PHDR (256): a 10-byte radio header, then the packet."""
    if len(data) < 10:
        return []
    signal = struct.unpack_from("b", data, 1)[0]
    flags = struct.unpack_from("<H", data, 8)[0]
    crc_ok = not (flags & 0x0400) or bool(flags & 0x0800)
    coded = (flags >> 14) & 0x03 == 2
    return parse_ll_packet(data[10:], t, coded=coded,
                           rssi=signal if flags & 0x0002 else None, index=index,
                           crc_ok=crc_ok)


class ReportAssembler:
    """Joins the pieces of one extended advertisement. A controller hands at most 229 bytes of
    advertising data per report, and a Remote ID pack in one AD structure is 234 bytes: it
    comes in two reports, the first marked "incomplete, more to come". Pieces wait here per
    advertiser and advertising set; a bounded number of them, the oldest dropped first."""

    MAX_PENDING = 64
    MAX_BYTES = 1650  # the largest extended advertising data a chain can carry

    def __init__(self) -> None:
        self._pending: dict[tuple[str, int], bytearray] = {}
        self.dropped = 0  # pieces thrown away (too many advertisers, or too long)

    def add(self, key: tuple[str, int], piece: bytes, status: int) -> bytes | None:
        """The whole advertising data once complete (status 0 or 2), else None."""
        held = self._pending.pop(key, None)
        data = piece if held is None else bytes(held + piece)
        if status != 1:
            return data
        if len(data) > self.MAX_BYTES:
            self.dropped += 1
            return None
        if len(self._pending) >= self.MAX_PENDING:
            self._pending.pop(next(iter(self._pending)))
            self.dropped += 1
        self._pending[key] = bytearray(data)
        return None


def parse_hci_event(event: bytes, t: float, index: int = 0,
                    assembler: ReportAssembler | None = None) -> list[RemoteIdFrame]:
    """An HCI event packet without the H4 type byte: LE Advertising Report (legacy) and LE
    Extended Advertising Report (Bluetooth 5, coded PHY). Without an `assembler`, an extended
    report split over several events is read piece by piece (and the pieces come out cut)."""
    if len(event) < 4 or event[0] != HCI_LE_META:
        return []
    params = event[2:2 + event[1]]
    sub, reports = params[0], params[1] if len(params) > 1 else 0
    pos = 2
    out: list[RemoteIdFrame] = []
    for _ in range(reports):
        if sub == LE_ADV_REPORT:
            if pos + 9 > len(params):
                break
            src = address(params[pos + 2:pos + 8])
            dlen = params[pos + 8]
            ad = params[pos + 9:pos + 9 + dlen]
            rssi_at = pos + 9 + dlen
            rssi = struct.unpack_from("b", params, rssi_at)[0] if rssi_at < len(params) \
                else None
            out.extend(carriers_in_ad(ad, t, src, rssi, index))
            pos = rssi_at + 1
        elif sub == LE_EXT_ADV_REPORT:
            if pos + 24 > len(params):
                break
            etype = params[pos] | params[pos + 1] << 8
            src = address(params[pos + 3:pos + 9])
            sid = params[pos + 11]
            rssi = struct.unpack_from("b", params, pos + 13)[0]
            dlen = params[pos + 23]
            ad = params[pos + 24:pos + 24 + dlen]
            pos += 24 + dlen
            status = (etype >> 5) & 0x03
            if assembler is not None:
                whole = assembler.add((src, sid), ad, status)
                if whole is None:
                    continue
                ad = whole
            # data status 2: the controller cut the data short
            error = "advertising data truncated by the controller" if status == 2 else None
            out.extend(carriers_in_ad(ad, t, src, None if rssi == 127 else rssi, index, error))
        else:
            break
    return out


def parse_h4(data: bytes, t: float, index: int = 0,
             assembler: ReportAssembler | None = None) -> list[RemoteIdFrame]:
    """An H4 packet (type byte, then the HCI packet): only events are of interest."""
    if len(data) < 2 or data[0] != HCI_EVENT:
        return []
    return parse_hci_event(data[1:], t, index, assembler)
