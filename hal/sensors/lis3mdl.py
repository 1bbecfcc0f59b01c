"""ST LIS3MDL three-axis magnetometer, the other compass choice.

Registers (8-bit): 0x0F WHO_AM_I = 0x3D, 0x20..0x24 CTRL_REG1..5 (REG1: bit 7 TEMP_EN, 6..5
XY mode, 4..2 data rate; REG2: 6..5 full scale 00 = +-4, 01 = +-8, 10 = +-12, 11 = +-16 gauss,
bit 2 soft reset; REG3: 1..0 mode, 00 = continuous, 11 = power-down at power-on; REG4: 3..2
Z mode; REG5: bit 6 block data update), 0x27 STATUS (bit 3 ZYXDA), 0x28..0x2D X, Y, Z
(signed 16-bit, LSB first), 0x2E..0x2F temperature (8 LSB/degC, 0 = 25 degC). On I2C the
register pointer advances only when bit 7 of the register address is set. Sensitivity 6842,
3421, 2281, 1711 LSB/gauss for +-4, 8, 12, 16 gauss.

Heading as for the QMC5883L: level, X along the mast heading, Z up; atan2(Y, X).
"""

from __future__ import annotations

import math

from hal.ports.i2c import I2CBus
from hal.ports.i2c.fake import RegisterMap
from hal.sensors import IdentityError, SensorError, to_signed, where
from hal.sensors.qmc5883l import MagneticReading, heading_from_field

REG_WHO_AM_I, REG_CTRL1, REG_CTRL2, REG_CTRL3, REG_CTRL4, REG_CTRL5 = (
    0x0F, 0x20, 0x21, 0x22, 0x23, 0x24)
REG_STATUS, REG_OUT_X_L, REG_TEMP_L = 0x27, 0x28, 0x2E
WHO_AM_I = 0x3D
AUTO_INCREMENT = 0x80
LSB_PER_GAUSS = {4: 6842, 8: 3421, 12: 2281, 16: 1711}
FS_BITS = {4: 0x00, 8: 0x20, 12: 0x40, 16: 0x60}
GAUSS_T = 1e-4

__all__ = ["LIS3MDL", "FakeLIS3MDL", "MagneticReading"]


class LIS3MDL:
    """LIS3MDL at `address` (0x1C or 0x1E). `full_scale_gauss`: 4, 8, 12 or 16."""

    kind = "lis3mdl"

    def __init__(self, bus: I2CBus, address: int = 0x1C, *, full_scale_gauss: int = 4):
        self.bus, self.address = bus, address
        self.name = where(self.kind, bus, address)
        if full_scale_gauss not in LSB_PER_GAUSS:
            raise ValueError(f"{self.name}: full_scale_gauss {full_scale_gauss} not one of "
                             f"{sorted(LSB_PER_GAUSS)}")
        who = bus.read_byte_data(address, REG_WHO_AM_I)
        if who != WHO_AM_I:
            raise IdentityError(f"{self.name}: WHO_AM_I (0x0F) reads 0x{who:02x}, a LIS3MDL "
                                f"reads 0x{WHO_AM_I:02x}; is another part at this address?")
        self.full_scale_gauss = full_scale_gauss
        # Temperature on, ultra-high-performance XY and Z, 10 Hz, continuous, block update.
        bus.write_i2c_block_data(address, REG_CTRL1 | AUTO_INCREMENT,
                                 [0xF0, FS_BITS[full_scale_gauss], 0x00, 0x0C, 0x40])

    def read(self) -> MagneticReading:
        """The last sample in tesla with the heading of the X axis."""
        status = self.bus.read_byte_data(self.address, REG_STATUS)
        if not status & 0x08:
            raise SensorError(f"{self.name}: no sample ready (status 0x{status:02x}); "
                              "is the chip in continuous mode?")
        raw = self.bus.read_i2c_block_data(self.address, REG_OUT_X_L | AUTO_INCREMENT, 6)
        counts = [to_signed(raw[i] | (raw[i + 1] << 8), 16) for i in (0, 2, 4)]
        scale = GAUSS_T / LSB_PER_GAUSS[self.full_scale_gauss]
        x, y, z = (c * scale for c in counts)
        # No overflow flag in STATUS (its bit 7 is overrun): a saturated axis is the sign.
        saturated = any(c in (-32768, 32767) for c in counts)
        return MagneticReading((x, y, z), heading_from_field(x, y), saturated)

    def temperature_c(self) -> float:
        """The die temperature, degC (8 LSB/degC around 25 degC)."""
        lo, hi = self.bus.read_i2c_block_data(self.address, REG_TEMP_L | AUTO_INCREMENT, 2)
        return 25.0 + to_signed(lo | (hi << 8), 16) / 8.0


class FakeLIS3MDL(RegisterMap):
    """A LIS3MDL in a magnetic field: set the field (tesla) or a heading, and the die
    temperature."""

    def __init__(self) -> None:
        super().__init__(0x40)
        self.field_t = (20e-6, 0.0, -45e-6)
        self.temperature_c = 25.0
        self._power_on()

    def _power_on(self) -> None:
        self.regs[:] = bytes(0x40)
        self.regs[REG_WHO_AM_I] = WHO_AM_I
        self.regs[REG_CTRL1] = 0x10
        self.regs[REG_CTRL3] = 0x03  # power-down until told otherwise
        self._convert()

    def set(self, *, field_t: tuple[float, float, float] | None = None,
            temperature_c: float | None = None) -> None:
        if field_t is not None:
            self.field_t = field_t
        if temperature_c is not None:
            self.temperature_c = temperature_c
        self._convert()

    def set_heading(self, heading_deg: float, horizontal_t: float = 20e-6,
                    vertical_t: float = -45e-6) -> None:
        a = math.radians(heading_deg)
        self.set(field_t=(horizontal_t * math.cos(a), horizontal_t * math.sin(a), vertical_t))

    def read(self, register: int, length: int) -> bytes:
        step = 1 if register & AUTO_INCREMENT else 0
        start = register & 0x7F
        return bytes(self.regs[(start + i * step) % 0x40] for i in range(length))

    def write(self, register: int, data: bytes) -> None:
        step = 1 if register & AUTO_INCREMENT else 0
        start = register & 0x7F
        for i, value in enumerate(data):
            reg = (start + i * step) % 0x40
            if reg == REG_CTRL2 and value & 0x04:
                self._power_on()
                return
            if REG_CTRL1 <= reg <= REG_CTRL5 or 0x30 <= reg <= 0x33:
                self.regs[reg] = value
        self._convert()

    def _convert(self) -> None:
        if self.regs[REG_CTRL3] & 0x03 != 0x00:  # single-shot done or powered down
            self.regs[REG_STATUS] = 0
            return
        fs = {v: k for k, v in FS_BITS.items()}[self.regs[REG_CTRL2] & 0x60]
        for i, value in enumerate(self.field_t):
            counts = max(-32768, min(32767, round(value / GAUSS_T * LSB_PER_GAUSS[fs])))
            at = REG_OUT_X_L + 2 * i
            self.regs[at:at + 2] = (counts & 0xFFFF).to_bytes(2, "little")
        temp = round((self.temperature_c - 25.0) * 8) if self.regs[REG_CTRL1] & 0x80 else 0
        self.regs[REG_TEMP_L:REG_TEMP_L + 2] = (temp & 0xFFFF).to_bytes(2, "little")
        self.regs[REG_STATUS] = 0x08  # ZYXDA: new X, Y and Z data
