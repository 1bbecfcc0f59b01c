"""GPIO lines of the digital twin's relay board, reached over its Unix socket.

Like a Raspberry Pi's lines: an output released with `close()` falls to the board's pull-down,
but when the process dies without releasing (SIGKILL), the twin keeps the last level, as the
Pi's pin does. Only the heartbeat monostable then makes the jammer safe.
"""

from __future__ import annotations

import contextlib

from hal.ports.gpio import Bias, GpioError
from hal.sim.protocol import SimClient, SimError


class SimOutput:
    def __init__(self, gpio: SimGpio, line: int, name: str):
        self._gpio, self._line, self._name = gpio, line, name

    def set(self, level: bool) -> None:
        self._gpio._call("gpio.set", self._line, self._name, level=bool(level))

    def get(self) -> bool:
        return bool(self._gpio._call("gpio.get", self._line, self._name)["level"])

    def close(self) -> None:
        self._gpio._release(self._line, self._name)


class SimInput:
    def __init__(self, gpio: SimGpio, line: int, name: str):
        self._gpio, self._line, self._name = gpio, line, name

    def read(self) -> bool:
        return bool(self._gpio._call("gpio.get", self._line, self._name)["level"])

    def close(self) -> None:
        self._gpio._release(self._line, self._name)


class SimGpio:
    """The `sim` GPIO backend. `device` is the twin's socket path (endpoints.json: socket)."""

    def __init__(self, device: str):
        self.device = device
        self._held: set[int] = set()
        try:
            self._client: SimClient | None = SimClient(device, "gpio", name="gpio")
        except SimError as exc:
            raise GpioError(f"gpio sim: {exc}") from exc

    def _call(self, op: str, line: int, label: str, **fields: object) -> dict:
        if self._client is None:
            raise GpioError(f"gpio line {line} ({label}): sim backend closed")
        try:
            return self._client.request(op, line=line, **fields)
        except SimError as exc:
            raise GpioError(f"gpio line {line} ({label}): {exc}") from exc

    def output(self, line: int, *, initial: bool, name: str) -> SimOutput:
        self._call("gpio.output", line, name, initial=bool(initial), name=name)
        self._held.add(line)
        return SimOutput(self, line, name)

    def input(self, line: int, *, bias: Bias, name: str) -> SimInput:
        self._call("gpio.input", line, name, bias=bias, name=name)
        self._held.add(line)
        return SimInput(self, line, name)

    def _release(self, line: int, name: str) -> None:
        if line in self._held and self._client is not None:
            self._held.discard(line)
            with contextlib.suppress(SimError):  # the twin is gone: nothing left to release
                self._client.request("gpio.release", line=line)

    def close(self) -> None:
        for line in list(self._held):
            self._release(line, "")
        if self._client is not None:
            self._client.close()
            self._client = None
