"""The Raspberry Pi HAT ID EEPROM (a 24C32 at 0x50 on the ID_SD/ID_SC pins 27/28, i2c-0).

Format (raspberrypi/hats eeprom-format.md, little-endian): a 12-byte header (signature
"R-Pi", version 0x01, reserved, numatoms u16, eeplen u32), then atoms: type u16, count u16,
dlen u32 (data + 2-byte CRC), data, CRC-16 (polynomial 0x8005 reflected, initial 0: CRC-16/ARC)
over type, count, dlen and data. Atom 0x0001 vendor info: UUID (16 bytes, least significant
word first), product id u16, product version u16, vendor and product string lengths u8 and
the two strings.

The 24C32 takes a two-byte memory address, which the one-byte register of the SMBus calls
cannot send: reads are combined write-read transfers (`write_read`), 32 bytes at a time.
"""

from __future__ import annotations

import logging
import struct
import uuid
from dataclasses import dataclass, field

from hal.ports.i2c import MAX_BLOCK, I2CBus
from hal.ports.i2c.fake import Nack, RegisterMap
from hal.sensors import IdentityError, SensorError, where

log = logging.getLogger(__name__)

SIGNATURE = b"R-Pi"
HEADER_SIZE = 12
ATOM_HEADER_SIZE = 8
EEPROM_SIZE = 4096  # 24C32
ATOM_VENDOR, ATOM_GPIO, ATOM_DT, ATOM_CUSTOM, ATOM_GPIO_BANK1 = 1, 2, 3, 4, 5


def crc16(data: bytes) -> int:
    """CRC-16/ARC, as eepmake's getcrc computes it (check value 0xBB3D for '123456789')."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


@dataclass(frozen=True)
class Atom:
    type: int
    count: int
    data: bytes
    crc_ok: bool


@dataclass(frozen=True)
class HatInfo:
    uuid: uuid.UUID | None
    product_id: int | None
    product_version: int | None
    vendor: str | None
    product: str | None
    atoms: list[Atom] = field(default_factory=list)


def build_hat_eeprom(*, vendor: str, product: str, product_id: int, product_version: int,
                     hat_uuid: uuid.UUID,
                     extra_atoms: tuple[tuple[int, bytes], ...] = ()) -> bytes:
    """An EEPROM image as eepmake writes it: vendor atom, GPIO map atom, then `extra_atoms`."""
    vstr, pstr = vendor.encode("ascii"), product.encode("ascii")
    vendor_data = (hat_uuid.int.to_bytes(16, "little")
                   + struct.pack("<HHBB", product_id, product_version, len(vstr), len(pstr))
                   + vstr + pstr)
    atoms = [(ATOM_VENDOR, vendor_data), (ATOM_GPIO, bytes(30)), *extra_atoms]
    body = b""
    for count, (atom_type, data) in enumerate(atoms):
        head = struct.pack("<HHI", atom_type, count, len(data) + 2)
        body += head + data + struct.pack("<H", crc16(head + data))
    header = SIGNATURE + struct.pack("<BBHI", 1, 0, len(atoms), HEADER_SIZE + len(body))
    return header + body


def parse_vendor(data: bytes) -> tuple[uuid.UUID, int, int, str, str]:
    if len(data) < 22:
        raise ValueError(f"vendor atom has {len(data)} bytes, needs at least 22")
    hat_uuid = uuid.UUID(int=int.from_bytes(data[:16], "little"))
    pid, pver, vslen, pslen = struct.unpack_from("<HHBB", data, 16)
    if 22 + vslen + pslen > len(data):
        raise ValueError("vendor atom strings run past its end")
    vendor = data[22:22 + vslen].decode("ascii", "replace")
    product = data[22 + vslen:22 + vslen + pslen].decode("ascii", "replace")
    return hat_uuid, pid, pver, vendor, product


class HatEeprom:
    """The HAT ID EEPROM at `address` (0x50). The bus must offer `write_read`."""

    kind = "hat-eeprom"

    def __init__(self, bus: I2CBus, address: int = 0x50):
        self.bus, self.address = bus, address
        self.name = where(self.kind, bus, address)
        if not hasattr(bus, "write_read"):
            raise SensorError(f"{self.name}: the i2c backend {type(bus).__name__} has no "
                              "write_read (a 24C32 needs two-byte addresses)")
        head = self._read(0, HEADER_SIZE)
        if head[:4] != SIGNATURE:
            raise IdentityError(f"{self.name}: signature {head[:4]!r} is not 'R-Pi' "
                                "(blank EEPROM, or not a HAT ID EEPROM)")
        self.version, _, self.numatoms, self.eeplen = struct.unpack_from("<BBHI", head, 4)
        if self.version != 1:
            raise SensorError(f"{self.name}: format version {self.version} unknown "
                              "(only version 1 is defined)")
        if not HEADER_SIZE <= self.eeplen <= EEPROM_SIZE:
            raise SensorError(f"{self.name}: eeplen {self.eeplen} outside "
                              f"{HEADER_SIZE}..{EEPROM_SIZE}")

    def _read(self, offset: int, length: int) -> bytes:
        out = b""
        while len(out) < length:
            at = offset + len(out)
            n = min(MAX_BLOCK, length - len(out))
            out += bytes(self.bus.write_read(self.address, [at >> 8, at & 0xFF], n))
        return out

    def read(self) -> HatInfo:
        """Every atom with its CRC verdict, and the vendor atom's fields (None if absent or
        damaged). Stops at the first atom that runs past eeplen."""
        atoms: list[Atom] = []
        offset = HEADER_SIZE
        for _ in range(self.numatoms):
            if offset + ATOM_HEADER_SIZE > self.eeplen:
                break
            head = self._read(offset, ATOM_HEADER_SIZE)
            atom_type, count, dlen = struct.unpack("<HHI", head)
            if dlen < 2 or offset + ATOM_HEADER_SIZE + dlen > self.eeplen:
                break
            body = self._read(offset + ATOM_HEADER_SIZE, dlen)
            data, (crc,) = body[:-2], struct.unpack("<H", body[-2:])
            atoms.append(Atom(atom_type, count, data, crc16(head + data) == crc))
            offset += ATOM_HEADER_SIZE + dlen
        fields: tuple[uuid.UUID | None, int | None, int | None, str | None, str | None] = (
            None, None, None, None, None)
        for atom in atoms:
            if atom.type == ATOM_VENDOR and atom.crc_ok:
                try:
                    fields = parse_vendor(atom.data)
                except ValueError as exc:
                    log.warning("%s: vendor atom unreadable: %s", self.name, exc)
                break
        return HatInfo(*fields, atoms=atoms)


class FakeHatEeprom(RegisterMap):
    """A 24C32 holding `image`, with its two-byte address pointer."""

    def __init__(self, image: bytes = b""):
        super().__init__(EEPROM_SIZE)
        self.regs[:] = b"\xff" * EEPROM_SIZE  # erased cells read 0xFF
        self.regs[:len(image)] = image
        self.pointer = 0

    def transfer(self, data: bytes, length: int) -> bytes:
        if len(data) != 2:
            raise Nack("24C32 takes a two-byte memory address")
        self.pointer = ((data[0] << 8) | data[1]) % EEPROM_SIZE
        out = bytes(self.regs[(self.pointer + i) % EEPROM_SIZE] for i in range(length))
        self.pointer = (self.pointer + length) % EEPROM_SIZE
        return out

    def read(self, register: int, length: int) -> bytes:
        raise Nack("24C32 needs a two-byte address; use write_read")

    def write(self, register: int, data: bytes) -> None:
        # SMBus byte/block write: `register` is the high address byte, data[0] the low one.
        if not data:
            raise Nack("24C32 needs a two-byte address")
        self.pointer = ((register << 8) | data[0]) % EEPROM_SIZE
        for value in data[1:]:
            self.regs[self.pointer] = value
            self.pointer = (self.pointer + 1) % EEPROM_SIZE
