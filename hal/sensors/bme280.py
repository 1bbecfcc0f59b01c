"""Bosch BME280 temperature, pressure and humidity sensor.

Registers (8-bit, auto-incrementing): 0xD0 id = 0x60, 0xE0 reset (write 0xB6), 0x88..0xA1 and
0xE1..0xE7 the factory trimming parameters, 0xF2 ctrl_hum (osrs_h), 0xF3 status (bit 3
measuring, bit 0 im_update), 0xF4 ctrl_meas (osrs_t 7..5, osrs_p 4..2, mode 1..0, 11 = normal),
0xF5 config (t_sb 7..5, filter 4..2), 0xF7..0xFE raw pressure (20 bit), temperature (20 bit),
humidity (16 bit), MSB first. A skipped measurement reads 0x80000 (0x8000 for humidity).

Compensation is the datasheet's integer code (section 4.2.3): temperature in 0.01 degC,
pressure in Q24.8 Pa (64-bit), humidity in Q22.10 %RH.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from hal.ports.i2c import I2CBus
from hal.ports.i2c.fake import RegisterMap
from hal.sensors import IdentityError, SensorError, to_signed, where

REG_CALIB_A, REG_ID, REG_RESET, REG_CALIB_B = 0x88, 0xD0, 0xE0, 0xE1
REG_CTRL_HUM, REG_STATUS, REG_CTRL_MEAS, REG_CONFIG, REG_DATA = 0xF2, 0xF3, 0xF4, 0xF5, 0xF7
CHIP_ID = 0x60
RESET_WORD = 0xB6
SKIPPED_20 = 0x80000
SKIPPED_16 = 0x8000


@dataclass(frozen=True)
class Trimming:
    """The factory trimming parameters (dig_T1..dig_H6 of the datasheet)."""

    t1: int
    t2: int
    t3: int
    p1: int
    p2: int
    p3: int
    p4: int
    p5: int
    p6: int
    p7: int
    p8: int
    p9: int
    h1: int
    h2: int
    h3: int
    h4: int
    h5: int
    h6: int

    @classmethod
    def unpack(cls, a: bytes, b: bytes) -> Trimming:
        """From the 26 bytes at 0x88 and the 7 bytes at 0xE1."""

        def u16(i: int) -> int:
            return a[i] | (a[i + 1] << 8)

        def s16(i: int) -> int:
            return to_signed(u16(i), 16)

        return cls(
            t1=u16(0), t2=s16(2), t3=s16(4),
            p1=u16(6), p2=s16(8), p3=s16(10), p4=s16(12), p5=s16(14), p6=s16(16),
            p7=s16(18), p8=s16(20), p9=s16(22),
            h1=a[25],
            h2=to_signed(b[0] | (b[1] << 8), 16),
            h3=b[2],
            h4=to_signed((b[3] << 4) | (b[4] & 0x0F), 12),
            h5=to_signed((b[5] << 4) | (b[4] >> 4), 12),
            h6=to_signed(b[6], 8),
        )

    def pack(self) -> tuple[bytes, bytes]:
        """The inverse of `unpack`: what the chip holds at 0x88 and 0xE1."""

        def le16(v: int) -> bytes:
            return (v & 0xFFFF).to_bytes(2, "little")

        a = b"".join(le16(v) for v in (self.t1, self.t2, self.t3, self.p1, self.p2, self.p3,
                                        self.p4, self.p5, self.p6, self.p7, self.p8, self.p9))
        a += bytes([0, self.h1 & 0xFF])
        h4, h5 = self.h4 & 0xFFF, self.h5 & 0xFFF
        b = le16(self.h2) + bytes([self.h3 & 0xFF, h4 >> 4, (h4 & 0x0F) | ((h5 & 0x0F) << 4),
                                   h5 >> 4, self.h6 & 0xFF])
        return a, b


def _cdiv(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def compensate_t_fine(adc_t: int, c: Trimming) -> int:
    var1 = (((adc_t >> 3) - (c.t1 << 1)) * c.t2) >> 11
    var2 = (((((adc_t >> 4) - c.t1) * ((adc_t >> 4) - c.t1)) >> 12) * c.t3) >> 14
    return var1 + var2


def compensate_temperature_c(t_fine: int) -> float:
    return ((t_fine * 5 + 128) >> 8) / 100.0


def compensate_pressure_pa(adc_p: int, t_fine: int, c: Trimming) -> float:
    var1 = t_fine - 128000
    var2 = var1 * var1 * c.p6
    var2 = var2 + ((var1 * c.p5) << 17)
    var2 = var2 + (c.p4 << 35)
    var1 = ((var1 * var1 * c.p3) >> 8) + ((var1 * c.p2) << 12)
    var1 = (((1 << 47) + var1) * c.p1) >> 33
    if var1 == 0:
        return 0.0  # avoids a division by zero, as the datasheet does
    p = 1048576 - adc_p
    p = _cdiv(((p << 31) - var2) * 3125, var1)
    var1 = (c.p9 * (p >> 13) * (p >> 13)) >> 25
    var2 = (c.p8 * p) >> 19
    p = ((p + var1 + var2) >> 8) + (c.p7 << 4)
    return p / 256.0


def compensate_humidity_pct(adc_h: int, t_fine: int, c: Trimming) -> float:
    v = t_fine - 76800
    v = ((((adc_h << 14) - (c.h4 << 20) - (c.h5 * v)) + 16384) >> 15) * (
        ((((((v * c.h6) >> 10) * (((v * c.h3) >> 11) + 32768)) >> 10) + 2097152) * c.h2
         + 8192) >> 14)
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * c.h1) >> 4)
    v = min(max(v, 0), 419430400)
    return (v >> 12) / 1024.0


@dataclass(frozen=True)
class EnvironmentReading:
    temperature_c: float
    pressure_pa: float
    humidity_pct: float


class BME280:
    """BME280 at `address` (0x76 or 0x77), run in normal mode at x1 oversampling, one
    measurement a second, filter off."""

    kind = "bme280"

    def __init__(self, bus: I2CBus, address: int = 0x76):
        self.bus, self.address = bus, address
        self.name = where(self.kind, bus, address)
        chip_id = bus.read_byte_data(address, REG_ID)
        if chip_id != CHIP_ID:
            hint = " (0x58 is a BMP280, which has no humidity)" if chip_id == 0x58 else ""
            raise IdentityError(f"{self.name}: id register 0xD0 reads 0x{chip_id:02x}, a "
                                f"BME280 reads 0x{CHIP_ID:02x}{hint}")
        bus.write_byte_data(address, REG_RESET, RESET_WORD)
        deadline = time.monotonic() + 0.05
        while bus.read_byte_data(address, REG_STATUS) & 0x01:  # copying trimming to registers
            if time.monotonic() > deadline:
                raise SensorError(f"{self.name}: still loading its trimming 50 ms after reset")
            time.sleep(0.002)
        a = bytes(bus.read_i2c_block_data(address, REG_CALIB_A, 26))
        b = bytes(bus.read_i2c_block_data(address, REG_CALIB_B, 7))
        self.trimming = Trimming.unpack(a, b)
        # ctrl_hum takes effect only after a write to ctrl_meas, so it goes first.
        bus.write_byte_data(address, REG_CTRL_HUM, 0x01)
        bus.write_byte_data(address, REG_CONFIG, 0xA0)
        bus.write_byte_data(address, REG_CTRL_MEAS, 0x27)

    def read(self) -> EnvironmentReading:
        """The last measurement in degC, Pa and %RH (one burst read, so all three match)."""
        d = self.bus.read_i2c_block_data(self.address, REG_DATA, 8)
        adc_p = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4)
        adc_t = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4)
        adc_h = (d[6] << 8) | d[7]
        if adc_t == SKIPPED_20 or adc_p == SKIPPED_20 or adc_h == SKIPPED_16:
            raise SensorError(f"{self.name}: no measurement yet (data registers hold their "
                              "reset value); is the chip in normal mode?")
        c = self.trimming
        t_fine = compensate_t_fine(adc_t, c)
        return EnvironmentReading(compensate_temperature_c(t_fine),
                                  compensate_pressure_pa(adc_p, t_fine, c),
                                  compensate_humidity_pct(adc_h, t_fine, c))


# The floating-point compensation of the datasheet (section 8.1), used by the fake to find the
# raw values that encode a physical value: an independent path from the driver's integer code.

def _t_fine_float(adc_t: float, c: Trimming) -> float:
    var1 = (adc_t / 16384.0 - c.t1 / 1024.0) * c.t2
    var2 = (adc_t / 131072.0 - c.t1 / 8192.0) ** 2 * c.t3
    return var1 + var2


def _pressure_float(adc_p: float, t_fine: float, c: Trimming) -> float:
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * c.p6 / 32768.0
    var2 = var2 + var1 * c.p5 * 2.0
    var2 = var2 / 4.0 + c.p4 * 65536.0
    var1 = (c.p3 * var1 * var1 / 524288.0 + c.p2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * c.p1
    p = 1048576.0 - adc_p
    p = (p - var2 / 4096.0) * 6250.0 / var1
    var1 = c.p9 * p * p / 2147483648.0
    var2 = p * c.p8 / 32768.0
    return p + (var1 + var2 + c.p7) / 16.0


def _humidity_float(adc_h: float, t_fine: float, c: Trimming) -> float:
    h = t_fine - 76800.0
    h = (adc_h - (c.h4 * 64.0 + c.h5 / 16384.0 * h)) * (
        c.h2 / 65536.0 * (1.0 + c.h6 / 67108864.0 * h * (1.0 + c.h3 / 67108864.0 * h)))
    h = h * (1.0 - c.h1 * h / 524288.0)
    return min(max(h, 0.0), 100.0)


def _solve(f: Callable[[int], float], target: float, lo: int, hi: int,
           increasing: bool) -> int:
    """The raw value in [lo, hi] whose f() is nearest `target` (f monotonic)."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (f(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return lo if abs(f(lo) - target) <= abs(f(hi) - target) else hi


# Trimming of a real part for the temperature and pressure (the datasheet's worked example)
# and typical humidity values.
EXAMPLE_TRIMMING = Trimming(t1=27504, t2=26435, t3=-1000, p1=36477, p2=-10685, p3=3024,
                            p4=2855, p5=140, p6=-7, p7=15500, p8=-14600, p9=6000,
                            h1=75, h2=362, h3=0, h4=313, h5=50, h6=30)


class FakeBME280(RegisterMap):
    """A BME280 with its trimming: set temperature, pressure and humidity; the data registers
    hold the raw values the chip would, once the driver has started measurements."""

    def __init__(self, trimming: Trimming = EXAMPLE_TRIMMING):
        super().__init__()
        self.trimming = trimming
        self.temperature_c, self.pressure_pa, self.humidity_pct = 20.0, 101325.0, 50.0
        self._power_on()

    def _power_on(self) -> None:
        self.regs[:] = bytes(256)
        self.regs[REG_ID] = CHIP_ID
        a, b = self.trimming.pack()
        self.regs[REG_CALIB_A:REG_CALIB_A + 26] = a
        self.regs[REG_CALIB_B:REG_CALIB_B + 7] = b
        self._convert()

    def set(self, *, temperature_c: float | None = None, pressure_pa: float | None = None,
            humidity_pct: float | None = None) -> None:
        if temperature_c is not None:
            self.temperature_c = temperature_c
        if pressure_pa is not None:
            self.pressure_pa = pressure_pa
        if humidity_pct is not None:
            self.humidity_pct = humidity_pct
        self._convert()

    def write(self, register: int, data: bytes) -> None:
        for i, value in enumerate(data):
            reg = register + i
            if reg == REG_RESET and value == RESET_WORD:
                self._power_on()
                return
            if reg in (REG_CTRL_HUM, REG_CTRL_MEAS, REG_CONFIG):
                self.regs[reg] = value
        self._convert()

    def _convert(self) -> None:
        d = REG_DATA
        if self.regs[REG_CTRL_MEAS] & 0x03 == 0:  # sleep: reset values, nothing measured
            self.regs[d:d + 8] = bytes([0x80, 0, 0, 0x80, 0, 0, 0x80, 0])
            return
        c = self.trimming
        adc_t = _solve(lambda r: _t_fine_float(r, c) / 5120.0, self.temperature_c,
                       0, 0xFFFFF, increasing=True)
        t_fine = _t_fine_float(adc_t, c)
        adc_p = _solve(lambda r: _pressure_float(r, t_fine, c), self.pressure_pa,
                       0, 0xFFFFF, increasing=False)
        adc_h = _solve(lambda r: _humidity_float(r, t_fine, c), self.humidity_pct,
                       0, 0xFFFF, increasing=True)
        self.regs[d:d + 8] = bytes([adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0xF) << 4,
                                    adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0xF) << 4,
                                    adc_h >> 8, adc_h & 0xFF])

