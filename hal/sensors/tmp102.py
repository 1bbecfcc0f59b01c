"""TI TMP102 temperature sensor.

Registers (16-bit, MSB first): 0x00 temperature (12-bit left-justified, 0.0625 degC/LSB;
13-bit when EM, configuration bit 4, is set), 0x01 configuration (power-on 0x60A0; bits 14..13,
the converter resolution R1/R0, always read 11), 0x02 T_LOW (0x4B00 = 75 degC), 0x03 T_HIGH
(0x5000 = 80 degC). No identity register: the driver checks the read-only resolution bits and
the always-zero low nibble of the configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from hal.ports.i2c import I2CBus
from hal.ports.i2c.fake import WordRegisterMap
from hal.sensors import IdentityError, read_u16_be, to_signed, where

REG_TEMP, REG_CONFIG, REG_TLOW, REG_THIGH = range(4)
CONFIG_POR = 0x60A0
CONFIG_EM = 0x0010
LSB_C = 0.0625


@dataclass(frozen=True)
class TemperatureReading:
    temperature_c: float


class TMP102:
    """TMP102 at `address` (0x48..0x4B), in its power-on continuous mode (4 conversions/s)."""

    kind = "tmp102"

    def __init__(self, bus: I2CBus, address: int = 0x48):
        self.bus, self.address = bus, address
        self.name = where(self.kind, bus, address)
        config = read_u16_be(bus, address, REG_CONFIG)
        if config & 0x6000 != 0x6000 or config & 0x000F:
            raise IdentityError(
                f"{self.name}: configuration register reads 0x{config:04x}; a TMP102 reads "
                "bits 14..13 set and bits 3..0 clear (0x60A0 at power-on); "
                "is another part at this address?")

    def read(self) -> TemperatureReading:
        """The last conversion in degC."""
        extended = read_u16_be(self.bus, self.address, REG_CONFIG) & CONFIG_EM
        raw = read_u16_be(self.bus, self.address, REG_TEMP)
        if extended:
            return TemperatureReading(to_signed(raw >> 3, 13) * LSB_C)
        return TemperatureReading(to_signed(raw >> 4, 12) * LSB_C)


class FakeTMP102(WordRegisterMap):
    """A TMP102: set the temperature, read it back in the chip's 12- or 13-bit format."""

    def __init__(self, temperature_c: float = 25.0):
        super().__init__({REG_TEMP: 0, REG_CONFIG: CONFIG_POR, REG_TLOW: 0x4B00,
                          REG_THIGH: 0x5000}, readonly={REG_TEMP})
        self.temperature_c = temperature_c
        self._convert()

    def set(self, *, temperature_c: float) -> None:
        self.temperature_c = temperature_c
        self._convert()

    def write_word(self, register: int, value: int) -> None:
        if register == REG_CONFIG:
            # R1/R0 are read-only ones, the low nibble reads zero.
            value = (value | 0x6000) & 0xFFF0
        self.words[register] = value
        self._convert()

    def _convert(self) -> None:
        counts = round(self.temperature_c / LSB_C)
        if self.words[REG_CONFIG] & CONFIG_EM:
            counts = max(-4096, min(4095, counts))
            self.words[REG_TEMP] = ((counts & 0x1FFF) << 3) | 0x1  # bit 0 flags EM format
        else:
            counts = max(-2048, min(2047, counts))
            self.words[REG_TEMP] = (counts & 0x0FFF) << 4
