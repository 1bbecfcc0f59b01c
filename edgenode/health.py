"""Per-stage liveness and state.

Each stage runs in its own thread and beats once per loop. A stage whose device or broker is
gone keeps looping and reports itself `failed`; only a stage that stops looping (hung) makes
`late_stages()` non-empty, which stops the systemd watchdog pings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

log = logging.getLogger(__name__)
State = Literal["starting", "ok", "degraded", "failed"]


class ErrorLog:
    """Logs an exception with its traceback once per distinct error (where, type, message)
    per `period_s`: a device that fails every loop must not flood the journal, but the first
    occurrence, and a new kind of failure, are always seen with where they came from."""

    MAX_KINDS = 256

    def __init__(self, logger: logging.Logger, period_s: float = 60.0):
        self._log, self._period_s = logger, period_s
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str, str], float] = {}
        self._repeats: dict[tuple[str, str, str], int] = {}

    def report(self, level: int, where: str, exc: BaseException) -> bool:
        """Log `exc` at `level` unless the same error was logged within `period_s`; the
        repeats in between are counted in the next line. True when logged."""
        key = (where, type(exc).__name__, str(exc))
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._period_s:
                self._repeats[key] = self._repeats.get(key, 0) + 1
                return False
            repeats = self._repeats.pop(key, 0)
            self._last[key] = now
            if len(self._last) > self.MAX_KINDS:  # forget the oldest kind of error
                oldest = min(self._last, key=self._last.__getitem__)
                self._last.pop(oldest)
                self._repeats.pop(oldest, None)
        more = f" (and {repeats} more since last logged)" if repeats else ""
        self._log.log(level, "%s: %s: %s%s", where, type(exc).__name__, exc, more,
                      exc_info=(type(exc), exc, exc.__traceback__))
        return True


@dataclass
class StageHealth:
    name: str
    deadline_s: float
    state: State = "starting"
    reason: str = ""
    last_beat: float = field(default_factory=time.monotonic)
    loops: int = 0
    stall_until: float = 0.0

    def beat(self) -> None:
        self.last_beat = time.monotonic()
        self.loops += 1

    def set(self, state: State, reason: str = "") -> None:
        if (state, reason) != (self.state, self.reason):
            level = logging.INFO if state == "ok" else logging.WARNING
            log.log(level, "%s: %s%s", self.name, state, f" ({reason})" if reason else "")
        self.state, self.reason = state, reason

    def stall_point(self) -> None:
        """Where a test-injected stall (`Health.stall`) holds the stage's thread."""
        while time.monotonic() < self.stall_until:
            time.sleep(0.05)


class Health:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.stages: dict[str, StageHealth] = {}
        self._listeners: list[Callable[[], None]] = []

    def register(self, name: str, deadline_s: float) -> StageHealth:
        with self._lock:
            if name in self.stages:
                raise ValueError(f"stage '{name}' registered twice")
            stage = self.stages[name] = StageHealth(name, deadline_s)
            return stage

    def late_stages(self) -> list[str]:
        now = time.monotonic()
        with self._lock:
            return [s.name for s in self.stages.values() if now - s.last_beat > s.deadline_s]

    def stall(self, name: str, seconds: float) -> None:
        """Fault injection: hold a stage's loop for `seconds` (tests of the watchdog paths)."""
        self.stages[name].stall_until = time.monotonic() + seconds

    def snapshot(self) -> dict[str, dict[str, object]]:
        now = time.monotonic()
        with self._lock:
            return {
                s.name: {"state": s.state, "reason": s.reason,
                         "since_beat_s": round(now - s.last_beat, 3)}
                for s in self.stages.values()
            }


class LoopThread(threading.Thread):
    """Calls `step()` until stopped; an exception marks the stage failed and backs off.

    `step` must return within the stage's deadline (use timeouts on every blocking call).
    """

    def __init__(self, stage: StageHealth, step: Callable[[], None], stop: threading.Event,
                 *, error_backoff_s: float = 1.0):
        super().__init__(name=f"stage-{stage.name}", daemon=True)
        self.stage, self._step, self._stop_event = stage, step, stop
        self._backoff = error_backoff_s
        self._errors = ErrorLog(log)

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.stage.stall_point()
            try:
                self._step()
            except Exception as exc:  # the loop boundary: a stage never dies, it reports
                self.stage.set("failed", f"{type(exc).__name__}: {exc}")
                self._errors.report(logging.ERROR, f"{self.stage.name}: step failed", exc)
                self._stop_event.wait(self._backoff)
            self.stage.beat()
