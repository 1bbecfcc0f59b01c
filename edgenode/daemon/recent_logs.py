"""The daemon's last log lines, kept in memory for the status page (`logs` on the control
socket): journald has them too, but the page must not need a shell or journal access."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}
KEEP = 1000  # lines: a few minutes of a busy daemon, ~200 kB


class RecentLogs(logging.Handler):
    """A bounded ring of formatted records (level number, line)."""

    def __init__(self, keep: int = KEEP) -> None:
        super().__init__(logging.DEBUG)
        self._lines: deque[tuple[int, str]] = deque(maxlen=keep)
        self._lock_lines = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            line = f"{stamp}Z {record.levelname.lower():7} {record.name}: {record.getMessage()}"
        except Exception:  # a bad format argument must not break logging
            return
        with self._lock_lines:
            self._lines.append((record.levelno, line))

    def lines(self, level: str = "info", count: int = 300) -> list[str]:
        """The last `count` lines at `level` or above, oldest first."""
        floor = LEVELS.get(level, logging.INFO)
        with self._lock_lines:
            picked = [line for levelno, line in self._lines if levelno >= floor]
        return picked[-max(1, min(count, KEEP)):]
