"""The gpiod backend's own logic against a stand-in `gpiod` module (tests/hal/fake_gpiod.py),
so it runs on every machine; tests/hal/test_gpio.py runs it on the kernel's gpio-sim where
there is one."""

from __future__ import annotations

import errno
import logging
import sys
from pathlib import Path

import pytest

from hal.ports.gpio import GpioError, open_gpio
from hal.ports.gpio.gpiod_backend import GpiodGpio
from hal.relay import JammerRelay, KeySwitch
from tests.hal.fake_gpiod import FakeGpiod

LABEL = "pinctrl-rp1"


@pytest.fixture
def fake(tmp_path: Path) -> FakeGpiod:
    fake = FakeGpiod()
    fake.add_chip(tmp_path, "gpiochip0", "pinctrl-rp1-aon", num_lines=8)
    fake.add_chip(tmp_path, "gpiochip4", LABEL, num_lines=54)
    return fake


def _open(fake: FakeGpiod, tmp_path: Path, **options: object) -> GpiodGpio:
    return GpiodGpio(chip_label=LABEL, dev_dir=str(tmp_path), gpiod_module=fake, **options)


def test_the_chip_is_found_by_its_label_not_its_number(fake: FakeGpiod, tmp_path: Path) -> None:
    gpio = _open(fake, tmp_path)
    assert gpio.path == str(tmp_path / "gpiochip4")
    gpio.close()


def test_no_chip_with_the_label_names_every_chip_seen_and_the_fix(fake: FakeGpiod,
                                                                 tmp_path: Path) -> None:
    fake.add_chip(tmp_path, "gpiochip9", "locked", readable=False)
    with pytest.raises(GpioError) as err:
        GpiodGpio(chip_label="pinctrl-bcm2711", dev_dir=str(tmp_path), gpiod_module=fake)
    message = str(err.value)
    assert "no chip labelled 'pinctrl-bcm2711'" in message
    assert f"{tmp_path}/gpiochip0 (pinctrl-rp1-aon)" in message
    assert f"{tmp_path}/gpiochip4 ({LABEL})" in message
    assert f"{tmp_path}/gpiochip9 (permission denied: add the user to group 'gpio')" in message


def test_an_explicit_device_must_carry_the_label(fake: FakeGpiod, tmp_path: Path) -> None:
    with pytest.raises(GpioError, match=r"gpiochip0 is labelled 'pinctrl-rp1-aon', not "
                                        r"'pinctrl-rp1' \(relay.chip_label\)"):
        _open(fake, tmp_path, device=str(tmp_path / "gpiochip0"))
    gpio = _open(fake, tmp_path, device=str(tmp_path / "gpiochip4"))
    assert gpio.path == str(tmp_path / "gpiochip4")
    gpio.close()


def test_an_output_starts_at_its_safe_level_without_a_glitch_and_falls_when_closed(
        fake: FakeGpiod, tmp_path: Path) -> None:
    gpio = _open(fake, tmp_path)
    chip = gpio.path
    out = gpio.output(17, initial=False, name="relay-drive")
    assert fake.history(chip, 17) == [False]
    assert fake.consumer(chip, 17) == "edgenode"
    out.set(True)
    assert fake.level(chip, 17) is True and out.get() is True
    out.set(False)
    assert out.get() is False
    out.set(True)
    out.close()
    # Handed back as a pulled-down input: the line falls, and it is no longer held.
    assert fake.history(chip, 17) == [False, True, False, True, False]
    assert fake.consumer(chip, 17) is None
    out.close()  # idempotent
    with pytest.raises(GpioError, match=r"gpio line 17 on pinctrl-rp1: set after close"):
        out.set(True)
    gpio.close()


def test_an_output_asked_high_starts_high(fake: FakeGpiod, tmp_path: Path) -> None:
    gpio = _open(fake, tmp_path)
    gpio.output(12, initial=True, name="lamp")
    assert fake.history(gpio.path, 12) == [True]
    gpio.close()


def test_a_line_is_released_even_when_it_cannot_be_made_an_input(
        fake: FakeGpiod, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    gpio = _open(fake, tmp_path)
    out = gpio.output(17, initial=False, name="relay-drive")
    fake.fail_next["reconfigure_lines"] = OSError(errno.EIO, "I/O error")
    with caplog.at_level(logging.WARNING):
        out.close()
    assert fake.consumer(gpio.path, 17) is None
    assert "gpio line 17: could not return to input before release" in caplog.text
    gpio.output(17, initial=False, name="relay-drive").close()  # free to be taken again
    gpio.close()


def test_a_failed_set_is_a_gpio_error_naming_the_line(fake: FakeGpiod, tmp_path: Path) -> None:
    gpio = _open(fake, tmp_path)
    out = gpio.output(17, initial=False, name="relay-drive")
    fake.fail_next["set_value"] = OSError(errno.ENODEV, "No such device")
    with pytest.raises(GpioError, match=r"gpio line 17 on pinctrl-rp1: set failed: .*No such"):
        out.set(True)
    gpio.close()


def test_inputs_read_their_bias_until_the_world_drives_them(fake: FakeGpiod,
                                                            tmp_path: Path) -> None:
    gpio = _open(fake, tmp_path)
    down = gpio.input(5, bias="pull_down", name="key-test")
    up = gpio.input(6, bias="pull_up", name="key-operate")
    assert (down.read(), up.read()) == (False, True)
    fake.drive(gpio.path, 5, True)
    fake.drive(gpio.path, 6, False)
    assert (down.read(), up.read()) == (True, False)
    fake.fail_next["get_value"] = OSError(errno.EIO, "I/O error")
    with pytest.raises(GpioError, match=r"gpio line 5 on pinctrl-rp1: read failed"):
        down.read()
    down.close()
    assert fake.consumer(gpio.path, 5) is None
    with pytest.raises(GpioError, match="read after close"):
        down.read()
    gpio.close()


def test_a_line_held_by_this_backend_is_refused_naming_its_holder(fake: FakeGpiod,
                                                                  tmp_path: Path) -> None:
    gpio = _open(fake, tmp_path)
    gpio.output(17, initial=False, name="relay-drive")
    with pytest.raises(GpioError, match=r"gpio line 17 \(aux\) is already held by 'relay-drive'"):
        gpio.input(17, bias="pull_down", name="aux")
    gpio.close()


def test_a_line_held_by_another_process_is_refused_naming_it(fake: FakeGpiod,
                                                             tmp_path: Path) -> None:
    first, second = _open(fake, tmp_path), _open(fake, tmp_path)
    first.output(17, initial=False, name="relay-drive")
    with pytest.raises(GpioError, match=r"gpio line 17 \(relay-drive\) on .*gpiochip4 "
                                        r"\(pinctrl-rp1\) is already held by 'edgenode'; is "
                                        r"another edgenode running\?"):
        second.output(17, initial=False, name="relay-drive")
    first.close()
    second.output(17, initial=False, name="relay-drive")  # free again once released
    second.close()


def test_a_line_past_the_chip_names_the_chip_size(fake: FakeGpiod, tmp_path: Path) -> None:
    gpio = _open(fake, tmp_path)
    with pytest.raises(GpioError, match=r"gpio line 60 \(relay-drive\).*no such line "
                                        r"\(chip has 54 lines\)"):
        gpio.output(60, initial=False, name="relay-drive")
    gpio.close()


def test_close_releases_every_line_once_and_refuses_new_ones(fake: FakeGpiod,
                                                             tmp_path: Path) -> None:
    gpio = _open(fake, tmp_path)
    gpio.output(17, initial=False, name="relay-drive").set(True)
    gpio.input(22, bias="pull_down", name="aux")
    gpio.close()
    gpio.close()
    assert fake.consumer(gpio.path, 17) is None and fake.consumer(gpio.path, 22) is None
    assert fake.level(gpio.path, 17) is False
    with pytest.raises(GpioError, match=r"gpio chip .*gpiochip4: closed"):
        gpio.output(18, initial=False, name="x")


def test_jammer_relay_on_gpiod_lines_drops_the_drive_when_closed(fake: FakeGpiod,
                                                                 tmp_path: Path) -> None:
    gpio = _open(fake, tmp_path)
    relay = JammerRelay(gpio, drive_line=17, heartbeat_line=27, aux_line=22, key_test_line=5,
                        key_operate_line=6)
    fake.drive(gpio.path, 6, True)
    assert relay.key_switch() is KeySwitch.OPERATE
    relay.drive(True)
    relay.toggle_heartbeat()
    assert fake.level(gpio.path, 17) and fake.level(gpio.path, 27)
    relay.close()
    gpio.close()
    assert not fake.level(gpio.path, 17) and not fake.level(gpio.path, 27)


def test_open_gpio_imports_whatever_gpiod_is_installed(fake: FakeGpiod, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gpiod", fake)
    gpio = open_gpio("gpiod", chip_label=LABEL, dev_dir=str(tmp_path))
    assert gpio.path == str(tmp_path / "gpiochip4")
    gpio.close()


def test_gpiod_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gpiod", None)  # what `import gpiod` sees without it
    with pytest.raises(GpioError, match=r"gpio backend 'gpiod' is not installed here: .*"
                                        r"pip install 'gpiod>=2'"):
        open_gpio("gpiod", chip_label=LABEL)
