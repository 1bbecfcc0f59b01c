"""GPIO through libgpiod v2 (`gpiod` >= 2): the primary backend on Pi 4, Pi 5 and CM4.

The header chip is found by its label, never by number: on a Pi 5 it moved from gpiochip4 to
gpiochip0 between kernels. Labels: "pinctrl-rp1" (Pi 5), "pinctrl-bcm2711" (Pi 4, CM4),
"pinctrl-bcm2835" (older Pis). Each line is its own request with consumer "edgenode", so
`gpioinfo` shows who holds it and a conflict names the line.

The gpiod module is the library seam: `GpiodGpio(gpiod_module=...)` takes another module with
the same v2 API (the tests' fake, where the kernel has no gpio-sim), as `RpiGpio` does.
"""

from __future__ import annotations

import errno
import glob
import importlib
import logging
import os
import threading
from types import ModuleType
from typing import Any

from hal.ports.gpio import Bias, GpioError

log = logging.getLogger(__name__)

CONSUMER = "edgenode"
_BIAS_NAMES = {"pull_down": "PULL_DOWN", "pull_up": "PULL_UP", "disabled": "DISABLED"}


def _import_gpiod() -> ModuleType:
    try:
        return importlib.import_module("gpiod")
    except ImportError as exc:
        raise GpioError(f"gpio backend 'gpiod' is not installed here: {exc}; install the "
                        "libgpiod v2 bindings (pip install 'gpiod>=2') or choose another "
                        "relay.backend") from exc


def find_chip(label: str, dev_dir: str = "/dev", gpiod: Any = None) -> str:
    """Path of the gpiochip character device whose label is `label`; GpioError if none."""
    gpiod = gpiod or _import_gpiod()
    seen: list[str] = []
    for path in sorted(glob.glob(os.path.join(dev_dir, "gpiochip*"))):
        try:
            if not gpiod.is_gpiochip_device(path):
                continue
            with gpiod.Chip(path) as chip:
                found = chip.get_info().label
        except PermissionError:
            seen.append(f"{path} (permission denied: add the user to group 'gpio')")
            continue
        except OSError as exc:
            seen.append(f"{path} ({exc.strerror or exc})")
            continue
        if found == label:
            return path
        seen.append(f"{path} ({found})")
    listing = ", ".join(seen) if seen else f"no gpiochip devices in {dev_dir}"
    raise GpioError(
        f"gpio: no chip labelled '{label}' (found: {listing}); set relay.chip_label: "
        "'pinctrl-rp1' on a Pi 5, 'pinctrl-bcm2711' on a Pi 4 or CM4"
    )


class GpiodOutput:
    """One requested output line."""

    def __init__(self, gpio: GpiodGpio, line: int, request: Any):
        self._gpio, self._line, self._request = gpio, line, request
        self._closed = False

    def set(self, level: bool) -> None:
        if self._closed:
            raise GpioError(f"gpio line {self._line} on {self._gpio.chip_label}: set after close")
        try:
            value = self._gpio.Value.ACTIVE if level else self._gpio.Value.INACTIVE
            self._request.set_value(self._line, value)
        except OSError as exc:
            raise GpioError(f"gpio line {self._line} on {self._gpio.chip_label}: "
                            f"set failed: {exc}") from exc

    def get(self) -> bool:
        return bool(self._request.get_value(self._line) == self._gpio.Value.ACTIVE)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            # Hand the line back as a pulled-down input: the kernel keeps a released output's
            # level, and the board's pull-down (not a forgotten high) must decide from now on.
            g = self._gpio
            self._request.reconfigure_lines(
                {self._line: g.gpiod.LineSettings(direction=g.Direction.INPUT,
                                                  bias=g.Bias.PULL_DOWN)})
        except OSError as exc:
            log.warning("gpio line %d: could not return to input before release: %s",
                        self._line, exc)
        finally:
            self._request.release()
            self._gpio._forget(self._line)


class GpiodInput:
    """One requested input line with its bias."""

    def __init__(self, gpio: GpiodGpio, line: int, request: Any):
        self._gpio, self._line, self._request = gpio, line, request
        self._closed = False

    def read(self) -> bool:
        if self._closed:
            raise GpioError(f"gpio line {self._line} on {self._gpio.chip_label}: read after close")
        try:
            return bool(self._request.get_value(self._line) == self._gpio.Value.ACTIVE)
        except OSError as exc:
            raise GpioError(f"gpio line {self._line} on {self._gpio.chip_label}: "
                            f"read failed: {exc}") from exc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._request.release()
        self._gpio._forget(self._line)


class GpiodGpio:
    """The header GPIO chip, found by label.

    Options: `chip_label` (default "pinctrl-rp1"); `device`, an explicit /dev/gpiochipN path
    that must still carry that label (a wrong chip is refused, not used); `dev_dir`, where to
    scan for chips (default /dev); `gpiod_module`, another module with the gpiod v2 API.
    """

    def __init__(self, chip_label: str = "pinctrl-rp1", device: str | None = None,
                 dev_dir: str = "/dev", gpiod_module: ModuleType | Any | None = None):
        gpiod = self.gpiod = gpiod_module or _import_gpiod()
        self.Value, self.Direction, self.Bias = (gpiod.line.Value, gpiod.line.Direction,
                                                 gpiod.line.Bias)
        self.chip_label = chip_label
        if device is None:
            self.path = find_chip(chip_label, dev_dir, gpiod)
        else:
            self.path = device
            try:
                with gpiod.Chip(device) as chip:
                    label = chip.get_info().label
            except OSError as exc:
                raise GpioError(f"gpio chip {device}: cannot open: {exc}") from exc
            if label != chip_label:
                raise GpioError(f"gpio chip {device} is labelled '{label}', "
                                f"not '{chip_label}' (relay.chip_label)")
        try:
            self._chip = gpiod.Chip(self.path)
        except OSError as exc:
            raise GpioError(f"gpio chip {self.path} ({chip_label}): cannot open: {exc}") from exc
        self._lock = threading.Lock()
        self._held: dict[int, str] = {}
        self._lines: list[GpiodOutput | GpiodInput] = []
        self._closed = False
        log.info("gpio: using %s (%s)", self.path, chip_label)

    def _request(self, line: int, name: str, settings: Any) -> Any:
        with self._lock:
            if self._closed:
                raise GpioError(f"gpio chip {self.path}: closed")
            if line in self._held:
                raise GpioError(f"gpio line {line} ({name}) is already held by "
                                f"'{self._held[line]}'")
            try:
                request = self._chip.request_lines({line: settings}, consumer=CONSUMER)
            except OSError as exc:
                raise self._request_error(line, name, exc) from exc
            self._held[line] = name
            return request

    def _request_error(self, line: int, name: str, exc: OSError) -> GpioError:
        where = f"gpio line {line} ({name}) on {self.path} ({self.chip_label})"
        if exc.errno == errno.EBUSY:
            try:
                holder = self._chip.get_line_info(line).consumer or "another process"
            except OSError:
                holder = "another process"
            return GpioError(f"{where} is already held by '{holder}'; "
                             "is another edgenode running? (see gpioinfo)")
        if exc.errno == errno.EINVAL:
            return GpioError(f"{where}: no such line (chip has "
                             f"{self._chip.get_info().num_lines} lines)")
        return GpioError(f"{where}: request failed: {exc}")

    def output(self, line: int, *, initial: bool, name: str) -> GpiodOutput:
        """Request `line` as an output already at `initial`: no glitch through another level."""
        value = self.Value.ACTIVE if initial else self.Value.INACTIVE
        settings = self.gpiod.LineSettings(direction=self.Direction.OUTPUT, output_value=value)
        out = GpiodOutput(self, line, self._request(line, name, settings))
        self._lines.append(out)
        return out

    def input(self, line: int, *, bias: Bias, name: str) -> GpiodInput:
        """Request `line` as an input with the given bias."""
        settings = self.gpiod.LineSettings(direction=self.Direction.INPUT,
                                           bias=getattr(self.Bias, _BIAS_NAMES[bias]))
        inp = GpiodInput(self, line, self._request(line, name, settings))
        self._lines.append(inp)
        return inp

    def _forget(self, line: int) -> None:
        with self._lock:
            self._held.pop(line, None)

    def close(self) -> None:
        """Release every line this backend still holds, then the chip. Safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            lines, self._lines = self._lines, []
        for line in lines:
            line.close()
        self._chip.close()
