"""The jammer relay board through the fake GPIO backend (hardware/relay-board.md)."""

from __future__ import annotations

import json
import time

import pytest

from hal.ports.gpio import GpioError, open_gpio
from hal.ports.gpio.fake import FakeGpio
from hal.relay import JammerRelay, KeySwitch

DRIVE, HEARTBEAT, AUX, KEY_TEST, KEY_OPERATE = 17, 27, 22, 5, 6
LINES = dict(drive_line=DRIVE, heartbeat_line=HEARTBEAT, aux_line=AUX,
             key_test_line=KEY_TEST, key_operate_line=KEY_OPERATE)


@pytest.fixture
def gpio() -> FakeGpio:
    return FakeGpio()


def test_relay_outputs_start_low_with_no_glitch(gpio: FakeGpio) -> None:
    with JammerRelay(gpio, **LINES) as relay:
        assert [level for _, level in gpio.history(DRIVE)] == [False]
        assert [level for _, level in gpio.history(HEARTBEAT)] == [False]
        assert relay.read().drive is False
        assert gpio.lines[DRIVE].direction == "out"
        assert gpio.lines[AUX].direction == "in"


@pytest.mark.parametrize(("test", "operate", "expected"), [
    (False, False, KeySwitch.OFF),
    (True, False, KeySwitch.TEST),
    (False, True, KeySwitch.OPERATE),
    (True, True, KeySwitch.INVALID),
])
def test_key_switch_positions_decode_from_two_inputs(
        gpio: FakeGpio, test: bool, operate: bool, expected: KeySwitch) -> None:
    with JammerRelay(gpio, **LINES) as relay:
        gpio.drive_input(KEY_TEST, test)
        gpio.drive_input(KEY_OPERATE, operate)
        assert relay.key_switch() is expected
        assert relay.read().key is expected


def test_key_switch_reads_off_when_nothing_is_wired() -> None:
    # Inputs are pulled down: a cut key-switch cable reads OFF, never OPERATE.
    with JammerRelay(FakeGpio(), **LINES) as relay:
        assert relay.key_switch() is KeySwitch.OFF


def test_key_switch_position_set_before_start_is_seen(gpio: FakeGpio) -> None:
    gpio.drive_input(KEY_OPERATE, True)
    with JammerRelay(gpio, **LINES) as relay:
        assert relay.key_switch() is KeySwitch.OPERATE


def test_aux_contact_follows_the_board_and_is_compared_with_drive(gpio: FakeGpio) -> None:
    with JammerRelay(gpio, **LINES) as relay:
        relay.drive(True)
        assert relay.read().aux_agrees is False  # relay commanded, contact not closed: fault
        gpio.drive_input(AUX, True)
        state = relay.read()
        assert state.aux_closed and state.aux_agrees
        relay.drive(False)
        assert relay.read().aux_agrees is False  # welded contact: still closed after off
        gpio.drive_input(AUX, False)
        assert relay.read().aux_agrees


def test_close_drives_off_and_is_idempotent(gpio: FakeGpio) -> None:
    relay = JammerRelay(gpio, **LINES)
    relay.drive(True)
    relay.toggle_heartbeat()
    relay.close()
    assert gpio.level(DRIVE) is False
    assert gpio.level(HEARTBEAT) is False
    assert relay.drive_level() is False
    relay.close()  # a second close neither raises nor changes anything
    assert [level for _, level in gpio.history(DRIVE)] == [False, True, False]
    # Every line is released: a new relay can take them.
    JammerRelay(gpio, **LINES).close()


def test_drive_on_after_close_raises_and_off_is_harmless(gpio: FakeGpio) -> None:
    relay = JammerRelay(gpio, **LINES)
    relay.close()
    with pytest.raises(RuntimeError, match="after close"):
        relay.drive(True)
    relay.drive(False)
    relay.toggle_heartbeat()  # a late heartbeat from a dying loop is ignored
    assert gpio.level(DRIVE) is False
    assert gpio.level(HEARTBEAT) is False


def test_second_relay_on_the_same_lines_is_refused_naming_the_line(gpio: FakeGpio) -> None:
    with JammerRelay(gpio, **LINES) as first:
        with pytest.raises(GpioError, match=r"gpio line 17 \(relay-drive\) is already held"):
            JammerRelay(gpio, **LINES)
        first.drive(True)  # the first owner is untouched by the refusal
        assert gpio.level(DRIVE) is True


def test_refused_relay_gives_back_the_lines_it_had_taken(gpio: FakeGpio) -> None:
    with JammerRelay(gpio, **LINES):
        other = dict(LINES, drive_line=18, heartbeat_line=19)
        with pytest.raises(GpioError, match=r"gpio line 22 \(relay-aux\)"):
            JammerRelay(gpio, **other)
        assert not gpio.lines[18].held and not gpio.lines[19].held


def test_heartbeat_toggles_each_call(gpio: FakeGpio) -> None:
    with JammerRelay(gpio, **LINES) as relay:
        for _ in range(4):
            relay.toggle_heartbeat()
        levels = [level for _, level in gpio.history(HEARTBEAT)]
        assert levels == [False, True, False, True, False]


def test_history_answers_how_long_the_relay_was_on(gpio: FakeGpio) -> None:
    with JammerRelay(gpio, **LINES) as relay:
        relay.drive(True)
        time.sleep(0.02)
        relay.drive(False)
        _, (t_on, on), (t_off, off) = gpio.history(DRIVE)
        assert (on, off) == (True, False)
        assert gpio.high_time(DRIVE) == pytest.approx(t_off - t_on)
        assert gpio.high_time(DRIVE) >= 0.02
        # Up to a moment while it was on, only that part counts.
        assert gpio.high_time(DRIVE, until=t_on + 0.01) == pytest.approx(0.01)
        assert gpio.high_time(HEARTBEAT) == 0.0


def test_fake_record_file_shows_another_process_what_the_lines_did(tmp_path) -> None:
    record = tmp_path / "gpio.jsonl"
    gpio = open_gpio("fake", device=str(record))
    with JammerRelay(gpio, **LINES) as relay:
        relay.drive(True)
    gpio.close()
    drive = [json.loads(line) for line in record.read_text().splitlines()
             if json.loads(line)["line"] == DRIVE]
    assert [(r["name"], r["level"]) for r in drive] == [
        ("relay-drive", False), ("relay-drive", True), ("relay-drive", False)]
