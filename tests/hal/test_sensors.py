"""I2C part drivers against fake chips that encode values the way the silicon does."""

from __future__ import annotations

import math
import random
import uuid
from typing import get_args

import pytest

from edgenode.config.models import I2CKind
from hal.ports.i2c import I2CError
from hal.ports.i2c.fake import FakeI2CBus, RegisterMap
from hal.sensors import _KINDS, IdentityError, SensorError, open_sensor
from hal.sensors.bme280 import (
    BME280,
    EXAMPLE_TRIMMING,
    FakeBME280,
    Trimming,
    _humidity_float,
    _t_fine_float,
    compensate_humidity_pct,
    compensate_pressure_pa,
    compensate_t_fine,
    compensate_temperature_c,
)
from hal.sensors.hat_eeprom import FakeHatEeprom, HatEeprom, build_hat_eeprom, crc16
from hal.sensors.ina219 import INA219, FakeINA219
from hal.sensors.ina226 import INA226, FakeINA226
from hal.sensors.lis3mdl import LIS3MDL, FakeLIS3MDL
from hal.sensors.qmc5883l import QMC5883L, FakeQMC5883L
from hal.sensors.tmp102 import TMP102, FakeTMP102


def on_bus(address: int, part: RegisterMap) -> FakeI2CBus:
    return FakeI2CBus({address: part}, bus=1)


# --- registry ---------------------------------------------------------------------------------

def test_every_configurable_kind_has_a_driver() -> None:
    assert set(_KINDS) == set(get_args(I2CKind))


def test_open_sensor_drops_unused_config_fields_and_refuses_unknown_options() -> None:
    bus = on_bus(0x48, FakeTMP102())
    assert open_sensor("tmp102", bus, 0x48, shunt_ohm=None).read().temperature_c == 25.0
    with pytest.raises(ValueError, match=r"tmp102 at i2c bus 1 address 0x48: bad options"):
        open_sensor("tmp102", bus, 0x48, shunt_ohm=0.1)
    with pytest.raises(ValueError, match="kind 'sht31' unknown"):
        open_sensor("sht31", bus, 0x44)


def test_absent_part_is_an_i2c_error_naming_the_address() -> None:
    with pytest.raises(I2CError, match=r"i2c bus 1 address 0x40: .*no ACK"):
        open_sensor("ina219", FakeI2CBus({}, bus=1), 0x40, shunt_ohm=0.1)


# --- INA219 -----------------------------------------------------------------------------------

def test_ina219_reads_back_the_bus_voltage_and_current_that_were_set() -> None:
    chip = FakeINA219(shunt_ohm=0.1)
    meter = open_sensor("ina219", on_bus(0x40, chip), 0x40, shunt_ohm=0.1)
    chip.set(bus_voltage_v=12.0, current_a=1.5)
    r = meter.read()
    assert r.bus_voltage_v == pytest.approx(12.0, abs=0.004)
    assert r.shunt_voltage_v == pytest.approx(0.150, abs=10e-6)
    assert r.current_a == pytest.approx(1.5, abs=2 * meter.current_lsb_a)
    assert r.power_w == pytest.approx(18.0, abs=20 * meter.current_lsb_a * 2)
    assert not r.overflow


def test_ina219_reverse_current_is_negative() -> None:
    chip = FakeINA219(shunt_ohm=0.05)
    meter = INA219(on_bus(0x41, chip), 0x41, shunt_ohm=0.05, max_current_a=5.0)
    chip.set(bus_voltage_v=24.0, current_a=-2.0)
    assert meter.read().current_a == pytest.approx(-2.0, abs=2 * meter.current_lsb_a)


def test_ina219_flags_a_current_beyond_its_shunt_range() -> None:
    chip = FakeINA219(shunt_ohm=0.1)
    meter = INA219(on_bus(0x40, chip), 0x40, shunt_ohm=0.1)
    chip.set(bus_voltage_v=12.0, current_a=4.0)  # 400 mV across the shunt, range is 320 mV
    assert meter.read().overflow


def test_ina219_rewrites_its_calibration_after_a_brownout() -> None:
    chip = FakeINA219(shunt_ohm=0.1)
    meter = INA219(on_bus(0x40, chip), 0x40, shunt_ohm=0.1)
    chip.set(bus_voltage_v=12.0, current_a=1.0)
    chip.write_word(0x00, 0x8000)  # the chip resets itself: calibration back to 0
    assert meter.read().current_a == pytest.approx(1.0, abs=2 * meter.current_lsb_a)


def test_ina219_identity_mismatch_names_the_address() -> None:
    with pytest.raises(IdentityError, match=r"ina219 at i2c bus 1 address 0x40: .*0x399f"):
        INA219(on_bus(0x40, FakeTMP102()), 0x40, shunt_ohm=0.1)


# --- INA226 -----------------------------------------------------------------------------------

def test_ina226_reads_back_the_bus_voltage_and_current_that_were_set() -> None:
    chip = FakeINA226(shunt_ohm=0.01)
    meter = open_sensor("ina226", on_bus(0x44, chip), 0x44, shunt_ohm=0.01, max_current_a=8.0)
    chip.set(bus_voltage_v=28.5, current_a=6.25)
    r = meter.read()
    assert r.bus_voltage_v == pytest.approx(28.5, abs=1.25e-3)
    assert r.shunt_voltage_v == pytest.approx(0.0625, abs=2.5e-6)
    assert r.current_a == pytest.approx(6.25, abs=2 * meter.current_lsb_a)
    assert r.power_w == pytest.approx(28.5 * 6.25, abs=25 * meter.current_lsb_a * 2)


def test_ina226_identity_mismatch_names_the_address() -> None:
    part = FakeINA226()
    part.words[0xFE] = 0x0000  # another vendor's part at the address
    with pytest.raises(IdentityError, match=r"ina226 at i2c bus 1 address 0x45: .*0x5449"):
        INA226(on_bus(0x45, part), 0x45, shunt_ohm=0.1)


# --- compasses --------------------------------------------------------------------------------

@pytest.mark.parametrize("heading", [0.0, 45.0, 123.4, 270.0, 359.5])
def test_qmc5883l_heading_is_what_the_field_says(heading: float) -> None:
    chip = FakeQMC5883L()
    compass = open_sensor("qmc5883l", on_bus(0x0D, chip), 0x0D)
    chip.set_heading(heading)
    r = compass.read()
    assert (r.heading_deg - heading + 180) % 360 - 180 == pytest.approx(0, abs=0.1)
    assert r.field_t[2] == pytest.approx(-45e-6, abs=1e-8)


def test_qmc5883l_field_in_tesla_and_overflow_in_the_2_gauss_range() -> None:
    chip = FakeQMC5883L()
    compass = QMC5883L(on_bus(0x0D, chip), 0x0D)
    chip.set(field_t=(30e-6, -12e-6, 5e-6))
    assert compass.read().field_t == pytest.approx((30e-6, -12e-6, 5e-6), abs=1e-8)
    chip.set(field_t=(300e-6, 0.0, 0.0))  # 3 gauss: beyond +-2 G
    assert compass.read().overflow
    wide = QMC5883L(on_bus(0x0D, chip), 0x0D, range_gauss=8)
    r = wide.read()
    assert not r.overflow and r.field_t[0] == pytest.approx(300e-6, abs=1e-7)


def test_qmc5883l_identity_mismatch_names_the_address() -> None:
    with pytest.raises(IdentityError, match=r"qmc5883l at i2c bus 1 address 0x0d: .*0xff"):
        QMC5883L(on_bus(0x0D, FakeLIS3MDL()), 0x0D)


@pytest.mark.parametrize("full_scale", [4, 16])
def test_lis3mdl_heading_field_and_temperature(full_scale: int) -> None:
    chip = FakeLIS3MDL()
    compass = open_sensor("lis3mdl", on_bus(0x1C, chip), 0x1C, full_scale_gauss=full_scale)
    chip.set_heading(211.0, horizontal_t=18e-6, vertical_t=40e-6)
    chip.set(temperature_c=31.5)
    r = compass.read()
    assert r.heading_deg == pytest.approx(211.0, abs=0.2)
    one_lsb_t = 1e-4 / {4: 6842, 16: 1711}[full_scale]
    assert r.field_t[2] == pytest.approx(40e-6, abs=one_lsb_t)
    assert compass.temperature_c() == pytest.approx(31.5, abs=0.125)


def test_lis3mdl_identity_mismatch_names_the_address() -> None:
    with pytest.raises(IdentityError, match=r"lis3mdl at i2c bus 1 address 0x1e: .*0x3d"):
        LIS3MDL(on_bus(0x1E, FakeQMC5883L()), 0x1E)


def test_lis3mdl_powers_up_idle_until_the_driver_starts_it() -> None:
    chip = FakeLIS3MDL()
    bus = on_bus(0x1C, chip)
    assert bus.read_byte_data(0x1C, 0x27) == 0  # no data: power-down at reset
    LIS3MDL(bus, 0x1C)
    assert bus.read_byte_data(0x1C, 0x27) & 0x08


# --- temperature ------------------------------------------------------------------------------

@pytest.mark.parametrize("celsius", [25.0, -10.0625, 0.0, 100.5, -40.0])
def test_tmp102_reads_back_the_temperature(celsius: float) -> None:
    chip = FakeTMP102()
    sensor = open_sensor("tmp102", on_bus(0x48, chip), 0x48)
    chip.set(temperature_c=celsius)
    assert sensor.read().temperature_c == celsius


def test_tmp102_extended_mode_reaches_past_128_degrees() -> None:
    chip = FakeTMP102()
    bus = on_bus(0x49, chip)
    sensor = TMP102(bus, 0x49)
    bus.write_i2c_block_data(0x49, 0x01, [0x60, 0xB0])  # EM bit set
    chip.set(temperature_c=140.0)
    assert sensor.read().temperature_c == 140.0


def test_tmp102_identity_mismatch_names_the_address() -> None:
    with pytest.raises(IdentityError, match=r"tmp102 at i2c bus 1 address 0x48"):
        TMP102(on_bus(0x48, FakeINA219()), 0x48)


def test_bme280_integer_compensation_matches_the_datasheet_example() -> None:
    # Bosch's worked example (BMP280 datasheet 3.12, same T/P formulas as the BME280).
    t_fine = compensate_t_fine(519888, EXAMPLE_TRIMMING)
    assert t_fine == 128422
    assert compensate_temperature_c(t_fine) == 25.08
    assert compensate_pressure_pa(415148, t_fine, EXAMPLE_TRIMMING) == pytest.approx(
        100653.27, abs=0.05)


def test_bme280_integer_humidity_agrees_with_the_floating_point_formula() -> None:
    rng = random.Random(7)
    for _ in range(200):
        adc_t, adc_h = rng.randrange(400000, 600000), rng.randrange(20000, 40000)
        t_fine = compensate_t_fine(adc_t, EXAMPLE_TRIMMING)
        want = _humidity_float(adc_h, _t_fine_float(adc_t, EXAMPLE_TRIMMING), EXAMPLE_TRIMMING)
        assert compensate_humidity_pct(adc_h, t_fine, EXAMPLE_TRIMMING) == pytest.approx(
            want, abs=0.02)


def test_bme280_trimming_survives_the_chips_packed_layout() -> None:
    odd = Trimming(t1=28000, t2=-26000, t3=50, p1=37000, p2=-10000, p3=3000, p4=7000,
                   p5=-100, p6=-7, p7=9900, p8=-10230, p9=4285, h1=75, h2=350, h3=0,
                   h4=-300, h5=-2000, h6=-30)
    assert Trimming.unpack(*odd.pack()) == odd


@pytest.mark.parametrize(("t", "p", "h"), [(21.3, 98765.0, 43.2), (-15.0, 85000.0, 90.0),
                                           (45.0, 103000.0, 5.0)])
def test_bme280_reads_back_temperature_pressure_and_humidity(t: float, p: float,
                                                             h: float) -> None:
    chip = FakeBME280()
    sensor = open_sensor("bme280", on_bus(0x76, chip), 0x76)
    chip.set(temperature_c=t, pressure_pa=p, humidity_pct=h)
    r = sensor.read()
    assert r.temperature_c == pytest.approx(t, abs=0.011)
    assert r.pressure_pa == pytest.approx(p, abs=1.0)
    assert r.humidity_pct == pytest.approx(h, abs=0.05)


def test_bme280_that_nobody_started_has_no_measurement() -> None:
    chip = FakeBME280()
    bus = on_bus(0x77, chip)
    sensor = BME280(bus, 0x77)
    bus.write_byte_data(0x77, 0xE0, 0xB6)  # someone resets it: back to sleep mode
    with pytest.raises(SensorError, match=r"0x77: no measurement yet"):
        sensor.read()


def test_bme280_identity_mismatch_names_the_address_and_spots_a_bmp280() -> None:
    chip = FakeBME280()
    chip.regs[0xD0] = 0x58
    with pytest.raises(IdentityError, match=r"bme280 at i2c bus 1 address 0x76: .*BMP280"):
        BME280(on_bus(0x76, chip), 0x76)


# --- HAT EEPROM -------------------------------------------------------------------------------

HAT_UUID = uuid.UUID("5d1f1a6c-3b2e-4c8f-9a51-0e7d2c4b8a19")


def hat_image(**extra: object) -> bytes:
    return build_hat_eeprom(vendor="Edgenode Project", product="Relay HAT rev B",
                            product_id=0x0E01, product_version=0x0002, hat_uuid=HAT_UUID,
                            **extra)


def test_crc16_is_the_one_eepmake_uses() -> None:
    assert crc16(b"123456789") == 0xBB3D


def test_hat_eeprom_vendor_atom_is_read_through_two_byte_addresses() -> None:
    image = hat_image(extra_atoms=((4, bytes(range(200))),))
    info = open_sensor("hat-eeprom", on_bus(0x50, FakeHatEeprom(image)), 0x50).read()
    assert (info.vendor, info.product) == ("Edgenode Project", "Relay HAT rev B")
    assert (info.product_id, info.product_version, info.uuid) == (0x0E01, 2, HAT_UUID)
    assert [(a.type, a.count, a.crc_ok) for a in info.atoms] == [
        (1, 0, True), (2, 1, True), (4, 2, True)]
    assert info.atoms[2].data == bytes(range(200))  # read across several 32-byte blocks


def test_hat_eeprom_damaged_vendor_atom_is_reported_not_trusted() -> None:
    image = bytearray(hat_image())
    image[12 + 8 + 22] ^= 0x20  # flip a bit in the vendor string
    info = HatEeprom(on_bus(0x50, FakeHatEeprom(bytes(image))), 0x50).read()
    assert info.atoms[0].crc_ok is False
    assert info.vendor is None and info.uuid is None


def test_blank_eeprom_is_an_identity_error_naming_the_address() -> None:
    with pytest.raises(IdentityError, match=r"hat-eeprom at i2c bus 1 address 0x50: .*R-Pi"):
        HatEeprom(on_bus(0x50, FakeHatEeprom()), 0x50)


def test_hat_eeprom_needs_a_bus_that_can_send_two_byte_addresses() -> None:
    class SmbusOnly:
        bus = 0

        def read_i2c_block_data(self, address: int, register: int, length: int) -> list[int]:
            raise AssertionError("a one-byte register cannot address a 24C32")

    with pytest.raises(SensorError, match="write_read"):
        HatEeprom(SmbusOnly(), 0x50)  # type: ignore[arg-type]


def test_heading_convention_x_forward_y_left() -> None:
    # Facing east, magnetic north is on the left (+y): the heading must read 90.
    chip = FakeQMC5883L()
    compass = QMC5883L(on_bus(0x0D, chip), 0x0D)
    chip.set(field_t=(0.0, 20e-6, -40e-6))
    assert compass.read().heading_deg == pytest.approx(90.0, abs=math.degrees(1 / 240))
