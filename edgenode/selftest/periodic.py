"""The daemon's own self-test: once shortly after start-up, then every `period_s`.

A FAIL makes the node `degraded` in health (the `selftest` part, naming the failed checks),
never stops it: a node with a broken microphone still has its radar.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from edgenode.selftest.result import FAIL, WARN

log = logging.getLogger(__name__)
FIRST_AFTER_S = 3.0  # the parts have opened and produced a window's worth
PERIOD_S = 300.0


class Periodic:
    name = "selftest"

    def __init__(self, run: Callable[[], dict[str, Any]], health: Any, *,
                 first_after_s: float = FIRST_AFTER_S, period_s: float = PERIOD_S):
        self._run, self._first, self._period = run, first_after_s, period_s
        # Not a looping stage: it must never hold back the watchdog.
        self.health = health.register(self.name, deadline_s=float("inf"))
        self.health.set("ok", f"first self-test {first_after_s:g} s after start-up")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="selftest", daemon=True)
        self.runs = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        wait = self._first
        while not self._stop.wait(wait):
            wait = self._period
            try:
                report = self._run()
            except Exception as exc:  # the self-test never takes the daemon down
                log.exception("selftest: periodic run failed")
                self.health.set("degraded", f"the self-test could not run: {exc}")
                continue
            self.runs += 1
            self.health.beat()
            self.note(report)

    def note(self, report: dict[str, Any]) -> None:
        """Health from a report (also called for every on-demand self-test)."""
        failed = [c["name"] for c in report["checks"] if c["result"] == FAIL]
        warned = [c["name"] for c in report["checks"] if c["result"] == WARN]
        if failed:
            self.health.set("degraded", "FAIL " + ", ".join(failed) + (
                "; WARN " + ", ".join(warned) if warned else ""))
        else:
            self.health.set("ok", "WARN " + ", ".join(warned) if warned else "")
