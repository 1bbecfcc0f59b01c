"""A stand-in for the `gpiod` v2 module: the API pieces hal/ports/gpio/gpiod_backend.py uses,
over simulated chips, for machines whose kernel has no gpio-sim.

It behaves as the kernel's character device does where the backend depends on it: a line
held by one request is refused to another (EBUSY), an offset past the chip is EINVAL, a
released output keeps its level, an input reads its bias until the world drives it. Each
line records a timestamped history of levels, so a test can see a glitch.
"""

from __future__ import annotations

import enum
import errno
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any


class Value(enum.Enum):
    INACTIVE = 0
    ACTIVE = 1


class Direction(enum.Enum):
    AS_IS = 1
    INPUT = 2
    OUTPUT = 3


class Bias(enum.Enum):
    AS_IS = 1
    UNKNOWN = 2
    DISABLED = 3
    PULL_UP = 4
    PULL_DOWN = 5


@dataclass
class LineSettings:
    direction: Direction = Direction.AS_IS
    bias: Bias = Bias.AS_IS
    output_value: Value = Value.INACTIVE


@dataclass(frozen=True)
class ChipInfo:
    name: str
    label: str
    num_lines: int


@dataclass
class _Line:
    direction: Direction = Direction.INPUT
    bias: Bias = Bias.AS_IS
    driven: bool = False
    external: bool | None = None  # what the world outside drives onto an input
    consumer: str | None = None
    history: list[tuple[float, bool]] = field(default_factory=list)

    def level(self) -> bool:
        if self.direction is Direction.OUTPUT:
            return self.driven
        if self.external is not None:
            return self.external
        return self.bias is Bias.PULL_UP

    def record(self) -> None:
        level = self.level()
        if not self.history or self.history[-1][1] != level:
            self.history.append((time.monotonic(), level))


@dataclass
class _SimChip:
    path: str
    label: str
    num_lines: int
    readable: bool
    lines: dict[int, _Line] = field(default_factory=dict)

    def line(self, offset: int) -> _Line:
        return self.lines.setdefault(offset, _Line())


class FakeGpiod:
    """One simulated machine's chips, shaped like the `gpiod` module (pass it as
    `gpiod_module=`, or put it in sys.modules["gpiod"])."""

    def __init__(self) -> None:
        self.chips: dict[str, _SimChip] = {}
        self.line = SimpleNamespace(Value=Value, Direction=Direction, Bias=Bias)
        self.LineSettings = LineSettings
        self.fail_next: dict[str, OSError] = {}  # method name -> error raised once
        fake = self

        class Chip(_Chip):
            def __init__(self, path: str):
                super().__init__(fake, path)

        self.Chip = Chip

    def add_chip(self, dev_dir: Path, name: str, label: str, num_lines: int = 32, *,
                 readable: bool = True) -> str:
        path = str(dev_dir / name)
        Path(path).touch()
        self.chips[path] = _SimChip(path, label, num_lines, readable)
        return path

    def is_gpiochip_device(self, path: str) -> bool:
        return path in self.chips

    # -- the world outside the chip --------------------------------------------------------
    def level(self, path: str, offset: int) -> bool:
        return self.chips[path].line(offset).level()

    def history(self, path: str, offset: int) -> list[bool]:
        return [level for _, level in self.chips[path].line(offset).history]

    def drive(self, path: str, offset: int, level: bool | None) -> None:
        line = self.chips[path].line(offset)
        line.external = level
        line.record()

    def consumer(self, path: str, offset: int) -> str | None:
        return self.chips[path].line(offset).consumer

    def _maybe_fail(self, what: str) -> None:
        exc = self.fail_next.pop(what, None)
        if exc is not None:
            raise exc


class _Chip:
    def __init__(self, fake: FakeGpiod, path: str):
        if path not in fake.chips:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        if not fake.chips[path].readable:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        self._fake, self._sim = fake, fake.chips[path]
        self.closed = False

    def __enter__(self) -> _Chip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.closed = True

    def get_info(self) -> ChipInfo:
        return ChipInfo(Path(self._sim.path).name, self._sim.label, self._sim.num_lines)

    def get_line_info(self, offset: int) -> Any:
        return SimpleNamespace(offset=offset, consumer=self._sim.line(offset).consumer or "")

    def request_lines(self, config: dict[int, LineSettings], consumer: str | None = None,
                      **_: Any) -> _LineRequest:
        if self.closed:
            raise OSError(errno.EBADF, "chip closed")
        self._fake._maybe_fail("request_lines")
        for offset in config:
            if not 0 <= offset < self._sim.num_lines:
                raise OSError(errno.EINVAL, "Invalid argument")
            if self._sim.line(offset).consumer is not None:
                raise OSError(errno.EBUSY, "Device or resource busy")
        request = _LineRequest(self._fake, self._sim, list(config))
        for offset, settings in config.items():
            self._sim.line(offset).consumer = consumer or "?"
            request._apply(offset, settings)
        return request


class _LineRequest:
    def __init__(self, fake: FakeGpiod, sim: _SimChip, offsets: list[int]):
        self._fake, self._sim, self.offsets = fake, sim, offsets
        self.released = False

    def _line(self, offset: int) -> _Line:
        if self.released:
            raise OSError(errno.EBADF, "request released")
        if offset not in self.offsets:
            raise ValueError(f"line {offset} not in this request")
        return self._sim.line(offset)

    def _apply(self, offset: int, settings: LineSettings) -> None:
        line = self._line(offset)
        if settings.direction is not Direction.AS_IS:
            line.direction = settings.direction
        if settings.bias is not Bias.AS_IS:
            line.bias = settings.bias
        if line.direction is Direction.OUTPUT:
            line.driven = _level(settings.output_value)
        line.record()

    def set_value(self, offset: int, value: Value) -> None:
        self._fake._maybe_fail("set_value")
        line = self._line(offset)
        if line.direction is not Direction.OUTPUT:
            raise OSError(errno.EPERM, "line is not an output")
        line.driven = _level(value)
        line.record()

    def get_value(self, offset: int) -> Value:
        self._fake._maybe_fail("get_value")
        return Value.ACTIVE if self._line(offset).level() else Value.INACTIVE

    def reconfigure_lines(self, config: dict[int, LineSettings]) -> None:
        self._fake._maybe_fail("reconfigure_lines")
        for offset, settings in config.items():
            self._apply(offset, settings)

    def release(self) -> None:
        if self.released:
            return
        for offset in self.offsets:
            self._sim.line(offset).consumer = None  # the level stays as it was
        self.released = True


def _level(value: Value) -> bool:
    if not isinstance(value, Value):  # strict: the backend must hand over Value members
        raise TypeError(f"expected gpiod.line.Value, got {value!r}")
    return value is Value.ACTIVE
