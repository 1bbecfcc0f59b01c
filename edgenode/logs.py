"""Logging to stderr: sd-daemon `<N>` priority prefixes under journald, text or JSON lines."""

from __future__ import annotations

import json
import logging
import os
import sys
import time

# syslog priorities by logging level, for journald's stream parser
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


def stderr_is_journal() -> bool:
    """True when systemd connected stderr to the journal ($JOURNAL_STREAM is dev:inode)."""
    value = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(part) for part in value.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


class _Formatter(logging.Formatter):
    def __init__(self, fmt: str, journal: bool):
        super().__init__()
        self.json, self.journal = fmt == "json", journal

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if self.json:
            line = json.dumps({
                "t": round(record.created, 3), "level": record.levelname.lower(),
                "component": record.name, "msg": message,
            })
        else:
            stamp = "" if self.journal else time.strftime(
                "%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + "Z "
            line = f"{stamp}{record.levelname.lower():7} {record.name}: {message}"
        if self.journal:
            prio = _PRIORITY.get(record.levelno, 6)
            line = "\n".join(f"<{prio}>{part}" for part in line.split("\n"))
        return line


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(fmt, stderr_is_journal()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
