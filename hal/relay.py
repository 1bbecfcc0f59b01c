"""The jammer relay board (hardware/relay-board.md): drive, heartbeat, aux contact, key switch.

This class reads every input and offers the drive and heartbeat outputs. It decides nothing:
`edgenode.control` is the only caller of `drive` and `toggle_heartbeat`.
"""

from __future__ import annotations

import enum
import logging
import threading
from dataclasses import dataclass

from hal.ports.gpio import GpioBackend

log = logging.getLogger(__name__)


class KeySwitch(enum.Enum):
    OFF = "off"
    TEST = "test"
    OPERATE = "operate"
    # Both contacts read closed: a wiring fault, treated as OFF by every caller.
    INVALID = "invalid"


@dataclass(frozen=True)
class RelayInputs:
    drive: bool
    aux_closed: bool
    key: KeySwitch

    @property
    def aux_agrees(self) -> bool:
        return self.aux_closed == self.drive


class JammerRelay:
    """Owns the five relay-board lines. Outputs are created low (relay off, no heartbeat)."""

    def __init__(self, backend: GpioBackend, *, drive_line: int, heartbeat_line: int,
                 aux_line: int, key_test_line: int, key_operate_line: int):
        self._backend = backend
        self._lock = threading.Lock()
        self._closed = False
        self._heartbeat_level = False
        opened = []
        try:
            self._drive = backend.output(drive_line, initial=False, name="relay-drive")
            opened.append(self._drive)
            self._heartbeat = backend.output(heartbeat_line, initial=False, name="relay-heartbeat")
            opened.append(self._heartbeat)
            self._aux = backend.input(aux_line, bias="pull_down", name="relay-aux")
            opened.append(self._aux)
            self._key_test = backend.input(key_test_line, bias="pull_down", name="key-test")
            opened.append(self._key_test)
            self._key_operate = backend.input(key_operate_line, bias="pull_down",
                                              name="key-operate")
        except Exception:
            for line in opened:
                line.close()
            raise

    def drive(self, on: bool) -> None:
        with self._lock:
            if self._closed:
                if on:
                    raise RuntimeError("relay: drive(on) after close")
                return
            self._drive.set(on)
        log.info("relay: drive %s", "ON" if on else "OFF")

    def toggle_heartbeat(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._heartbeat_level = not self._heartbeat_level
            self._heartbeat.set(self._heartbeat_level)

    def drive_level(self) -> bool:
        with self._lock:
            return False if self._closed else self._drive.get()

    def aux_closed(self) -> bool:
        return self._aux.read()

    def key_switch(self) -> KeySwitch:
        test, operate = self._key_test.read(), self._key_operate.read()
        if test and operate:
            return KeySwitch.INVALID
        if operate:
            return KeySwitch.OPERATE
        if test:
            return KeySwitch.TEST
        return KeySwitch.OFF

    def read(self) -> RelayInputs:
        return RelayInputs(self.drive_level(), self.aux_closed(), self.key_switch())

    def close(self) -> None:
        """Drive off, stop the heartbeat and release the lines. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._drive.set(False)
                self._heartbeat.set(False)
            finally:
                for line in (self._drive, self._heartbeat, self._aux, self._key_test,
                             self._key_operate):
                    line.close()

    def __enter__(self) -> JammerRelay:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
