"""pcap, pcapng and btsnoop capture files -> link-layer records (index, time, link type, bytes).

btsnoop is what BlueZ's `btmon -w FILE` writes: HCI packets of one adapter (H4 datalink 1002,
or the monitor datalink 2001, whose opcode sits in the record flags); records are handed on as
LINKTYPE_BLUETOOTH_HCI_H4 (187).

Our own reader rather than a library: both formats are a few fixed headers, we need only
reading, and we want every bad length (a record longer than the file, a block length that is
not a multiple of 4, a captured length beyond the snap length) to stop the reading with a reason
instead of an exception deep in someone else's code or a huge allocation. Reading is over an
in-memory copy of the file; captures for replay and tests are small.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
               b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9)}
PCAPNG_SHB = 0x0A0D0D0A
BTSNOOP_MAGIC = b"btsnoop\x00"
BTSNOOP_EPOCH_US = 0x00DCDDB30F2F8000  # 0000-01-01 to 1970-01-01 in microseconds
BTSNOOP_H4, BTSNOOP_MONITOR = 1002, 2001
LINKTYPE_H4 = 187
# btmon monitor opcodes -> the H4 packet type byte (command, ACL, SCO, event)
_MONITOR_H4 = {2: 0x01, 3: 0x04, 4: 0x02, 5: 0x02, 6: 0x03, 7: 0x03}
MAX_RECORD_BYTES = 262_144  # larger than any 802.11 or BLE frame: a bigger length is damage


class CaptureError(ValueError):
    """The file is not a capture this reader knows."""


@dataclass(slots=True)
class Record:
    index: int  # position among the file's packet records, from 0
    t: float  # seconds, as the file stamps it (Unix time for live captures)
    linktype: int
    data: bytes


class CaptureReader:
    """Iterate `records()`; afterwards `error` says why reading stopped early (None when the
    file was read to its end)."""

    def __init__(self, data: bytes, name: str = "capture") -> None:
        self.data = data
        self.name = name
        self.error: str | None = None
        if data[:4] in PCAP_MAGICS:
            self.format = "pcap"
        elif len(data) >= 12 and data[:4] == b"\x0a\x0d\x0d\x0a":
            self.format = "pcapng"
        elif data[:8] == BTSNOOP_MAGIC:
            self.format = "btsnoop"
        else:
            raise CaptureError(f"{name}: not a pcap, pcapng or btsnoop file "
                               f"(magic {data[:4].hex()})")

    @classmethod
    def open(cls, path: Path) -> CaptureReader:
        return cls(Path(path).read_bytes(), str(path))

    def records(self) -> Iterator[Record]:
        if self.format == "pcap":
            yield from self._pcap()
        elif self.format == "btsnoop":
            yield from self._btsnoop()
        else:
            yield from self._pcapng()

    def _stop(self, reason: str) -> None:
        self.error = f"{self.name}: {reason}"

    def _pcap(self) -> Iterator[Record]:
        data = self.data
        endian, unit = PCAP_MAGICS[data[:4]]
        if len(data) < 24:
            self._stop("truncated pcap file header")
            return
        snaplen, linktype = struct.unpack_from(endian + "II", data, 16)
        linktype &= 0x0FFFFFFF  # the top bits carry FCS information in newer files
        head = struct.Struct(endian + "IIII")
        off, index = 24, 0
        while off < len(data):
            if off + 16 > len(data):
                self._stop(f"record {index} header cut at byte {off}")
                return
            sec, frac, caplen, _ = head.unpack_from(data, off)
            if caplen > MAX_RECORD_BYTES or (snaplen and caplen > max(snaplen, 65535)):
                self._stop(f"record {index} at byte {off} declares {caplen} bytes "
                           f"(snap length {snaplen})")
                return
            if off + 16 + caplen > len(data):
                self._stop(f"record {index} at byte {off} declares {caplen} bytes, "
                           f"{len(data) - off - 16} left in the file")
                return
            yield Record(index, sec + frac * unit, linktype, data[off + 16:off + 16 + caplen])
            off += 16 + caplen
            index += 1

    def _btsnoop(self) -> Iterator[Record]:
        data = self.data
        if len(data) < 16:
            self._stop("truncated btsnoop file header")
            return
        _, datalink = struct.unpack_from(">II", data, 8)
        if datalink not in (BTSNOOP_H4, BTSNOOP_MONITOR):
            self._stop(f"btsnoop datalink {datalink} not read (want {BTSNOOP_H4} or "
                       f"{BTSNOOP_MONITOR})")
            return
        off, index = 16, 0
        while off < len(data):
            if off + 24 > len(data):
                self._stop(f"record {index} header cut at byte {off}")
                return
            _, incl, flags, _, ts = struct.unpack_from(">IIIIq", data, off)
            if incl > MAX_RECORD_BYTES or off + 24 + incl > len(data):
                self._stop(f"record {index} at byte {off} declares {incl} bytes, "
                           f"{len(data) - off - 24} left in the file")
                return
            body = data[off + 24:off + 24 + incl]
            off += 24 + incl
            if datalink == BTSNOOP_MONITOR:
                h4 = _MONITOR_H4.get(flags & 0xFFFF)
                if h4 is None:  # monitor notes, index changes: no HCI packet
                    continue
                body = bytes([h4]) + body
            yield Record(index, (ts - BTSNOOP_EPOCH_US) / 1e6, LINKTYPE_H4, body)
            index += 1

    def _pcapng(self) -> Iterator[Record]:
        data = self.data
        endian = "<"
        interfaces: list[tuple[int, float, float]] = []  # linktype, time unit, offset
        off, index = 0, 0
        while off < len(data):
            if off + 12 > len(data):
                self._stop(f"block header cut at byte {off}")
                return
            if data[off:off + 4] == b"\x0a\x0d\x0d\x0a":
                bom = data[off + 8:off + 12]
                if bom == b"\x4d\x3c\x2b\x1a":
                    endian = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    endian = ">"
                else:
                    self._stop(f"section header at byte {off} has no byte-order magic")
                    return
                interfaces = []
            btype, blen = struct.unpack_from(endian + "II", data, off)
            if blen < 12 or blen % 4 or off + blen > len(data):
                self._stop(f"block at byte {off} declares {blen} bytes, "
                           f"{len(data) - off} left in the file")
                return
            body = data[off + 8:off + blen - 4]
            if btype == 1:
                interfaces.append(self._interface(body, endian))
            elif btype in (6, 2, 3):
                rec = self._packet(btype, body, endian, interfaces, index, off)
                if rec is None:
                    return
                yield rec
                index += 1
            off += blen

    def _interface(self, body: bytes, endian: str) -> tuple[int, float, float]:
        if len(body) < 8:
            return (0, 1e-6, 0.0)
        linktype = struct.unpack_from(endian + "H", body)[0]
        unit, offset = 1e-6, 0.0
        pos = 8
        while pos + 4 <= len(body):  # options: code, length, value padded to 4
            code, length = struct.unpack_from(endian + "HH", body, pos)
            value = body[pos + 4:pos + 4 + length]
            if code == 0:
                break
            if code == 9 and length >= 1:  # if_tsresol
                v = value[0]
                unit = 2.0 ** -(v & 0x7F) if v & 0x80 else 10.0 ** -v
            elif code == 14 and length >= 8:  # if_tsoffset, seconds
                offset = float(struct.unpack_from(endian + "q", value)[0])
            pos += 4 + length + (-length % 4)
        return (linktype, unit, offset)

    def _packet(self, btype: int, body: bytes, endian: str,
                interfaces: list[tuple[int, float, float]], index: int,
                off: int) -> Record | None:
        if btype == 3:  # simple packet block: no interface id, no time stamp
            if len(body) < 4:
                self._stop(f"packet block at byte {off} too short")
                return None
            orig = struct.unpack_from(endian + "I", body)[0]
            iface, ticks, caplen, start = 0, 0, min(orig, len(body) - 4), 4
        elif btype == 6:
            if len(body) < 20:
                self._stop(f"packet block at byte {off} too short")
                return None
            iface, hi, lo, caplen, _ = struct.unpack_from(endian + "IIIII", body)
            ticks, start = (hi << 32) | lo, 20
        else:  # obsolete packet block
            if len(body) < 20:
                self._stop(f"packet block at byte {off} too short")
                return None
            iface, _, hi, lo, caplen, _ = struct.unpack_from(endian + "HHIIII", body)
            ticks, start = (hi << 32) | lo, 20
        if iface >= len(interfaces):
            self._stop(f"packet block at byte {off} names interface {iface}, "
                       f"{len(interfaces)} described")
            return None
        if caplen > MAX_RECORD_BYTES or start + caplen > len(body):
            self._stop(f"packet block at byte {off} declares {caplen} captured bytes, "
                       f"the block holds {len(body) - start}")
            return None
        linktype, unit, offset = interfaces[iface]
        return Record(index, ticks * unit + offset, linktype, body[start:start + caplen])
