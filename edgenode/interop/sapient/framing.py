"""SAPIENT stream framing: a 4-byte little-endian length, then one serialized SapientMessage.

`FrameReader` is fed whatever bytes the socket gives and hands back whole payloads. A length
above the configured maximum (a 2 GB prefix, or garbage read as a length) is a broken stream:
it raises `FramingError` at once, before any buffer is grown, and the caller resets the
connection, since nothing after it can be trusted to start on a frame boundary.
"""

from __future__ import annotations

import struct

from google.protobuf.message import DecodeError

from edgenode.interop.sapient.proto import SapientMessage

LENGTH = struct.Struct("<I")


class FramingError(Exception):
    """The stream can no longer be read as frames; the connection must be reset."""


def encode_frame(message: SapientMessage) -> bytes:
    payload = message.SerializeToString()
    return LENGTH.pack(len(payload)) + payload


def decode_payload(payload: bytes) -> SapientMessage:
    """A frame's payload as a SapientMessage; FramingError when it is not one."""
    message = SapientMessage()
    try:
        message.ParseFromString(payload)
    except DecodeError as exc:
        raise FramingError(f"frame of {len(payload)} bytes is not a SapientMessage "
                           f"({exc}); garbage or a truncated message") from None
    return message


class FrameReader:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The whole payloads completed by `data`, in order."""
        self._buf += data
        out: list[bytes] = []
        while len(self._buf) >= LENGTH.size:
            (length,) = LENGTH.unpack_from(self._buf)
            if length > self.max_bytes:
                head = bytes(self._buf[:LENGTH.size]).hex()
                raise FramingError(f"length prefix {length} bytes (0x{head}) exceeds "
                                   f"max_message_bytes {self.max_bytes}")
            if len(self._buf) < LENGTH.size + length:
                break
            out.append(bytes(self._buf[LENGTH.size:LENGTH.size + length]))
            del self._buf[:LENGTH.size + length]
        return out

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held (non-zero at a close: it was truncated)."""
        return len(self._buf)
