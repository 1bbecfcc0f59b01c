"""TI INA219 power monitor (bus voltage, shunt current, power), e.g. on the jammer supply.

Registers (16-bit, MSB first): 0x00 configuration (power-on 0x399F: 32 V range, PGA /8 =
+-320 mV, 12-bit ADCs, continuous), 0x01 shunt voltage (signed, 10 uV/LSB), 0x02 bus voltage
(bits 15..3, 4 mV/LSB; bit 1 CNVR, bit 0 OVF), 0x03 power (20 x current LSB), 0x04 current
(signed, current LSB), 0x05 calibration (= trunc(0.04096 / (current_LSB x R_shunt)), bit 0
always 0). The chip has no identity register: the driver resets it and checks that the
configuration register reads its power-on value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hal.ports.i2c import I2CBus
from hal.ports.i2c.fake import WordRegisterMap
from hal.sensors import IdentityError, read_u16_be, to_signed, where, write_u16_be

log = logging.getLogger(__name__)

REG_CONFIG, REG_SHUNT, REG_BUS, REG_POWER, REG_CURRENT, REG_CALIBRATION = range(6)
CONFIG_POR = 0x399F
CONFIG_RESET = 0x8000
SHUNT_LSB_V = 10e-6
BUS_LSB_V = 4e-3


@dataclass(frozen=True)
class PowerReading:
    bus_voltage_v: float
    shunt_voltage_v: float
    current_a: float
    power_w: float
    # The chip's math overflowed (current or power beyond range): treat the values as invalid.
    overflow: bool = False


class INA219:
    """INA219 at `address` (0x40..0x4F). `shunt_ohm` is mandatory; `max_current_a` sets the
    current resolution (max_current_a / 32768 per LSB)."""

    kind = "ina219"

    def __init__(self, bus: I2CBus, address: int = 0x40, *, shunt_ohm: float,
                 max_current_a: float = 3.2):
        self.bus, self.address = bus, address
        self.name = where(self.kind, bus, address)
        if shunt_ohm <= 0 or max_current_a <= 0:
            raise ValueError(f"{self.name}: shunt_ohm and max_current_a must be positive")
        write_u16_be(bus, address, REG_CONFIG, CONFIG_RESET)
        config = read_u16_be(bus, address, REG_CONFIG)
        if config != CONFIG_POR:
            raise IdentityError(
                f"{self.name}: configuration register reads 0x{config:04x} after reset, an "
                f"INA219 reads 0x{CONFIG_POR:04x}; is another part at this address?")
        cal = int(0.04096 / (max_current_a / 32768 * shunt_ohm)) & 0xFFFE
        if not 2 <= cal <= 0xFFFE:
            raise ValueError(f"{self.name}: shunt_ohm {shunt_ohm} with max_current_a "
                             f"{max_current_a} gives calibration {cal}, outside 2..65534")
        self.calibration = cal
        self.current_lsb_a = 0.04096 / (cal * shunt_ohm)
        write_u16_be(bus, address, REG_CALIBRATION, cal)

    def read(self) -> PowerReading:
        """One reading in V, A and W."""
        if read_u16_be(self.bus, self.address, REG_CALIBRATION) != self.calibration:
            # A brownout resets the chip and zeroes the calibration: current would read 0.
            log.warning("%s: calibration lost (chip reset?), writing it again", self.name)
            write_u16_be(self.bus, self.address, REG_CALIBRATION, self.calibration)
        bus_raw = read_u16_be(self.bus, self.address, REG_BUS)
        shunt = to_signed(read_u16_be(self.bus, self.address, REG_SHUNT), 16)
        current = to_signed(read_u16_be(self.bus, self.address, REG_CURRENT), 16)
        power = read_u16_be(self.bus, self.address, REG_POWER)
        return PowerReading(
            bus_voltage_v=(bus_raw >> 3) * BUS_LSB_V,
            shunt_voltage_v=shunt * SHUNT_LSB_V,
            current_a=current * self.current_lsb_a,
            power_w=power * 20 * self.current_lsb_a,
            overflow=bool(bus_raw & 0x1),
        )


class FakeShuntMonitor(WordRegisterMap):
    """What the TI shunt monitors' fakes share (INA219, INA226: the same first six registers):
    set the bus voltage and current, read registers as the chip encodes them."""

    CALIBRATION_MASK = 0xFFFF  # the chip ignores the bits outside it

    def __init__(self, shunt_ohm: float, readonly: set[int]):
        super().__init__({}, readonly=readonly)
        self.shunt_ohm = shunt_ohm
        self.bus_voltage_v = 0.0
        self.current_a = 0.0
        self._power_on()

    def _power_on(self) -> None:
        raise NotImplementedError

    def _convert(self) -> None:
        raise NotImplementedError

    def set(self, *, bus_voltage_v: float | None = None, current_a: float | None = None) -> None:
        if bus_voltage_v is not None:
            self.bus_voltage_v = bus_voltage_v
        if current_a is not None:
            self.current_a = current_a
        self._convert()

    def write_word(self, register: int, value: int) -> None:
        if register == REG_CONFIG and value & CONFIG_RESET:
            self._power_on()
            return
        if register == REG_CALIBRATION:
            value &= self.CALIBRATION_MASK
        self.words[register] = value
        self._convert()


class FakeINA219(FakeShuntMonitor):
    """An INA219 on a shunt: set the bus voltage and current, read registers like the chip's."""

    CALIBRATION_MASK = 0xFFFE

    def __init__(self, shunt_ohm: float = 0.1):
        super().__init__(shunt_ohm, readonly={REG_SHUNT, REG_BUS, REG_POWER, REG_CURRENT})

    def _power_on(self) -> None:
        self.words.update({REG_CONFIG: CONFIG_POR, REG_SHUNT: 0, REG_BUS: 0, REG_POWER: 0,
                           REG_CURRENT: 0, REG_CALIBRATION: 0})
        self._convert()

    def _convert(self) -> None:
        # PGA setting (config bits 12..11): full scale 40, 80, 160 or 320 mV.
        full_scale = 4000 << ((self.words[REG_CONFIG] >> 11) & 0x3)
        shunt = round(self.current_a * self.shunt_ohm / SHUNT_LSB_V)
        overflow = abs(shunt) > full_scale
        shunt = max(-full_scale, min(full_scale, shunt))
        bus = max(0, min(0x1FFF, round(self.bus_voltage_v / BUS_LSB_V)))
        cal = self.words[REG_CALIBRATION]
        current = int(shunt * cal / 4096)  # the chip truncates
        power = abs(current) * bus // 5000
        overflow = overflow or abs(current) > 0x7FFF or power > 0xFFFF
        current = max(-0x8000, min(0x7FFF, current))
        self.words[REG_SHUNT] = shunt & 0xFFFF
        self.words[REG_CURRENT] = current & 0xFFFF
        self.words[REG_POWER] = min(power, 0xFFFF)
        # CNVR (bit 1) set once a conversion is ready, which it always is here.
        self.words[REG_BUS] = (bus << 3) | 0x2 | int(overflow)
