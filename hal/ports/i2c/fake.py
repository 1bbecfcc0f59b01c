"""An I2C bus with no hardware: a RegisterMap per address answers like the part would.

An address with no RegisterMap does not acknowledge, as on a real bus (I2CError, EREMOTEIO).
Chip models subclass RegisterMap (or WordRegisterMap for 16-bit, MSB-first registers) and live
beside their drivers in hal/sensors/ (e.g. `FakeINA219`).
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable
from typing import TypeVar

from hal.ports.i2c import MAX_BLOCK, I2CError

T = TypeVar("T")


class Nack(Exception):
    """Raised by a RegisterMap for a transfer the part would not acknowledge."""


class RegisterMap:
    """A part with 8-bit registers and an auto-incrementing register pointer."""

    def __init__(self, size: int = 256):
        self.regs = bytearray(size)

    def read(self, register: int, length: int) -> bytes:
        """Bytes from `register` on, as the part clocks them out."""
        return bytes(self.regs[(register + i) % len(self.regs)] for i in range(length))

    def write(self, register: int, data: bytes) -> None:
        """`data` written from `register` on (empty: only the pointer moves)."""
        for i, value in enumerate(data):
            self.regs[(register + i) % len(self.regs)] = value

    def transfer(self, data: bytes, length: int) -> bytes:
        """A combined write-then-read. Parts with one-byte register addresses read there."""
        if len(data) != 1:
            raise Nack(f"{type(self).__name__} takes a one-byte register address")
        return self.read(data[0], length)


class WordRegisterMap(RegisterMap):
    """A part with 16-bit registers sent MSB first (TI INA2xx, TMP102). No auto-increment:
    every read of the pointed register returns its two bytes."""

    def __init__(self, registers: dict[int, int], readonly: set[int] | None = None):
        super().__init__(0)
        self.words = dict(registers)
        self.readonly = set(readonly or ())

    def read(self, register: int, length: int) -> bytes:
        if register not in self.words:
            raise Nack(f"no register 0x{register:02x}")
        word = self.words[register].to_bytes(2, "big")
        return bytes(word[i % 2] for i in range(length))

    def write(self, register: int, data: bytes) -> None:
        if register not in self.words:
            raise Nack(f"no register 0x{register:02x}")
        if not data:
            return
        if len(data) != 2:
            raise Nack(f"register 0x{register:02x} takes 2 bytes, got {len(data)}")
        if register not in self.readonly:
            self.write_word(register, int.from_bytes(data, "big"))

    def write_word(self, register: int, value: int) -> None:
        """Subclasses react to writes here (reset bits, calibration...)."""
        self.words[register] = value


class FakeI2CBus:
    """An I2C bus whose parts are RegisterMaps, keyed by 7-bit address."""

    def __init__(self, devices: dict[int, RegisterMap] | None = None, bus: int = 1,
                 device: str | None = None):
        self.bus = bus
        self.devices: dict[int, RegisterMap] = dict(devices or {})
        self.transfers = 0
        self._lock = threading.Lock()
        self._closed = False

    def attach(self, address: int, device: RegisterMap) -> None:
        with self._lock:
            self.devices[address] = device

    def detach(self, address: int) -> None:
        """The part is unplugged: from now on its address does not acknowledge."""
        with self._lock:
            self.devices.pop(address, None)

    def _device(self, address: int) -> RegisterMap:
        if self._closed:
            raise I2CError(self.bus, address, "bus is closed", errno.EBADF)
        self.transfers += 1
        try:
            return self.devices[address]
        except KeyError:
            raise I2CError(self.bus, address, "no ACK (nothing answers at this address)",
                           errno.EREMOTEIO) from None

    def _run(self, address: int, what: str, func: Callable[[RegisterMap], T]) -> T:
        with self._lock:
            device = self._device(address)
            try:
                return func(device)
            except Nack as exc:
                raise I2CError(self.bus, address, f"{what}: no ACK ({exc})",
                               errno.EREMOTEIO) from None

    @staticmethod
    def _check_length(length: int) -> None:
        if not 1 <= length <= MAX_BLOCK:
            raise ValueError(f"i2c block length {length} outside 1..{MAX_BLOCK}")

    def read_byte_data(self, address: int, register: int) -> int:
        return self._run(address, f"read register 0x{register:02x}",
                         lambda d: d.read(register, 1)[0])

    def write_byte_data(self, address: int, register: int, value: int) -> None:
        self._run(address, f"write register 0x{register:02x}",
                  lambda d: d.write(register, bytes([value & 0xFF])))

    def read_i2c_block_data(self, address: int, register: int, length: int) -> list[int]:
        self._check_length(length)
        return self._run(address, f"read {length} bytes at register 0x{register:02x}",
                         lambda d: list(d.read(register, length)))

    def write_i2c_block_data(self, address: int, register: int, data: list[int]) -> None:
        self._check_length(len(data))
        self._run(address, f"write {len(data)} bytes at register 0x{register:02x}",
                  lambda d: d.write(register, bytes(data)))

    def write_read(self, address: int, data: list[int], length: int) -> list[int]:
        """Write `data`, repeated start, read `length` bytes (see I2CWriteRead)."""
        return self._run(address, f"write {len(data)} then read {length} bytes",
                         lambda d: list(d.transfer(bytes(data), length)))

    def close(self) -> None:
        self._closed = True
