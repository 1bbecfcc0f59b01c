"""The relay built from its config section (`open_relay`) and `edgenode relay-safe`
(`relay_safe`): on the fake backend (its device file records what happened to each line) and
on the gpiod backend over the stand-in `gpiod` module (tests/hal/fake_gpiod.py), where a line
keeps the level a killed process left on it and the world can weld the aux contact shut."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import pytest

from edgenode.config.models import RelaySection
from edgenode.control import open_relay, relay_safe
from hal.ports.gpio import GpioError
from hal.relay import KeySwitch
from tests.control.conftest import AUX, DRIVE, HEARTBEAT, KEY_OPERATE, KEY_TEST
from tests.hal.fake_gpiod import Direction, FakeGpiod, LineSettings, Value

PI4 = "pinctrl-bcm2711"  # not the default label: the section's chip_label must reach gpiod


def section(**fields: Any) -> RelaySection:
    return RelaySection.model_validate({
        "backend": "fake", "drive_line": DRIVE, "heartbeat_line": HEARTBEAT, "aux_line": AUX,
        "key_test_line": KEY_TEST, "key_operate_line": KEY_OPERATE, "max_on_s": 60, **fields})


def recorded(device: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in device.read_text().splitlines()]


def levels(device: Path, name: str) -> list[bool]:
    return [r["level"] for r in recorded(device) if r["name"] == name]


@pytest.mark.parametrize(("position", "key"), [("off", KeySwitch.OFF), ("test", KeySwitch.TEST),
                                               ("operate", KeySwitch.OPERATE)])
def test_fake_board_key_switch_stands_where_the_config_puts_it(position: str,
                                                               key: KeySwitch) -> None:
    relay = open_relay(section(fake_key_switch=position))
    try:
        assert relay.key_switch() is key
    finally:
        relay.close()


def test_each_relay_line_is_reserved_on_its_configured_number_and_starts_low(
        tmp_path: Path) -> None:
    device = tmp_path / "relay.jsonl"
    relay = open_relay(section(device=str(device), fake_key_switch="operate"))
    reserved = {(r["line"], r["name"], r["direction"], r["level"]) for r in recorded(device)}
    assert reserved == {(DRIVE, "relay-drive", "out", False),
                        (HEARTBEAT, "relay-heartbeat", "out", False),
                        (AUX, "relay-aux", "in", False), (KEY_TEST, "key-test", "in", False),
                        (KEY_OPERATE, "key-operate", "in", True)}
    relay.drive(True)
    relay.toggle_heartbeat()
    relay.close()
    assert levels(device, "relay-drive") == [False, True, False]
    assert levels(device, "relay-heartbeat") == [False, True, False]


@pytest.fixture
def gpiod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[FakeGpiod, str]:
    """A Pi 4's header chip behind the stand-in gpiod module, as `import gpiod` finds it."""
    fake = FakeGpiod()
    path = fake.add_chip(tmp_path, "gpiochip0", PI4, num_lines=54)
    monkeypatch.setitem(sys.modules, "gpiod", fake)
    return fake, path


def gpiod_section(path: str, **fields: Any) -> RelaySection:
    return section(**{"backend": "gpiod", "chip_label": PI4, "device": path, **fields})


def test_gpiod_relay_opens_the_chip_with_the_configured_label(
        gpiod: tuple[FakeGpiod, str]) -> None:
    fake, path = gpiod
    fake.drive(path, KEY_OPERATE, True)
    relay = open_relay(gpiod_section(path))
    try:
        assert relay.key_switch() is KeySwitch.OPERATE
        assert fake.consumer(path, DRIVE) == "edgenode"
        relay.drive(True)
        assert fake.level(path, DRIVE) and not fake.level(path, HEARTBEAT)
    finally:
        relay.close()
    assert not fake.level(path, DRIVE)


def test_gpiod_chip_with_another_label_is_refused_naming_relay_chip_label(
        gpiod: tuple[FakeGpiod, str]) -> None:
    _, path = gpiod
    with pytest.raises(GpioError, match=rf"gpiochip0 is labelled '{PI4}', not 'pinctrl-rp1' "
                                        r"\(relay.chip_label\)"):
        open_relay(gpiod_section(path, chip_label="pinctrl-rp1"))


def kill_leaving_drive_high(fake: FakeGpiod, path: str) -> None:
    """A daemon killed with the jammer on: the kernel keeps the line's level."""
    chip = fake.Chip(path)
    request = chip.request_lines({DRIVE: LineSettings(direction=Direction.OUTPUT,
                                                      output_value=Value.ACTIVE)}, "edgenode")
    request.release()
    assert fake.level(path, DRIVE)


def test_relay_safe_drops_a_drive_left_high_and_reports_the_key_switch(
        gpiod: tuple[FakeGpiod, str], caplog: pytest.LogCaptureFixture) -> None:
    fake, path = gpiod
    kill_leaving_drive_high(fake, path)
    fake.drive(path, KEY_TEST, True)
    with caplog.at_level(logging.INFO, logger="edgenode.control.relay"):
        assert relay_safe(gpiod_section(path)) is True
    assert not fake.level(path, DRIVE)
    assert fake.history(path, DRIVE)[-2:] == [True, False]
    assert fake.consumer(path, DRIVE) is None  # released
    assert [r.getMessage() for r in caplog.records if r.name == "edgenode.control.relay"] == [
        "relay-safe: drive OFF, aux contact open, key switch test"]


def test_relay_safe_never_raises_the_drive_on_its_way_to_off(tmp_path: Path) -> None:
    device = tmp_path / "relay.jsonl"
    assert relay_safe(section(device=str(device))) is True
    assert levels(device, "relay-drive") == [False]


def test_relay_safe_with_the_aux_contact_welded_shut_fails_saying_stuck_on(
        gpiod: tuple[FakeGpiod, str], caplog: pytest.LogCaptureFixture) -> None:
    fake, path = gpiod
    fake.drive(path, AUX, True)  # the contact stays closed whatever the coil does
    with caplog.at_level(logging.INFO, logger="edgenode.control.relay"):
        assert relay_safe(gpiod_section(path)) is False
    assert not fake.level(path, DRIVE)
    errors = [r for r in caplog.records if r.name == "edgenode.control.relay"]
    assert [(r.levelno, r.getMessage()) for r in errors] == [
        (logging.ERROR, "relay-safe: drive is OFF but the aux contact is still closed: "
                        "relay stuck on?")]
