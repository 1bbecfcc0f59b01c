"""The Beast binary format (Mode-S Beast, dump1090/readsb port 30005 style).

A frame is 0x1a, a type byte ('1' Mode A/C, 2 bytes; '2' Mode S short, 7 bytes; '3' Mode S
long, 14 bytes; '4' receiver status), a 6-byte 12 MHz timestamp, one signal byte and the
message. A 0x1a inside the frame is sent twice. Anything that does not fit is garbage: counted,
skipped up to the next 0x1a, never decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ESC = 0x1A
# Bytes after the type byte: 6 timestamp + 1 signal + message.
BODY_BYTES = {0x31: 2 + 7, 0x32: 7 + 7, 0x33: 14 + 7, 0x34: 14 + 7}


@dataclass(frozen=True, slots=True)
class BeastFrame:
    kind: str  # "1", "2", "3" or "4"
    mlat_ticks: int  # the receiver's 12 MHz counter (0 when it has none)
    signal: int
    message: bytes


class BeastFramer:
    """Bytes in (any chunking), frames out. Counts frames and garbage bytes."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.frames = 0
        self.garbage_bytes = 0

    def feed(self, data: bytes) -> list[BeastFrame]:
        buf = self._buf
        buf += data
        out: list[BeastFrame] = []
        i, n = 0, len(buf)
        while i < n:
            if buf[i] != ESC:
                j = buf.find(ESC, i)
                j = n if j < 0 else j
                self.garbage_bytes += j - i
                i = j
                continue
            if i + 1 >= n:
                break
            need = BODY_BYTES.get(buf[i + 1])
            if need is None:  # not a frame start (or an escaped 0x1a out of step)
                self.garbage_bytes += 1
                i += 1
                continue
            start = i + 2
            raw = bytes(buf[start:start + need])
            if len(raw) < need:
                break
            if ESC not in raw:
                body, end = raw, start + need
            else:
                got = _unescape(buf, start, need)
                if got is _MORE:
                    break
                if got is None:  # a lone 0x1a inside: no frame began at i
                    self.garbage_bytes += 1
                    i += 1
                    continue
                body, end = got
            kind = buf[i + 1]
            i = end
            if kind == 0x34:
                continue  # receiver status: nothing to decode
            self.frames += 1
            out.append(BeastFrame(chr(kind), int.from_bytes(body[:6], "big"), body[6],
                                  bytes(body[7:])))
        del buf[:i]
        return out


_MORE = object()


def _unescape(buf: bytearray, start: int, need: int) -> Any:
    """`need` unescaped bytes from `start` as (body, end); `_MORE` when the buffer ends first;
    None when a 0x1a is not doubled (a new frame began inside this one)."""
    out = bytearray()
    j, n = start, len(buf)
    while len(out) < need:
        if j >= n:
            return _MORE
        b = buf[j]
        if b == ESC:
            if j + 1 >= n:
                return _MORE
            if buf[j + 1] != ESC:
                return None
            j += 1
        out.append(b)
        j += 1
    return bytes(out), j


def encode_frame(message: bytes, *, mlat_ticks: int = 0, signal: int = 0x80) -> bytes:
    """One Beast frame for a Mode S message (7 or 14 bytes) or a Mode A/C reply (2 bytes)."""
    kind = {2: b"1", 7: b"2", 14: b"3"}.get(len(message))
    if kind is None:
        raise ValueError(f"beast: a message is 2, 7 or 14 bytes, not {len(message)}")
    body = (mlat_ticks & 0xFFFF_FFFF_FFFF).to_bytes(6, "big") + bytes([signal]) + message
    return b"\x1a" + kind + body.replace(b"\x1a", b"\x1a\x1a")
