"""GPIO through the RPi.GPIO API: RPi.GPIO itself on a Pi <= 4, the rpi-lgpio shim on a Pi 5.

RPi.GPIO maps the SoC's registers through /dev/gpiomem and cannot find them on a Pi 5; it fails
there with "Cannot determine SOC peripheral base address". That failure becomes a GpioError
telling the operator to install rpi-lgpio (same API, over /dev/gpiochip) or to use the gpiod
backend. Line numbers are BCM numbers.
"""

from __future__ import annotations

import importlib
import logging
import threading
from types import ModuleType
from typing import Any

from hal.ports.gpio import Bias, GpioError

log = logging.getLogger(__name__)

_PI5_HINT = (
    "RPi.GPIO cannot drive a Raspberry Pi 5 ('Cannot determine SOC peripheral base address'): "
    "replace it with the rpi-lgpio shim (pip uninstall RPi.GPIO; pip install rpi-lgpio), "
    "or set relay.backend = 'gpiod'"
)


def _translate(exc: Exception, what: str) -> GpioError:
    text = str(exc)
    if "peripheral base address" in text:
        return GpioError(f"rpigpio: {what}: {_PI5_HINT}")
    if "/dev/mem" in text or "/dev/gpiomem" in text or "root" in text:
        return GpioError(f"rpigpio: {what}: {text}; add the user to group 'gpio'")
    return GpioError(f"rpigpio: {what}: {text}")


class RpiOutput:
    def __init__(self, gpio: RpiGpio, line: int):
        self._gpio, self._line = gpio, line
        self._closed = False

    def set(self, level: bool) -> None:
        if self._closed:
            raise GpioError(f"gpio line {self._line}: set after close")
        g = self._gpio.module
        self._gpio._call(f"line {self._line}: output", g.output, self._line,
                         g.HIGH if level else g.LOW)

    def get(self) -> bool:
        return bool(self._gpio._call(f"line {self._line}: input", self._gpio.module.input,
                                     self._line))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._gpio._release(self._line)


class RpiInput:
    def __init__(self, gpio: RpiGpio, line: int):
        self._gpio, self._line = gpio, line
        self._closed = False

    def read(self) -> bool:
        if self._closed:
            raise GpioError(f"gpio line {self._line}: read after close")
        return bool(self._gpio._call(f"line {self._line}: input", self._gpio.module.input,
                                     self._line))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._gpio._release(self._line)


class RpiGpio:
    """The header GPIOs by BCM number through the RPi.GPIO API.

    Options: `chip_label` and `device` are accepted so that the relay config can pass the same
    options to every backend, and ignored (RPi.GPIO and rpi-lgpio find the header themselves).
    `gpio_module` replaces the imported RPi.GPIO module (the library seam, for tests).
    """

    def __init__(self, chip_label: str | None = None, device: str | None = None,
                 gpio_module: ModuleType | Any | None = None):
        if gpio_module is None:
            try:
                gpio_module = importlib.import_module("RPi.GPIO")
            except ImportError as exc:
                raise GpioError(
                    f"rpigpio: RPi.GPIO is not installed ({exc}); install rpi-lgpio on a Pi 5, "
                    "RPi.GPIO on a Pi 4 or earlier, or set relay.backend = 'gpiod'") from exc
            except RuntimeError as exc:  # "This module can only be run on a Raspberry Pi!"
                raise _translate(exc, "import RPi.GPIO") from exc
        self.module = gpio_module
        self._lock = threading.Lock()
        self._held: dict[int, str] = {}
        self._closed = False
        g = self.module
        # A line left as an output by a crashed run is expected here; we log it ourselves.
        self._call("setwarnings", g.setwarnings, False)
        mode = self._call("getmode", g.getmode)
        if mode is None:
            self._call("setmode BCM", g.setmode, g.BCM)
        elif mode != g.BCM:
            raise GpioError("rpigpio: this process already uses BOARD pin numbering; "
                            "edgenode needs BCM numbers")

    def _call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (RuntimeError, ValueError, OSError) as exc:
            raise _translate(exc, what) from exc

    def _reserve(self, line: int, name: str) -> None:
        with self._lock:
            if self._closed:
                raise GpioError("rpigpio: closed")
            if line in self._held:
                raise GpioError(f"gpio line {line} ({name}) is already held by "
                                f"'{self._held[line]}'")
            self._held[line] = name

    def output(self, line: int, *, initial: bool, name: str) -> RpiOutput:
        """Set `line` up as an output already at `initial` (RPi.GPIO's `initial=`)."""
        self._reserve(line, name)
        g = self.module
        try:
            self._call(f"line {line} ({name}): setup output", g.setup, line, g.OUT,
                       initial=g.HIGH if initial else g.LOW)
        except GpioError:
            self._forget(line)
            raise
        return RpiOutput(self, line)

    def input(self, line: int, *, bias: Bias, name: str) -> RpiInput:
        """Set `line` up as an input with the given pull."""
        self._reserve(line, name)
        g = self.module
        pud = {"pull_down": g.PUD_DOWN, "pull_up": g.PUD_UP, "disabled": g.PUD_OFF}[bias]
        try:
            self._call(f"line {line} ({name}): setup input", g.setup, line, g.IN,
                       pull_up_down=pud)
        except GpioError:
            self._forget(line)
            raise
        return RpiInput(self, line)

    def _forget(self, line: int) -> None:
        with self._lock:
            self._held.pop(line, None)

    def _release(self, line: int) -> None:
        # cleanup() returns the line to an input without pull: the board's pull-down decides.
        try:
            self._call(f"line {line}: cleanup", self.module.cleanup, line)
        finally:
            self._forget(line)

    def close(self) -> None:
        """Release every line still held. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            lines = list(self._held)
        for line in lines:
            try:
                self._release(line)
            except GpioError as exc:
                log.warning("rpigpio: %s", exc)
