"""I2C parts: power monitors, compasses, temperature sensors, the HAT ID EEPROM.

Each chip module offers its driver (reads the chip's real registers, checks its identity at
open, returns SI units) and a `Fake<Chip>` RegisterMap that encodes physical values the way
the chip does, for the fake I2C bus. `open_sensor` picks the driver by config kind.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Protocol

from hal.ports.i2c import I2CBus


class SensorError(RuntimeError):
    """A part answered but not usefully (no data yet, bad checksum); the message names it."""


class IdentityError(SensorError):
    """The part at the address is not the configured chip; the message names the address."""


class Sensor(Protocol):
    kind: str
    address: int

    def read(self) -> Any: ...


def where(kind: str, bus: I2CBus, address: int) -> str:
    """'ina219 at i2c bus 1 address 0x40', for messages."""
    number = getattr(bus, "bus", "?")
    return f"{kind} at i2c bus {number} address 0x{address:02x}"


def to_signed(value: int, bits: int) -> int:
    sign = 1 << (bits - 1)
    return (value & (sign - 1)) - (value & sign)


def read_u16_be(bus: I2CBus, address: int, register: int) -> int:
    """A 16-bit register sent MSB first (TI parts)."""
    hi, lo = bus.read_i2c_block_data(address, register, 2)
    return (hi << 8) | lo


def write_u16_be(bus: I2CBus, address: int, register: int, value: int) -> None:
    bus.write_i2c_block_data(address, register, [(value >> 8) & 0xFF, value & 0xFF])


_KINDS = {
    "ina219": "hal.sensors.ina219:INA219",
    "ina226": "hal.sensors.ina226:INA226",
    "qmc5883l": "hal.sensors.qmc5883l:QMC5883L",
    "lis3mdl": "hal.sensors.lis3mdl:LIS3MDL",
    "tmp102": "hal.sensors.tmp102:TMP102",
    "bme280": "hal.sensors.bme280:BME280",
    "hat-eeprom": "hal.sensors.hat_eeprom:HatEeprom",
}


def open_sensor(kind: str, bus: I2CBus, address: int, **options: Any) -> Sensor:
    """Open the driver for config kind `kind` at `address` on `bus`.

    Options are the driver's own (e.g. `shunt_ohm` for the power monitors). An option given
    as None is dropped (a config field this kind does not use); any other option the driver
    does not take is an error. Raises IdentityError when the part is not the configured chip
    and I2CError when nothing answers.
    """
    try:
        target = _KINDS[kind]
    except KeyError:
        raise ValueError(f"i2c sensor kind '{kind}' unknown; choose one of "
                         f"{sorted(_KINDS)}") from None
    module_name, cls_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    given = {k: v for k, v in options.items() if v is not None}
    try:
        inspect.signature(cls).bind(bus, address, **given)
    except TypeError as exc:
        raise ValueError(f"{where(kind, bus, address)}: bad options {sorted(given)}: "
                         f"{exc}") from None
    return cls(bus, address, **given)
