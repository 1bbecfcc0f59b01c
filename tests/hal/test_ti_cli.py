"""CLI configuration upload through a real pty against the simulated demo CLI."""

from __future__ import annotations

import contextlib
import os
import threading
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from hal.ports.serial import SerialPort
from hal.radar.ti_cli import CliError, TiCli, config_lines, upload_config
from hal.sim.radar_cli import serve_ti_cli
from tests.conftest import ROOT

DRONE_CFG = ROOT / "hardware" / "radar" / "iwr6843-drone.cfg"


@contextlib.contextmanager
def simulated_cli(reject: frozenset[str] = frozenset(), *, answer: bool = True
                  ) -> Iterator[SerialPort]:
    master, slave = os.openpty()
    tty.setraw(slave)
    stop = threading.Event()
    thread = threading.Thread(target=serve_ti_cli, args=(master, stop, reject), daemon=True)
    if answer:
        thread.start()
    port = SerialPort(os.ttyname(slave), 115200, name="radar-cli", timeout_s=0.05)
    try:
        yield port
    finally:
        port.close()
        stop.set()
        if answer:
            thread.join(2)
        os.close(master)
        os.close(slave)


def test_drone_config_uploads_line_by_line() -> None:
    commands = config_lines(DRONE_CFG.read_text())
    with simulated_cli() as port:
        replies = upload_config(port, DRONE_CFG)
    assert [(r.line_number, r.line) for r in replies] == commands
    assert commands[0][1] == "sensorStop" and commands[-1][1] == "sensorStart"
    assert all(r.reply == "Done" for r in replies)
    assert port.bytes_out == sum(len(line) + 1 for _, line in commands) + 1  # + sync newline


def test_config_given_as_lines_uploads_and_errors_name_the_source() -> None:
    lines = DRONE_CFG.read_text().splitlines()
    with simulated_cli() as port:
        assert len(upload_config(port, lines)) == len(config_lines("\n".join(lines)))
    with simulated_cli(reject=frozenset({"sensorStart"})) as port, \
            pytest.raises(CliError, match=f"radar-cli: north.cfg line {len(lines)} 'sensorStart'"):
        upload_config(port, lines, source="north.cfg")


def test_comments_and_blank_lines_are_not_sent() -> None:
    assert config_lines("% header\n\nsensorStop\n   \n  % indented\nflushCfg  \n") == [
        (3, "sensorStop"), (6, "flushCfg")]


def test_rejected_line_raises_naming_line_number_and_text(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.cfg"
    cfg.write_text("% test\nsensorStop\nflushCfg\ncfarCfg -1 0 2 8 4 3 0 99 1\nsensorStart\n")
    with simulated_cli(reject=frozenset({"cfarCfg"})) as port, \
            pytest.raises(CliError) as caught:
        upload_config(port, cfg)
    error = caught.value
    assert (error.line_number, error.line) == (4, "cfarCfg -1 0 2 8 4 3 0 99 1")
    assert "line 4 'cfarCfg -1 0 2 8 4 3 0 99 1'" in str(error)
    assert "Error -1" in str(error) and "bad.cfg" in str(error)


def test_unrecognized_command_is_an_error() -> None:
    with simulated_cli() as port, pytest.raises(CliError, match="not recognized"):
        TiCli(port).send("sarStats 1", line_number=7)


def test_silent_radar_is_an_error_after_the_line_timeout() -> None:
    with simulated_cli(answer=False) as port, pytest.raises(CliError, match="no 'mmwDemo:/>'"):
        TiCli(port, line_timeout_s=0.3).send("channelCfg 15 7 0", line_number=5)
