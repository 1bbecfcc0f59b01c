"""QST QMC5883L three-axis magnetometer, used as a compass to check the mast heading.

Registers (8-bit, auto-incrementing): 0x00..0x05 X, Y, Z (signed 16-bit, LSB first),
0x06 status (bit 0 DRDY, bit 1 OVL overflow, bit 2 DOR), 0x07..0x08 temperature (relative),
0x09 control 1 (bits 7..6 OSR, 5..4 RNG 00 = +-2 G / 01 = +-8 G, 3..2 ODR, 1..0 MODE
01 = continuous), 0x0A control 2 (bit 7 soft reset), 0x0B SET/RESET period (0x01 recommended),
0x0D chip id 0xFF. Sensitivity 12000 LSB/G at +-2 G, 3000 LSB/G at +-8 G (1 G = 100 uT).

Heading: the chip mounted level with its X axis along the mast heading and Z up (so Y points
left, as in the node frame). The magnetic heading of X is atan2(Y, X), clockwise from magnetic
north; declination is the caller's business.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hal.ports.i2c import I2CBus
from hal.ports.i2c.fake import RegisterMap
from hal.sensors import IdentityError, SensorError, to_signed, where

REG_DATA, REG_STATUS, REG_CTRL1, REG_CTRL2, REG_SET_RESET, REG_CHIP_ID = (
    0x00, 0x06, 0x09, 0x0A, 0x0B, 0x0D)
CHIP_ID = 0xFF
LSB_PER_GAUSS = {2: 12000, 8: 3000}
GAUSS_T = 1e-4


@dataclass(frozen=True)
class MagneticReading:
    field_t: tuple[float, float, float]
    # Magnetic heading of the chip's X axis, degrees clockwise from magnetic north, [0, 360).
    heading_deg: float
    overflow: bool = False


def heading_from_field(x: float, y: float) -> float:
    """Heading of the X axis for a level sensor with Y to the left (see module docstring)."""
    return math.degrees(math.atan2(y, x)) % 360.0


class QMC5883L:
    """QMC5883L at `address` (0x0D). `range_gauss`: 2 (finer) or 8 (near strong fields)."""

    kind = "qmc5883l"

    def __init__(self, bus: I2CBus, address: int = 0x0D, *, range_gauss: int = 2):
        self.bus, self.address = bus, address
        self.name = where(self.kind, bus, address)
        if range_gauss not in LSB_PER_GAUSS:
            raise ValueError(f"{self.name}: range_gauss {range_gauss} not one of 2, 8")
        chip_id = bus.read_byte_data(address, REG_CHIP_ID)
        if chip_id != CHIP_ID:
            raise IdentityError(f"{self.name}: chip id register 0x0D reads 0x{chip_id:02x}, a "
                                f"QMC5883L reads 0x{CHIP_ID:02x}; is another part there?")
        self.range_gauss = range_gauss
        bus.write_byte_data(address, REG_CTRL2, 0x80)  # soft reset
        bus.write_byte_data(address, REG_SET_RESET, 0x01)
        # OSR 512, range, 10 Hz, continuous.
        rng = 0x00 if range_gauss == 2 else 0x10
        bus.write_byte_data(address, REG_CTRL1, rng | 0x01)

    def read(self) -> MagneticReading:
        """The last sample in tesla with the heading of the X axis."""
        status = self.bus.read_byte_data(self.address, REG_STATUS)
        if not status & 0x01:
            raise SensorError(f"{self.name}: no sample ready (status 0x{status:02x}); "
                              "is the chip in continuous mode?")
        raw = self.bus.read_i2c_block_data(self.address, REG_DATA, 6)
        counts = [to_signed(raw[i] | (raw[i + 1] << 8), 16) for i in (0, 2, 4)]
        scale = GAUSS_T / LSB_PER_GAUSS[self.range_gauss]
        x, y, z = (c * scale for c in counts)
        return MagneticReading((x, y, z), heading_from_field(x, y), bool(status & 0x02))


class FakeQMC5883L(RegisterMap):
    """A QMC5883L in a magnetic field: set the field (tesla) or a heading."""

    def __init__(self) -> None:
        super().__init__()
        self.field_t = (20e-6, 0.0, -45e-6)
        self._power_on()

    def _power_on(self) -> None:
        self.regs[:] = bytes(256)
        self.regs[REG_CHIP_ID] = CHIP_ID
        self._convert()

    def set(self, *, field_t: tuple[float, float, float]) -> None:
        self.field_t = field_t
        self._convert()

    def set_heading(self, heading_deg: float, horizontal_t: float = 20e-6,
                    vertical_t: float = -45e-6) -> None:
        """The field a level chip sees with its X axis at `heading_deg` from magnetic north."""
        a = math.radians(heading_deg)
        self.set(field_t=(horizontal_t * math.cos(a), horizontal_t * math.sin(a), vertical_t))

    def write(self, register: int, data: bytes) -> None:
        for i, value in enumerate(data):
            reg = register + i
            if reg == REG_CTRL2 and value & 0x80:
                self._power_on()
            elif reg < REG_CTRL1 or reg in (REG_CHIP_ID, 0x0C):
                continue  # read-only
            else:
                self.regs[reg] = value
        self._convert()

    def _convert(self) -> None:
        if self.regs[REG_CTRL1] & 0x03 != 0x01:  # standby: no new samples
            self.regs[REG_STATUS] &= ~0x01
            return
        lsb = LSB_PER_GAUSS[8 if self.regs[REG_CTRL1] & 0x30 else 2]
        overflow = False
        for i, value in enumerate(self.field_t):
            counts = round(value / GAUSS_T * lsb)
            if not -32768 <= counts <= 32767:
                overflow, counts = True, max(-32768, min(32767, counts))
            self.regs[2 * i:2 * i + 2] = (counts & 0xFFFF).to_bytes(2, "little")
        self.regs[REG_STATUS] = 0x01 | (0x02 if overflow else 0)
