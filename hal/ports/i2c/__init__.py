"""I2C buses. A bus reads and writes registers of the parts at its addresses.

Backends live side by side: `smbus2` (a real /dev/i2c-N), `fake` (register maps per address)
and the twin's `sim`. Pick one with `open_i2c`; a missing backend is an error, never a fallback.
Multi-byte registers are read as blocks so that each driver states the chip's byte order.
"""

from __future__ import annotations

import errno
from typing import Protocol

from hal.backends import load_backend

# The SMBus block transfers carry at most 32 bytes.
MAX_BLOCK = 32


class I2CError(OSError):
    """A transfer failed; the message names the bus and the address (and register if any)."""

    def __init__(self, bus: int | str, address: int | None, message: str,
                 err: int = errno.EIO):
        self.bus = bus
        self.address = address
        where = f"i2c bus {bus}" if address is None else f"i2c bus {bus} address 0x{address:02x}"
        super().__init__(err, f"{where}: {message}")

    def __str__(self) -> str:
        return str(self.strerror)


class I2CBus(Protocol):
    def read_byte_data(self, address: int, register: int) -> int: ...
    def write_byte_data(self, address: int, register: int, value: int) -> None: ...
    def read_i2c_block_data(self, address: int, register: int, length: int) -> list[int]: ...
    def write_i2c_block_data(self, address: int, register: int, data: list[int]) -> None: ...
    def close(self) -> None: ...


class I2CWriteRead(Protocol):
    """Optional: one combined transfer (write `data`, repeated start, read `length` bytes).

    Needed by parts with 16-bit register addresses, such as the 24C32 HAT ID EEPROM, which
    the one-byte register of the SMBus calls cannot address.
    """

    def write_read(self, address: int, data: list[int], length: int) -> list[int]: ...


_BACKENDS = {
    "smbus2": "hal.ports.i2c.smbus2_backend:Smbus2Bus",
    "fake": "hal.ports.i2c.fake:FakeI2CBus",
    "sim": "hal.ports.i2c.sim:SimI2CBus",
}


def open_i2c(backend: str, *, bus: int, device: str | None = None) -> I2CBus:
    """Open bus number `bus` with the named backend.

    `device`: smbus2, a device path instead of /dev/i2c-<bus>; sim, the twin's socket;
    fake, ignored (the fake starts with no parts: attach them with `FakeI2CBus.attach`).
    """
    cls = load_backend("i2c backend", _BACKENDS, backend)
    if backend == "fake":
        return cls({}, bus=bus)
    return cls(bus=bus, device=device)
