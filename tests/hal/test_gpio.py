"""GPIO backends: the fake, and the board backends where this machine can exercise them.

The gpiod backend runs against the kernel's gpio-sim (configfs) when the machine has it and
the test runs as root; elsewhere those tests are skipped as "not run" with the reason, and
hardware/TESTING.md is the checklist for a real Pi. The backend's own logic runs everywhere
against a stand-in gpiod module: tests/hal/test_gpiod_backend.py.
"""

from __future__ import annotations

import importlib.util
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from hal.ports.gpio import GpioError, open_gpio
from hal.ports.gpio.fake import FakeGpio
from hal.relay import JammerRelay, KeySwitch

HAVE_GPIOD = importlib.util.find_spec("gpiod") is not None
HAVE_RPI_GPIO = importlib.util.find_spec("RPi") is not None
CONFIGFS_SIM = Path("/sys/kernel/config/gpio-sim")


# --- fake -------------------------------------------------------------------------------------

def test_unknown_backend_is_an_error_naming_the_choices() -> None:
    with pytest.raises(GpioError, match=r"gpio backend 'pigpio' unknown; choose one of"):
        open_gpio("pigpio")


def test_fake_output_starts_at_its_initial_level_and_records_changes() -> None:
    gpio = open_gpio("fake")
    out = gpio.output(4, initial=True, name="lamp")
    out.set(True)  # no change, no new record
    out.set(False)
    assert [level for _, level in gpio.history(4)] == [True, False]
    times = [t for t, _ in gpio.history(4)]
    assert times == sorted(times)


def test_fake_input_follows_its_bias_until_the_world_drives_it() -> None:
    gpio = FakeGpio()
    down = gpio.input(5, bias="pull_down", name="a")
    up = gpio.input(6, bias="pull_up", name="b")
    assert (down.read(), up.read()) == (False, True)
    gpio.drive_input(5, True)
    assert down.read() is True


def test_fake_released_output_falls_to_the_pull_down() -> None:
    gpio = FakeGpio()
    out = gpio.output(17, initial=False, name="relay-drive")
    out.set(True)
    out.close()
    assert gpio.level(17) is False


# --- gpiod ------------------------------------------------------------------------------------

@pytest.mark.skipif(not HAVE_GPIOD, reason="gpiod (libgpiod v2 bindings) is not installed")
def test_gpiod_chip_not_found_names_the_label_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(GpioError, match=r"no chip labelled 'pinctrl-rp1'.*pinctrl-bcm2711"):
        open_gpio("gpiod", chip_label="pinctrl-rp1", dev_dir=str(tmp_path))


def _gpio_sim_unavailable() -> str | None:
    if not HAVE_GPIOD:
        return "gpiod (libgpiod v2 bindings) is not installed"
    if not CONFIGFS_SIM.is_dir():
        if not Path("/sys/kernel/config").is_dir():
            return "no configfs (/sys/kernel/config absent): gpio-sim unavailable"
        return "gpio-sim module not loaded (modprobe gpio-sim)"
    if os.geteuid() != 0:
        return "gpio-sim needs root to create a chip"
    return None


class SimChip:
    """A gpio-sim chip made through configfs; lines are read and pulled through sysfs."""

    def __init__(self, label: str, num_lines: int = 32):
        self.label = label
        self.root = CONFIGFS_SIM / f"edgenode-{uuid.uuid4().hex[:8]}"
        bank = self.root / "gpio-bank0"
        bank.mkdir(parents=True)
        (bank / "num_lines").write_text(str(num_lines))
        (bank / "label").write_text(label)
        (self.root / "live").write_text("1")
        dev_name = (self.root / "dev_name").read_text().strip()
        chip_name = (bank / "chip_name").read_text().strip()
        self.path = f"/dev/{chip_name}"
        self.sysfs = Path("/sys/devices/platform") / dev_name / chip_name

    def value(self, line: int) -> bool:
        return (self.sysfs / f"sim_gpio{line}" / "value").read_text().strip() == "1"

    def pull(self, line: int, up: bool) -> None:
        (self.sysfs / f"sim_gpio{line}" / "pull").write_text("pull-up" if up else "pull-down")

    def remove(self) -> None:
        (self.root / "live").write_text("0")
        (self.root / "gpio-bank0").rmdir()
        self.root.rmdir()


@pytest.fixture
def sim_chip() -> Iterator[SimChip]:
    reason = _gpio_sim_unavailable()
    if reason:
        pytest.skip(f"gpiod on gpio-sim not run: {reason}")
    chip = SimChip("edgenode-sim")
    try:
        yield chip
    finally:
        chip.remove()


def test_gpiod_finds_the_chip_by_label(sim_chip: SimChip) -> None:
    gpio = open_gpio("gpiod", chip_label=sim_chip.label)
    try:
        assert gpio.path == sim_chip.path
    finally:
        gpio.close()


def test_gpiod_explicit_device_with_the_wrong_label_is_refused(sim_chip: SimChip) -> None:
    with pytest.raises(GpioError, match=r"labelled 'edgenode-sim', not 'pinctrl-rp1'"):
        open_gpio("gpiod", chip_label="pinctrl-rp1", device=sim_chip.path)


def test_gpiod_output_is_created_at_its_safe_level_and_driven(sim_chip: SimChip) -> None:
    gpio = open_gpio("gpiod", chip_label=sim_chip.label)
    try:
        out = gpio.output(17, initial=False, name="relay-drive")
        assert sim_chip.value(17) is False
        out.set(True)
        assert sim_chip.value(17) is True and out.get() is True
        out.close()
        # Released as a pulled-down input: the line falls.
        assert sim_chip.value(17) is False
    finally:
        gpio.close()


def test_gpiod_input_reads_what_the_world_pulls(sim_chip: SimChip) -> None:
    gpio = open_gpio("gpiod", chip_label=sim_chip.label)
    try:
        key = gpio.input(6, bias="pull_down", name="key-operate")
        sim_chip.pull(6, up=True)
        time.sleep(0.01)
        assert key.read() is True
        sim_chip.pull(6, up=False)
        time.sleep(0.01)
        assert key.read() is False
    finally:
        gpio.close()


def test_gpiod_second_request_is_refused_naming_line_and_holder(sim_chip: SimChip) -> None:
    first = open_gpio("gpiod", chip_label=sim_chip.label)
    second = open_gpio("gpiod", chip_label=sim_chip.label)
    try:
        first.output(17, initial=False, name="relay-drive")
        with pytest.raises(GpioError, match=r"gpio line 17 \(relay-drive\).*held by 'edgenode'"):
            second.output(17, initial=False, name="relay-drive")
    finally:
        first.close()
        second.close()


def test_jammer_relay_on_gpiod_lines(sim_chip: SimChip) -> None:
    gpio = open_gpio("gpiod", chip_label=sim_chip.label)
    relay = JammerRelay(gpio, drive_line=17, heartbeat_line=27, aux_line=22, key_test_line=5,
                        key_operate_line=6)
    try:
        sim_chip.pull(6, up=True)
        time.sleep(0.01)
        assert relay.key_switch() is KeySwitch.OPERATE
        relay.drive(True)
        relay.toggle_heartbeat()
        assert sim_chip.value(17) and sim_chip.value(27)
    finally:
        relay.close()
        gpio.close()
    assert not sim_chip.value(17) and not sim_chip.value(27)


# --- rpigpio ----------------------------------------------------------------------------------

@pytest.mark.skipif(HAVE_RPI_GPIO, reason="RPi.GPIO (or rpi-lgpio) is installed here")
def test_rpigpio_backend_missing_is_a_clear_error() -> None:
    with pytest.raises(GpioError, match=r"RPi.GPIO is not installed.*rpi-lgpio"):
        open_gpio("rpigpio", chip_label="pinctrl-bcm2711")


def _rpi_gpio_as_on_a_pi5() -> SimpleNamespace:
    """What RPi.GPIO 0.7 does on a Pi 5: imports, then fails at the first setup()."""

    def setup(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Cannot determine SOC peripheral base address")

    return SimpleNamespace(BCM=11, BOARD=10, OUT=0, IN=1, HIGH=1, LOW=0, PUD_OFF=20,
                           PUD_DOWN=21, PUD_UP=22, setwarnings=lambda flag: None,
                           getmode=lambda: None, setmode=lambda mode: None, setup=setup,
                           cleanup=lambda *a: None)


def test_rpigpio_on_a_pi5_says_to_use_rpi_lgpio_or_gpiod() -> None:
    gpio = open_gpio("rpigpio", gpio_module=_rpi_gpio_as_on_a_pi5())
    with pytest.raises(GpioError, match=r"line 17 \(relay-drive\).*Pi 5.*rpi-lgpio.*'gpiod'"):
        gpio.output(17, initial=False, name="relay-drive")
    # The failed line is not left reserved.
    with pytest.raises(GpioError, match="Pi 5"):
        gpio.output(17, initial=False, name="relay-drive")

