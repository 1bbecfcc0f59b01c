"""Serial ports through pyserial: real ttys, ptys and `loop://`.

`SerialPort` opens exclusively, reopens after an unplug (with one clear log line each way) and
counts bytes. `read` never blocks longer than its timeout, so a reader thread keeps looping
(and reporting) while the device is gone.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import threading
import time

import serial

log = logging.getLogger(__name__)


class PortUnavailable(OSError):
    """The device is not there (unplugged, wrong path, no permission); the message says which."""


def _explain(exc: BaseException, url: str) -> str:
    """pyserial's message plus what it most likely means for the operator."""
    text = str(exc) or type(exc).__name__
    code = getattr(exc, "errno", None)
    if code == errno.ENOENT or "No such file" in text:
        return f"no such device ({text}); is it plugged in, and is '{url}' the right path?"
    if code == errno.EACCES or "Permission denied" in text:
        return f"permission denied ({text}); add the service user to the 'dialout' group"
    if "exclusively lock" in text or code == errno.EBUSY:
        return f"in use by another process ({text}); only one reader may hold it"
    return text


class SerialPort:
    """One serial device, opened lazily and reopened after it disappears.

    `url` is a device path (`/dev/ttyUSB0`, a udev symlink, a pty) or a pyserial URL
    (`loop://`). `name` prefixes every log line and error. Context manager; `close()` is
    idempotent.
    """

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

    def open(self) -> None:
        """Open now (rather than on first use); PortUnavailable if the device is not there."""
        if self._port is None:
            self._last_attempt = -1e9  # an explicit attempt is never throttled
        self._open()

    def _open(self) -> serial.SerialBase:
        if self._port is not None:
            return self._port
        now = time.monotonic()
        wait = self._last_attempt + self.reopen_every_s - now
        if wait > 0:
            # Sleep (at most one timeout) so a caller that retries at once does not spin.
            time.sleep(min(wait, self.timeout_s))
            raise PortUnavailable(f"{self.name} '{self.url}': {self._down_reason}")
        self._last_attempt = now
        try:
            port = serial.serial_for_url(self.url, baudrate=self.baud, timeout=self.timeout_s,
                                         write_timeout=1.0, do_not_open=True)
            if hasattr(port, "exclusive"):
                port.exclusive = True
            port.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            reason = _explain(exc, self.url)
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
            # Block for the first byte only, then take what is already waiting: one wake-up
            # per burst, and the last byte of a frame is handed over as soon as it arrives.
            data = port.read(1)
            if data and max_bytes > 1:
                waiting = port.in_waiting
                if waiting:
                    data += port.read(min(waiting, max_bytes - 1))
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
                self.bytes_in += len(chunk)
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from exc
        return bytes(out)

    def reset_input(self) -> None:
        """Drop whatever the device sent that nobody has read yet."""
        port = self._open()
        try:
            port.reset_input_buffer()
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from exc

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()

    def __enter__(self) -> SerialPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
