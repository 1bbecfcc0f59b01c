"""TI INA226 power monitor (up to 36 V bus, 16-bit shunt ADC).

Registers (16-bit, MSB first): 0x00 configuration (power-on 0x4127; bit 15 resets), 0x01 shunt
voltage (signed, 2.5 uV/LSB), 0x02 bus voltage (1.25 mV/LSB), 0x03 power (25 x current LSB),
0x04 current (signed), 0x05 calibration (= trunc(0.00512 / (current_LSB x R_shunt)), 15 bits),
0x06 mask/enable (bit 3 CVRF, bit 2 OVF), 0xFE manufacturer id 0x5449 ("TI"), 0xFF die id
0x2260 (bits 15..4 device 0x226, bits 3..0 revision).
"""

from __future__ import annotations

import logging

from hal.ports.i2c import I2CBus
from hal.sensors import IdentityError, read_u16_be, to_signed, where, write_u16_be
from hal.sensors.ina219 import FakeShuntMonitor, PowerReading

log = logging.getLogger(__name__)

REG_CONFIG, REG_SHUNT, REG_BUS, REG_POWER, REG_CURRENT, REG_CALIBRATION = range(6)
REG_MASK, REG_ALERT, REG_MANUFACTURER, REG_DIE = 0x06, 0x07, 0xFE, 0xFF
CONFIG_POR = 0x4127
CONFIG_RESET = 0x8000
MANUFACTURER_TI = 0x5449
DIE_INA226 = 0x226
SHUNT_LSB_V = 2.5e-6
BUS_LSB_V = 1.25e-3

__all__ = ["INA226", "FakeINA226", "PowerReading"]


class INA226:
    """INA226 at `address` (0x40..0x4F). `shunt_ohm` is mandatory; `max_current_a` sets the
    current resolution (max_current_a / 32768 per LSB)."""

    kind = "ina226"

    def __init__(self, bus: I2CBus, address: int = 0x40, *, shunt_ohm: float,
                 max_current_a: float = 3.2):
        self.bus, self.address = bus, address
        self.name = where(self.kind, bus, address)
        if shunt_ohm <= 0 or max_current_a <= 0:
            raise ValueError(f"{self.name}: shunt_ohm and max_current_a must be positive")
        manufacturer = read_u16_be(bus, address, REG_MANUFACTURER)
        die = read_u16_be(bus, address, REG_DIE)
        if manufacturer != MANUFACTURER_TI or die >> 4 != DIE_INA226:
            raise IdentityError(
                f"{self.name}: manufacturer id 0x{manufacturer:04x}, die id 0x{die:04x}; an "
                f"INA226 reads 0x{MANUFACTURER_TI:04x} and 0x{DIE_INA226:03x}x")
        write_u16_be(bus, address, REG_CONFIG, CONFIG_RESET)
        cal = int(0.00512 / (max_current_a / 32768 * shunt_ohm))
        if not 1 <= cal <= 0x7FFF:
            raise ValueError(f"{self.name}: shunt_ohm {shunt_ohm} with max_current_a "
                             f"{max_current_a} gives calibration {cal}, outside 1..32767")
        self.calibration = cal
        self.current_lsb_a = 0.00512 / (cal * shunt_ohm)
        write_u16_be(bus, address, REG_CALIBRATION, cal)

    def read(self) -> PowerReading:
        """One reading in V, A and W."""
        if read_u16_be(self.bus, self.address, REG_CALIBRATION) != self.calibration:
            log.warning("%s: calibration lost (chip reset?), writing it again", self.name)
            write_u16_be(self.bus, self.address, REG_CALIBRATION, self.calibration)
        flags = read_u16_be(self.bus, self.address, REG_MASK)
        bus = read_u16_be(self.bus, self.address, REG_BUS)
        shunt = to_signed(read_u16_be(self.bus, self.address, REG_SHUNT), 16)
        current = to_signed(read_u16_be(self.bus, self.address, REG_CURRENT), 16)
        power = read_u16_be(self.bus, self.address, REG_POWER)
        return PowerReading(
            bus_voltage_v=(bus & 0x7FFF) * BUS_LSB_V,
            shunt_voltage_v=shunt * SHUNT_LSB_V,
            current_a=current * self.current_lsb_a,
            power_w=power * 25 * self.current_lsb_a,
            overflow=bool(flags & 0x4),
        )


class FakeINA226(FakeShuntMonitor):
    """An INA226 on a shunt: set the bus voltage and current, read registers like the chip's."""

    CALIBRATION_MASK = 0x7FFF

    def __init__(self, shunt_ohm: float = 0.1):
        super().__init__(shunt_ohm, readonly={REG_SHUNT, REG_BUS, REG_POWER, REG_CURRENT,
                                              REG_MANUFACTURER, REG_DIE})

    def _power_on(self) -> None:
        self.words.update({REG_CONFIG: CONFIG_POR, REG_SHUNT: 0, REG_BUS: 0, REG_POWER: 0,
                           REG_CURRENT: 0, REG_CALIBRATION: 0, REG_MASK: 0, REG_ALERT: 0,
                           REG_MANUFACTURER: MANUFACTURER_TI, REG_DIE: DIE_INA226 << 4})
        self._convert()

    def _convert(self) -> None:
        shunt = round(self.current_a * self.shunt_ohm / SHUNT_LSB_V)
        overflow = not -0x8000 <= shunt <= 0x7FFF
        shunt = max(-0x8000, min(0x7FFF, shunt))
        bus = max(0, min(0x7FFF, round(self.bus_voltage_v / BUS_LSB_V)))
        current = int(shunt * self.words[REG_CALIBRATION] / 2048)
        power = abs(current) * bus // 20000
        overflow = overflow or abs(current) > 0x7FFF or power > 0xFFFF
        current = max(-0x8000, min(0x7FFF, current))
        self.words[REG_SHUNT] = shunt & 0xFFFF
        self.words[REG_BUS] = bus
        self.words[REG_CURRENT] = current & 0xFFFF
        self.words[REG_POWER] = min(power, 0xFFFF)
        self.words[REG_MASK] = (self.words[REG_MASK] & ~0xC) | 0x8 | (0x4 if overflow else 0)
