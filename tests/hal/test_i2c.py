"""I2C buses: the fake bus built from register maps, and smbus2's errors on this machine."""

from __future__ import annotations

import errno

import pytest

from hal.ports.i2c import I2CError, open_i2c
from hal.ports.i2c.fake import FakeI2CBus, RegisterMap, WordRegisterMap


def test_absent_address_does_not_acknowledge_and_the_error_names_bus_and_address() -> None:
    bus = FakeI2CBus({0x40: RegisterMap()}, bus=1)
    with pytest.raises(I2CError, match=r"i2c bus 1 address 0x41: .*no ACK") as caught:
        bus.read_byte_data(0x41, 0x00)
    assert isinstance(caught.value, OSError)
    assert caught.value.errno == errno.EREMOTEIO
    assert (caught.value.bus, caught.value.address) == (1, 0x41)


def test_byte_register_map_auto_increments_like_most_parts() -> None:
    bus = FakeI2CBus({0x1E: RegisterMap()})
    bus.write_i2c_block_data(0x1E, 0x10, [1, 2, 3])
    assert bus.read_i2c_block_data(0x1E, 0x10, 3) == [1, 2, 3]
    assert bus.read_byte_data(0x1E, 0x11) == 2
    bus.write_byte_data(0x1E, 0x11, 0x7F)
    assert bus.read_i2c_block_data(0x1E, 0x10, 3) == [1, 0x7F, 3]


def test_word_register_map_sends_msb_first_and_refuses_unknown_registers() -> None:
    part = WordRegisterMap({0x00: 0x399F, 0x01: 0x1234}, readonly={0x01})
    bus = FakeI2CBus({0x40: part}, bus=3)
    assert bus.read_i2c_block_data(0x40, 0x00, 2) == [0x39, 0x9F]
    bus.write_i2c_block_data(0x40, 0x00, [0xAB, 0xCD])
    assert part.words[0x00] == 0xABCD
    bus.write_i2c_block_data(0x40, 0x01, [0, 0])  # read-only: acknowledged, ignored
    assert part.words[0x01] == 0x1234
    with pytest.raises(I2CError, match=r"i2c bus 3 address 0x40: .*no register 0x07"):
        bus.read_i2c_block_data(0x40, 0x07, 2)


def test_unplugged_part_stops_answering() -> None:
    bus = open_i2c("fake", bus=1)
    bus.attach(0x48, RegisterMap())
    assert bus.read_byte_data(0x48, 0) == 0
    bus.detach(0x48)
    with pytest.raises(I2CError, match="0x48"):
        bus.read_byte_data(0x48, 0)


def test_block_longer_than_smbus_allows_is_refused() -> None:
    bus = FakeI2CBus({0x50: RegisterMap()})
    with pytest.raises(ValueError, match=r"33 outside 1\.\.32"):
        bus.read_i2c_block_data(0x50, 0, 33)


def test_closed_bus_refuses_transfers() -> None:
    bus = FakeI2CBus({0x50: RegisterMap()}, bus=1)
    bus.close()
    with pytest.raises(I2CError, match="bus is closed"):
        bus.read_byte_data(0x50, 0)


def test_write_read_reaches_the_part_as_one_transfer() -> None:
    bus = FakeI2CBus({0x1E: RegisterMap()})
    bus.write_byte_data(0x1E, 0x05, 0x42)
    assert bus.write_read(0x1E, [0x05], 1) == [0x42]
    with pytest.raises(I2CError, match="one-byte register address"):
        bus.write_read(0x1E, [0x00, 0x05], 1)


def test_unknown_backend_is_an_error_naming_the_choices() -> None:
    with pytest.raises(ValueError, match=r"i2c backend 'bitbang' unknown"):
        open_i2c("bitbang", bus=1)


def test_smbus2_missing_bus_names_the_device_and_the_fix() -> None:
    # This machine has no /dev/i2c-77: the real smbus2 open fails as on an unconfigured Pi.
    with pytest.raises(I2CError, match=r"i2c bus 77: /dev/i2c-77 does not exist.*i2c_arm=on"):
        open_i2c("smbus2", bus=77)
