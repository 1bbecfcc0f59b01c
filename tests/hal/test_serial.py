"""SerialPort through real ptys and loop://: reads, writes, counters, absence, reconnect, lock."""

from __future__ import annotations

import contextlib
import os
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from hal.ports.serial import PortUnavailable, SerialPort


@contextlib.contextmanager
def pty() -> Iterator[tuple[int, str]]:
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        yield master, os.ttyname(slave)
    finally:
        with contextlib.suppress(OSError):
            os.close(master)
        os.close(slave)


def read_until(port: SerialPort, want: bytes, timeout_s: float = 3.0) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout_s
    while want not in got and time.monotonic() < deadline:
        with contextlib.suppress(PortUnavailable):
            got += port.read()
    return got


def test_bytes_written_to_the_device_are_read_and_counted() -> None:
    with pty() as (master, path), SerialPort(path, 921600, name="radar-data") as port:
        port.open()  # pyserial drops what arrived before the open
        os.write(master, b"hello radar")
        assert read_until(port, b"hello radar") == b"hello radar"
        port.write(b"sensorStart\n")
        assert os.read(master, 100) == b"sensorStart\n"
        assert (port.bytes_in, port.bytes_out) == (11, 12)


def test_read_returns_empty_after_its_timeout_when_nothing_arrives() -> None:
    with pty() as (_master, path), SerialPort(path, 115200, name="cli", timeout_s=0.05) as port:
        started = time.monotonic()
        assert port.read() == b""
        assert time.monotonic() - started < 1.0


def test_missing_device_raises_port_unavailable_naming_it() -> None:
    port = SerialPort("/dev/edgenode-no-such-radar", 921600, name="radar-data")
    with pytest.raises(PortUnavailable) as caught:
        port.read()
    message = str(caught.value)
    assert "radar-data" in message and "/dev/edgenode-no-such-radar" in message
    assert "no such device" in message


def test_port_reopens_when_a_new_device_appears_at_the_same_path(tmp_path: Path) -> None:
    link = tmp_path / "edgenode-radar-data"
    with pty() as (master1, path1):
        link.symlink_to(path1)
        port = SerialPort(str(link), 921600, name="radar-data", reopen_every_s=0.05)
        port.open()
        os.write(master1, b"first")
        assert read_until(port, b"first") == b"first"
        os.close(master1)  # unplugged
        with pytest.raises(PortUnavailable, match="lost"):
            for _ in range(50):
                port.read()
        assert not port.is_open
    with pty() as (master2, path2):
        tmp = tmp_path / "new-link"
        tmp.symlink_to(path2)
        os.replace(tmp, link)  # udev points the name at the new device
        got = b""
        deadline = time.monotonic() + 3.0
        while not port.is_open and time.monotonic() < deadline:
            with contextlib.suppress(PortUnavailable):
                got += port.read()
        os.write(master2, b"second")
        assert got + read_until(port, b"second") == b"second"
        assert port.reconnects == 1
        assert port.bytes_in == len(b"firstsecond")
        port.close()


def test_unplugged_port_does_not_spin_while_waiting_to_reopen() -> None:
    port = SerialPort("/dev/edgenode-no-such-radar", 921600, name="radar-data",
                      timeout_s=0.05, reopen_every_s=10.0)
    started, attempts = time.monotonic(), 0
    while time.monotonic() - started < 0.3:
        with contextlib.suppress(PortUnavailable):
            port.read()
        attempts += 1
    assert attempts < 20  # each failed read waits out its timeout instead of returning at once


def test_loop_url_echoes_what_is_written() -> None:
    with SerialPort("loop://", 115200, name="loop") as port:
        port.write(b"ping")
        assert read_until(port, b"ping") == b"ping"


def test_second_open_of_the_same_device_is_refused() -> None:
    with pty() as (_master, path), SerialPort(path, 921600, name="first") as first:
        first.open()
        second = SerialPort(path, 921600, name="second")
        with pytest.raises(PortUnavailable, match="in use by another process"):
            second.open()
        first.close()
        first.close()  # idempotent
        second.open()  # free again
        second.close()
