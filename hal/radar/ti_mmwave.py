"""TI mmWave out-of-box demo (IWR6843 / AWR1843 / xWR1642, SDK 3.x): the data-port frame parser.

Wire format (little-endian), as `MmwDemo_transmitProcessedOutput` in the SDK 3.x demo sends it:

    header, 40 bytes: magic 02 01 04 03 06 05 08 07, then uint32 version (major<<24 | minor<<16 |
        bugfix<<8 | build), totalPacketLen (header + TLVs + padding), platform (0xA6843...),
        frameNumber, timeCpuCycles, numDetectedObj, numTLVs, subFrameNumber
    numTLVs times: uint32 type, uint32 length (of the payload, header excluded), payload
        type 1: numDetectedObj x (float32 x, y, z, velocity)   metres, m/s (negative = approaching)
        type 6: 6 x uint32 timing statistics                  (FrameStats)
        type 7: numDetectedObj x (int16 snr, int16 noise)     0.1 dB steps
        other types are skipped by their length
    padding up to the next multiple of 32 bytes (MMWDEMO_OUTPUT_MSG_SEGMENT_LEN); the demo sends
        uninitialised stack bytes there, so the padding is skipped, never inspected.

There is no checksum, so a frame is emitted only when every length agrees: totalPacketLen is a
whole number of segments, the TLVs fit inside it, the points and side-info TLVs carry exactly
numDetectedObj entries, and what is left after the last TLV is shorter than one segment. Anything
else is rejected and the parser resyncs on the next magic word. A complete valid frame starting
inside a candidate means the candidate was cut short: it is rejected. The one case that cannot
be told apart from an intact frame is a cut of 1..7 bytes when the read ends inside the next
frame's magic word; the candidate is then emitted (an intact frame ending in bytes like 02 01 is
common, and holding it would cost a frame period), but those bytes stay in the buffer, so the next
frame is still found. A header version whose major number is not 3 is counted
(`unknown_versions`), logged once and dropped: another SDK's layout is not guessed at.
"""

from __future__ import annotations

import logging
import struct
import time
from dataclasses import dataclass

import numpy as np

from hal.radar import POINT_COLUMNS, RadarFrame

log = logging.getLogger(__name__)

MAGIC = b"\x02\x01\x04\x03\x06\x05\x08\x07"
HEADER = struct.Struct("<8s8I")
TLV_HEADER = struct.Struct("<2I")
STATS = struct.Struct("<6I")
HEADER_BYTES = HEADER.size  # 40
SEGMENT_BYTES = 32  # the demo pads every packet to a multiple of this
SDK_MAJOR = 3
SDK_VERSION = 0x03050004  # what encode_frame writes: SDK 3.5.0.4
PLATFORM_XWR68XX = 0xA6843

TLV_POINTS = 1
TLV_STATS = 6
TLV_SIDE_INFO = 7
POINT_BYTES = 16
SIDE_INFO_BYTES = 4

_OK, _NEED, _BAD, _UNKNOWN_VERSION = range(4)
_N_COLUMNS = len(POINT_COLUMNS)


@dataclass(frozen=True)
class FrameStats:
    """TLV 6 (MmwDemo_output_message_stats): timing of the radar's own processing."""

    inter_frame_processing_us: int
    transmit_output_us: int
    inter_frame_margin_us: int
    inter_chirp_margin_us: int
    active_frame_cpu_load_pct: int
    inter_frame_cpu_load_pct: int


class TiMmwaveParser:
    """Bytes from the data port in, complete `RadarFrame`s out, whatever the chunking.

    Counters: `frames` emitted, `bytes_skipped` (bytes that belonged to no emitted frame),
    `frames_rejected` (candidates at a magic word whose lengths did not agree), `frame_gaps`
    (discontinuities in the frame number) and `frames_missing` (frame numbers skipped over),
    `unknown_versions` (frames with a header version other than SDK 3.x).
    """

    def __init__(self, *, name: str = "ti-mmwave", max_packet_bytes: int = 256 * 1024,
                 max_points: int = 2048, max_tlvs: int = 32) -> None:
        self.name = name
        self.max_packet_bytes = max_packet_bytes
        self.max_points = max_points
        self.max_tlvs = max_tlvs
        self.frames = 0
        self.bytes_skipped = 0
        self.frames_rejected = 0
        self.frame_gaps = 0
        self.frames_missing = 0
        self.unknown_versions = 0
        self.last_frame_number: int | None = None
        self._buf = bytearray()
        self._need = 0  # no decision is possible before the buffer holds this many bytes
        self._owned = 0  # leading buffer bytes kept after an emitted frame they belonged to
        self._versions_seen: set[int] = set()

    def feed(self, data: bytes, t: float | None = None) -> list[RadarFrame]:
        """Append bytes; return the frames they completed, stamped `t` (default: now)."""
        buf = self._buf
        buf += data
        n = len(buf)
        if n < self._need:
            return []
        if t is None:
            t = time.time()
        out: list[RadarFrame] = []
        pos = 0  # bytes before pos are consumed (emitted or skipped)
        owned = self._owned  # bytes before this belong to an emitted frame: never "skipped"
        search = 0
        need = 0
        while True:
            p = buf.find(MAGIC, search)
            if p < 0:
                keep = max(pos, n - (len(MAGIC) - 1))  # the tail may be the start of a magic word
                self.bytes_skipped += max(keep - max(pos, owned), 0)
                pos, need = keep, n + 1
                break
            status, value, need = self._decode_at(buf, p, n)
            if status == _OK:
                end = p + value[0]
                status, value2, need = self._check_inner(buf, p + len(MAGIC), end, n)
                if status == _OK:
                    self.bytes_skipped += max(p - max(pos, owned), 0)
                    pos = search = owned = end
                    if end + len(MAGIC) - 1 > n:
                        # The read ended before a magic word starting in this frame's last
                        # bytes could be seen whole: if the frame was cut short by 1..7 bytes,
                        # those bytes begin the next frame. Keep them so that frame is not lost.
                        pos = self._magic_tail(buf, p + len(MAGIC), end, n)
                    frame = RadarFrame(value[1], t, value[2], value[3])
                    self._count_gap(frame.frame_number)
                    self.frames += 1
                    out.append(frame)
                    continue
                if status == _BAD:  # a complete frame starts inside this one: this one is cut
                    self._reject(p, f"a frame starts inside it at +{value2 - p}")
                    search = value2
                    continue
            if status == _NEED and value is None:
                # Still arriving; but if a complete frame already starts after this magic
                # word, this candidate was cut short: drop it now rather than wait for bytes
                # that will never belong to it.
                status, value2, _ = self._check_inner(buf, p + len(MAGIC), n, n)
                if status == _BAD:
                    self._reject(p, f"a frame starts inside it at +{value2 - p}")
                    search = value2
                    continue
                status = _NEED
            if status == _NEED:
                self.bytes_skipped += max(p - max(pos, owned), 0)
                pos, need = p, 0
                break
            if status == _UNKNOWN_VERSION:
                self._unknown_version(value)
            else:
                self._reject(p, value)
            search = p + len(MAGIC)
        if pos:
            del buf[:pos]
        self._owned = max(owned - pos, 0)
        # A waiting candidate is judged again on every feed (an inner frame may complete
        # first); only "no magic word yet" lets the next feeds skip the search.
        self._need = max(need - pos, 0)
        return out

    # -- decoding -----------------------------------------------------------------------------

    def _decode_at(self, buf: bytearray, p: int, n: int) -> tuple[int, object, int]:
        """Judge the candidate frame at p: (status, value, bytes needed before judging again).

        OK -> value (length, frame number, points, stats); BAD -> value is the reason;
        UNKNOWN_VERSION -> value is the version; NEED -> value is None. Only the bytes present
        are read; a header or TLV header that is already inconsistent is rejected at once, so
        a corrupt length cannot hold the stream up until it has arrived.
        """
        if n - p < HEADER_BYTES:
            return _NEED, None, p + HEADER_BYTES
        _, version, total, _platform, number, _cpu, n_obj, n_tlv, _sub = HEADER.unpack_from(buf, p)
        if version >> 24 != SDK_MAJOR:
            return _UNKNOWN_VERSION, version, 0
        if total < HEADER_BYTES or total > self.max_packet_bytes:
            return _BAD, f"totalPacketLen {total} out of range", 0
        if total % SEGMENT_BYTES:
            # the demo rounds every packet up to whole segments; a length a few bytes long would
            # otherwise swallow the start of the next frame's magic word
            return _BAD, f"totalPacketLen {total} not a multiple of {SEGMENT_BYTES}", 0
        if n_obj > self.max_points or n_tlv > self.max_tlvs:
            return _BAD, f"numDetectedObj {n_obj} / numTLVs {n_tlv} out of range", 0
        end = p + total
        off = p + HEADER_BYTES
        points_at = side_at = -1
        stats = None
        for _ in range(n_tlv):
            if off + 8 > end:
                return _BAD, "TLV header beyond totalPacketLen", 0
            if off + 8 > n:
                return _NEED, None, off + 8
            kind, length = TLV_HEADER.unpack_from(buf, off)
            off += 8
            if length > end - off:
                return _BAD, f"TLV {kind} length {length} beyond totalPacketLen", 0
            if kind == TLV_POINTS:
                if length != n_obj * POINT_BYTES or points_at >= 0:
                    return _BAD, f"points TLV length {length} for {n_obj} points", 0
                points_at = off
            elif kind == TLV_SIDE_INFO:
                if length != n_obj * SIDE_INFO_BYTES or side_at >= 0:
                    return _BAD, f"side-info TLV length {length} for {n_obj} points", 0
                side_at = off
            elif kind == TLV_STATS:
                if length != STATS.size:
                    return _BAD, f"stats TLV length {length}", 0
                if off + length <= n:
                    stats = FrameStats(*STATS.unpack_from(buf, off))
            off += length
        if end - off >= SEGMENT_BYTES:
            return _BAD, f"{end - off} bytes after the last TLV (padding < {SEGMENT_BYTES})", 0
        if end > n:
            return _NEED, None, end
        if points_at < 0:
            points = np.zeros((0, _N_COLUMNS), dtype=np.float32)
        else:
            points = np.empty((n_obj, _N_COLUMNS), dtype=np.float32)
            points[:, :4] = np.frombuffer(buf, "<f4", n_obj * 4, points_at).reshape(n_obj, 4)
            if side_at >= 0:
                side = np.frombuffer(buf, "<i2", n_obj * 2, side_at).reshape(n_obj, 2)
                # k / 10 in float32 is the float nearest k tenths of a dB; encode inverts it
                np.divide(side, np.float32(10.0), out=points[:, 4:], dtype=np.float32)
                del side  # release the view on buf before the buffer is resized
            else:
                points[:, 4:] = np.nan
        return _OK, (total, number, points, stats), 0

    def _check_inner(self, buf: bytearray, start: int, end: int, n: int) -> tuple[int, int, int]:
        """A frame that validated but holds a magic word: is a real frame starting there?

        If the frame before was cut short, its header's length swallows the next frame, and that
        next frame (complete and valid) proves it. Magic bytes inside an intact frame's payload
        almost never form a header whose TLVs agree, so they are rejected at once.
        """
        # a magic word that merely begins before `end` is inside too
        stop = min(n, end + len(MAGIC) - 1)
        q = buf.find(MAGIC, start, stop)
        while q >= 0:
            status, _, need = self._decode_at(buf, q, n)
            if status == _OK:
                return _BAD, q, 0
            if status == _NEED:
                return _NEED, q, need
            q = buf.find(MAGIC, q + len(MAGIC), stop)
        return _OK, 0, 0

    @staticmethod
    def _magic_tail(buf: bytearray, start: int, end: int, n: int) -> int:
        """Where a magic word may begin in buf[start:end] and run past n; `end` if nowhere."""
        for q in range(max(start, n - len(MAGIC) + 1), min(end, n)):
            if buf[q] == MAGIC[0] and MAGIC.startswith(buf[q:n]):
                return q
        return end

    # -- accounting ---------------------------------------------------------------------------

    def _reject(self, p: int, reason: object) -> None:
        self.frames_rejected += 1
        log.debug("%s: frame candidate rejected (%s); resyncing", self.name, reason)

    def _unknown_version(self, version: object) -> None:
        self.unknown_versions += 1
        if not self._versions_seen:
            log.warning("%s: header version 0x%08x is not SDK %d.x; such frames are dropped and "
                        "counted (unknown_versions); flash the SDK 3.x out-of-box demo",
                        self.name, version, SDK_MAJOR)
        if len(self._versions_seen) < 64:
            self._versions_seen.add(int(version))  # type: ignore[arg-type]

    def _count_gap(self, number: int) -> None:
        last, self.last_frame_number = self.last_frame_number, number
        if last is None or number == last:
            return
        missing = (number - last - 1) & 0xFFFFFFFF
        if missing == 0:
            return
        self.frame_gaps += 1
        if missing < 1 << 31:
            self.frames_missing += missing
            log.debug("%s: %d frame(s) missing before frame %d", self.name, missing, number)
        else:
            log.info("%s: frame number went back from %d to %d (radar restarted?)",
                     self.name, last, number)


def encode_frame(frame_number: int, points: np.ndarray, *, t_cpu_cycles: int = 0,
                 stats: FrameStats | None = None, version: int = SDK_VERSION,
                 platform: int = PLATFORM_XWR68XX, subframe: int = 0) -> bytes:
    """One SDK 3.x data-port packet, as the demo sends it.

    `points`: float32 (N, 6) in POINT_COLUMNS order; snr and noise in dB go on the wire as int16
    tenths of a dB (NaN as 0). TLV 1 is always sent, TLV 7 when there are points, TLV 6 when
    `stats` is given; the packet is padded with zeros to a multiple of 32 bytes.
    """
    pts = np.asarray(points, dtype=np.float32).reshape(-1, _N_COLUMNS)
    n = len(pts)
    tlvs = [(TLV_POINTS, np.ascontiguousarray(pts[:, :4], dtype="<f4").tobytes())]
    if n:
        tenths = np.nan_to_num(pts[:, 4:].astype(np.float64) * 10.0)
        side = np.clip(np.rint(tenths), -32768, 32767).astype("<i2")
        tlvs.append((TLV_SIDE_INFO, side.tobytes()))
    if stats is not None:
        tlvs.append((TLV_STATS, STATS.pack(
            stats.inter_frame_processing_us, stats.transmit_output_us,
            stats.inter_frame_margin_us, stats.inter_chirp_margin_us,
            stats.active_frame_cpu_load_pct, stats.inter_frame_cpu_load_pct)))
    body = b"".join(TLV_HEADER.pack(kind, len(payload)) + payload for kind, payload in tlvs)
    length = HEADER_BYTES + len(body)
    total = -(-length // SEGMENT_BYTES) * SEGMENT_BYTES
    header = HEADER.pack(MAGIC, version, total, platform, frame_number & 0xFFFFFFFF,
                         t_cpu_cycles & 0xFFFFFFFF, n, len(tlvs), subframe)
    return header + body + bytes(total - length)
