"""I2C parts of the digital twin, reached over its Unix socket (the `sim` backend).

The twin holds the register maps (the chip models of hal/sensors/) and keeps their physical
values in step with the scenario: jammer supply, compass heading, temperature.
"""

from __future__ import annotations

import errno

from hal.ports.i2c import MAX_BLOCK, I2CError
from hal.sim.protocol import SimClient, SimError


class SimI2CBus:
    """`device` is the twin's socket path (endpoints.json: socket)."""

    def __init__(self, bus: int, device: str | None = None):
        if not device:
            raise I2CError(bus, None, "sim backend needs the twin's socket (sensors.i2c_device)",
                           errno.ENODEV)
        self.bus = bus
        self.device = device
        try:
            self._client: SimClient | None = SimClient(device, "i2c", name=f"i2c-{bus}")
        except SimError as exc:
            raise I2CError(bus, None, str(exc), errno.ENODEV) from exc

    def _call(self, address: int, what: str, op: str, **fields: object) -> dict:
        if self._client is None:
            raise I2CError(self.bus, address, f"{what}: bus closed", errno.EBADF)
        try:
            return self._client.request(op, bus=self.bus, address=address, **fields)
        except SimError as exc:
            # The twin answers "nack: ..." for a part that does not acknowledge.
            err = errno.EREMOTEIO if "nack" in str(exc) else errno.EIO
            raise I2CError(self.bus, address, f"{what}: {exc}", err) from None

    @staticmethod
    def _check_length(length: int) -> None:
        if not 1 <= length <= MAX_BLOCK:
            raise ValueError(f"i2c block length {length} outside 1..{MAX_BLOCK}")

    def read_byte_data(self, address: int, register: int) -> int:
        return self._call(address, f"read register 0x{register:02x}", "i2c.read",
                          register=register, length=1)["data"][0]

    def write_byte_data(self, address: int, register: int, value: int) -> None:
        self._call(address, f"write register 0x{register:02x}", "i2c.write",
                   register=register, data=[value & 0xFF])

    def read_i2c_block_data(self, address: int, register: int, length: int) -> list[int]:
        self._check_length(length)
        return list(self._call(address, f"read {length} bytes at register 0x{register:02x}",
                               "i2c.read", register=register, length=length)["data"])

    def write_i2c_block_data(self, address: int, register: int, data: list[int]) -> None:
        self._check_length(len(data))
        self._call(address, f"write {len(data)} bytes at register 0x{register:02x}",
                   "i2c.write", register=register, data=[int(b) & 0xFF for b in data])

    def write_read(self, address: int, data: list[int], length: int) -> list[int]:
        """Write `data`, repeated start, read `length` bytes (see I2CWriteRead)."""
        return list(self._call(address, f"write {len(data)} then read {length} bytes",
                               "i2c.transfer", data=[int(b) & 0xFF for b in data],
                               length=length)["data"])

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
