"""Serial ports through pyserial: real ttys, ptys and `loop://`.

`SerialPort` opens exclusively, reopens after an unplug (with one clear log line each way) and
counts bytes. `read` never blocks longer than its timeout, so a reader thread keeps looping
(and reporting) while the device is gone.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time

import serial

log = logging.getLogger(__name__)


class PortUnavailable(OSError):
    """The device is not there (unplugged, wrong path, no permission); the message says which."""


class SerialPort:
    def __init__(self, url: str, baud: int, *, name: str, timeout_s: float = 0.1,
                 reopen_every_s: float = 1.0):
        self.url, self.baud, self.name = url, baud, name
        self.timeout_s, self.reopen_every_s = timeout_s, reopen_every_s
        self.bytes_in = 0
        self.bytes_out = 0
        self.reconnects = 0
        self._port: serial.SerialBase | None = None
        self._last_attempt = -1e9
        self._opened_once = False
        self._down_reason = ""
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._port is not None

    def _open(self) -> serial.SerialBase:
        if self._port is not None:
            return self._port
        now = time.monotonic()
        if now - self._last_attempt < self.reopen_every_s:
            raise PortUnavailable(f"{self.name} '{self.url}': {self._down_reason}")
        self._last_attempt = now
        try:
            port = serial.serial_for_url(self.url, baudrate=self.baud, timeout=self.timeout_s,
                                         write_timeout=1.0, do_not_open=True)
            if hasattr(port, "exclusive"):
                port.exclusive = True
            port.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            reason = str(exc) or type(exc).__name__
            if reason != self._down_reason:
                log.warning("%s: cannot open '%s': %s", self.name, self.url, reason)
            self._down_reason = reason
            raise PortUnavailable(f"{self.name} '{self.url}': {reason}") from exc
        if self._opened_once:
            self.reconnects += 1
            log.info("%s: reconnected on '%s'", self.name, self.url)
        else:
            log.info("%s: opened '%s' at %d baud", self.name, self.url, self.baud)
        self._opened_once = True
        self._down_reason = ""
        self._port = port
        return port

    def _lost(self, exc: Exception) -> PortUnavailable:
        self._down_reason = f"lost: {exc}"
        log.warning("%s: '%s' lost (%s); will reopen every %.1f s", self.name, self.url, exc,
                    self.reopen_every_s)
        self.close()
        self._last_attempt = time.monotonic()
        return PortUnavailable(f"{self.name} '{self.url}': {self._down_reason}")

    def read(self, max_bytes: int = 4096) -> bytes:
        """Whatever arrived within the timeout (b"" if nothing); PortUnavailable when gone."""
        port = self._open()
        try:
            waiting = port.in_waiting
            data = port.read(min(max(waiting, 1), max_bytes))
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from exc
        self.bytes_in += len(data)
        return data

    def write(self, data: bytes) -> None:
        with self._lock:
            port = self._open()
            try:
                port.write(data)
                port.flush()
            except (serial.SerialException, OSError) as exc:
                raise self._lost(exc) from exc
            self.bytes_out += len(data)

    def readline(self, timeout_s: float) -> bytes:
        """One line (with its terminator) or what came before the timeout."""
        port = self._open()
        deadline = time.monotonic() + timeout_s
        out = bytearray()
        try:
            while time.monotonic() < deadline and not out.endswith(b"\n"):
                chunk = port.read(1)
                out += chunk
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from exc
        self.bytes_in += len(out)
        return bytes(out)

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()
