"""GPIO lines. A backend hands out output and input lines; outputs start at their safe level.

Backends live side by side: `fake` (records a timestamped history), and the board backends
(`gpiod`, `rpigpio`) and the twin's `sim`. Pick one with `open_gpio`; a missing backend is an
error, never a silent fallback to another.
"""

from __future__ import annotations

from typing import Literal, Protocol

from hal.backends import load_backend

Bias = Literal["pull_down", "pull_up", "disabled"]


class OutputLine(Protocol):
    def set(self, level: bool) -> None: ...
    def get(self) -> bool: ...
    def close(self) -> None: ...


class InputLine(Protocol):
    def read(self) -> bool: ...
    def close(self) -> None: ...


class GpioBackend(Protocol):
    def output(self, line: int, *, initial: bool, name: str) -> OutputLine: ...
    def input(self, line: int, *, bias: Bias, name: str) -> InputLine: ...
    def close(self) -> None: ...


class GpioError(RuntimeError):
    """A line could not be reserved or driven; the message names the line."""


_BACKENDS = {
    "fake": "hal.ports.gpio.fake:FakeGpio",
    "gpiod": "hal.ports.gpio.gpiod_backend:GpiodGpio",
    "rpigpio": "hal.ports.gpio.rpigpio_backend:RpiGpio",
    "sim": "hal.ports.gpio.sim:SimGpio",
}


def open_gpio(backend: str, **options: object) -> GpioBackend:
    """Open the named backend; options are the backend's own (chip_label, device...)."""
    return load_backend("gpio backend", _BACKENDS, backend, GpioError)(**options)
