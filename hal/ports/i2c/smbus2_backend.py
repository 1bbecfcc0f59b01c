"""I2C through smbus2 on a Linux /dev/i2c-N (on a Pi: bus 1 on header pins 3/5)."""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from smbus2 import SMBus, i2c_msg

from hal.ports.i2c import MAX_BLOCK, I2CError

log = logging.getLogger(__name__)

T = TypeVar("T")


def _explain(exc: OSError) -> str:
    if exc.errno in (errno.EREMOTEIO, errno.ENXIO):
        return "no ACK (nothing answers at this address; check wiring, power and address)"
    if exc.errno == errno.EBUSY:
        return ("address is bound to a kernel driver (see /sys/bus/i2c/devices/); "
                "unbind it or remove its dtoverlay")
    if exc.errno == errno.ETIMEDOUT:
        return "bus timeout (a part holds SDA low? power-cycle the board)"
    return f"{exc.strerror or exc} (errno {exc.errno})"


class Smbus2Bus:
    """One /dev/i2c-N. Transfers are serialised: several drivers may share the bus."""

    def __init__(self, bus: int, device: str | None = None):
        self.bus = bus
        self.path = device or f"/dev/i2c-{bus}"
        self._lock = threading.Lock()
        try:
            self._smbus: SMBus | None = SMBus(self.path)
        except FileNotFoundError as exc:
            raise I2CError(bus, None, f"{self.path} does not exist; enable I2C "
                           "(dtparam=i2c_arm=on in /boot/firmware/config.txt, "
                           "see hardware/config.txt)", errno.ENOENT) from exc
        except PermissionError as exc:
            raise I2CError(bus, None, f"{self.path}: permission denied; add the user to "
                           "group 'i2c'", errno.EACCES) from exc
        except OSError as exc:
            raise I2CError(bus, None, f"{self.path}: cannot open: {exc}") from exc

    def _do(self, address: int, what: str, func: Callable[[SMBus], T]) -> T:
        with self._lock:
            if self._smbus is None:
                raise I2CError(self.bus, address, f"{what}: bus is closed", errno.EBADF)
            try:
                return func(self._smbus)
            except OSError as exc:
                raise I2CError(self.bus, address, f"{what}: {_explain(exc)}",
                               exc.errno or errno.EIO) from exc

    @staticmethod
    def _check_length(length: int) -> None:
        if not 1 <= length <= MAX_BLOCK:
            raise ValueError(f"i2c block length {length} outside 1..{MAX_BLOCK}")

    def read_byte_data(self, address: int, register: int) -> int:
        return self._do(address, f"read register 0x{register:02x}",
                        lambda b: b.read_byte_data(address, register))

    def write_byte_data(self, address: int, register: int, value: int) -> None:
        self._do(address, f"write register 0x{register:02x}",
                 lambda b: b.write_byte_data(address, register, value))

    def read_i2c_block_data(self, address: int, register: int, length: int) -> list[int]:
        self._check_length(length)
        return self._do(address, f"read {length} bytes at register 0x{register:02x}",
                        lambda b: list(b.read_i2c_block_data(address, register, length)))

    def write_i2c_block_data(self, address: int, register: int, data: list[int]) -> None:
        self._check_length(len(data))
        self._do(address, f"write {len(data)} bytes at register 0x{register:02x}",
                 lambda b: b.write_i2c_block_data(address, register, list(data)))

    def write_read(self, address: int, data: list[int], length: int) -> list[int]:
        """Write `data`, repeated start, read `length` bytes, as one I2C transaction."""

        def transfer(b: SMBus) -> list[int]:
            write, read = i2c_msg.write(address, list(data)), i2c_msg.read(address, length)
            b.i2c_rdwr(write, read)
            return list(read)

        return self._do(address, f"write {len(data)} then read {length} bytes", transfer)

    def close(self) -> None:
        with self._lock:
            if self._smbus is not None:
                self._smbus.close()
                self._smbus = None
