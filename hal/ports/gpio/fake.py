"""A GPIO backend with no hardware: records every level change with a monotonic timestamp."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

from hal.ports.gpio import Bias, GpioError


@dataclass
class LineRecord:
    name: str
    direction: str
    level: bool
    history: list[tuple[float, bool]] = field(default_factory=list)
    held: bool = True


class FakeOutput:
    def __init__(self, gpio: FakeGpio, line: int):
        self._gpio, self._line = gpio, line

    def set(self, level: bool) -> None:
        self._gpio._set(self._line, bool(level))

    def get(self) -> bool:
        return self._gpio.level(self._line)

    def close(self) -> None:
        self._gpio._release(self._line)


class FakeInput:
    def __init__(self, gpio: FakeGpio, line: int):
        self._gpio, self._line = gpio, line

    def read(self) -> bool:
        wedged = self._gpio.wedged.get(self._line)
        if wedged is not None:
            wedged.wait()
        failure = self._gpio.failing.get(self._line)
        if failure is not None:
            raise failure
        return self._gpio.level(self._line)

    def close(self) -> None:
        self._gpio._release(self._line)


class FakeGpio:
    """Tests drive inputs with `drive_input` and ask outputs how long they were high."""

    def __init__(self, inputs: dict[int, bool] | None = None, device: str | None = None):
        """`device`, when given, is a file that gets one JSON line per level change, so a test
        can read what a daemon in another process did to its lines."""
        self._lock = threading.Lock()
        self.lines: dict[int, LineRecord] = {}
        self._preset = dict(inputs or {})
        self._record = open(device, "a", buffering=1) if device else None  # noqa: SIM115
        self.wedged: dict[int, threading.Event] = {}
        self.failing: dict[int, Exception] = {}  # a read of the line raises this

    def wedge_reads(self, line: int) -> threading.Event:
        """A wedged driver: reads of `line` block until the returned event is set."""
        return self.wedged.setdefault(line, threading.Event())

    def _log(self, line: int, level: bool) -> None:
        if self._record is not None:
            rec = self.lines[line]
            self._record.write(json.dumps({"t": time.time(), "line": line, "name": rec.name,
                                           "direction": rec.direction, "level": level}) + "\n")

    def _reserve(self, line: int, name: str, direction: str, level: bool) -> None:
        with self._lock:
            old = self.lines.get(line)
            if old is not None and old.held:
                raise GpioError(f"gpio line {line} ({name}) is already held by '{old.name}'")
            history = old.history if old else []
            history.append((time.monotonic(), level))
            self.lines[line] = LineRecord(name, direction, level, history)
            self._log(line, level)

    def output(self, line: int, *, initial: bool, name: str) -> FakeOutput:
        self._reserve(line, name, "out", initial)
        return FakeOutput(self, line)

    def input(self, line: int, *, bias: Bias, name: str) -> FakeInput:
        level = self._preset.get(line, bias == "pull_up")
        self._reserve(line, name, "in", level)
        return FakeInput(self, line)

    def _set(self, line: int, level: bool) -> None:
        with self._lock:
            rec = self.lines.get(line)
            if rec is None or not rec.held:
                raise GpioError(f"gpio line {line} is not reserved")
            if rec.level != level:
                rec.history.append((time.monotonic(), level))
                rec.level = level
                self._log(line, level)

    def drive_input(self, line: int, level: bool) -> None:
        """What the outside world does to an input line."""
        if line in self.lines and self.lines[line].held:
            self._set(line, level)
        else:
            self._preset[line] = level

    def level(self, line: int) -> bool:
        with self._lock:
            return self.lines[line].level

    def _release(self, line: int) -> None:
        with self._lock:
            rec = self.lines.get(line)
            if rec is not None and rec.held:
                rec.held = False
                if rec.direction == "out" and rec.level:
                    # A released output falls to the board's pull-down.
                    rec.level = False
                    rec.history.append((time.monotonic(), False))
                    self._log(line, False)

    def history(self, line: int) -> list[tuple[float, bool]]:
        with self._lock:
            return list(self.lines[line].history)

    def high_time(self, line: int, until: float | None = None) -> float:
        """Seconds the line spent high, up to `until` (default: now)."""
        end = time.monotonic() if until is None else until
        hist = self.history(line)
        total = 0.0
        for (t0, level), (t1, _) in zip(hist, [*hist[1:], (end, False)], strict=True):
            if level:
                total += max(0.0, min(t1, end) - t0)
        return total

    def close(self) -> None:
        for line in list(self.lines):
            self._release(line)
        if self._record is not None:
            self._record.close()
            self._record = None
