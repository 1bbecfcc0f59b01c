"""The effector's durable memory: replay cache, duty-cycle ledger, latched fault.

One SQLite file, `<state_dir>/control/effector.db`, WAL mode with `synchronous=FULL`: a command
id is on disk before the command acts, so a replay is caught after a crash or a power cut.
FULL costs one fsync of the WAL per command (about 1 ms on an SD card or SSD, more when the
disk is busy); NORMAL would save it but a power cut could then lose the last commits, i.e. an
id and a duty interval of a command that already moved the relay, so it stays FULL. A power cut
loses nothing committed; only a transaction still open at that instant is rolled back, and that
command never reached the relay. Pruning runs in `prune`, off the command path, so an engage
pays for exactly one commit.
Duty intervals use wall-clock time (they must survive a restart); an engagement is written
with its planned end when it starts and counts in full at once, so a crash charges the whole
planned time against the budget; its real end replaces the planned one when it ends normally.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replay (id TEXT PRIMARY KEY, keep_until REAL NOT NULL);
CREATE TABLE IF NOT EXISTS duty (rowid INTEGER PRIMARY KEY, start REAL NOT NULL,
                                 end REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT);
"""
# A replay-cache entry outlives its command's expiry by this much, so a node whose clock was
# stepped back a little still recognises the id.
REPLAY_MARGIN_S = 3600.0
# Duty intervals are kept this long after they end (far beyond any sliding window).
DUTY_KEEP_S = 86400.0


class EffectorStore:
    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        self.path = directory / "effector.db"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._pruned = 0.0

    # -- replay --------------------------------------------------------------------------
    def seen(self, command_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM replay WHERE id = ?",
                                    (command_id,)).fetchone() is not None

    def prune(self, now: float | None = None, *, every_s: float = 60.0) -> None:
        """Drop expired replay entries and day-old duty intervals, at most once per every_s.
        Called from the effector loop outside its lock: never on a command's path."""
        now = time.time() if now is None else now
        if now - self._pruned < every_s:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM replay WHERE keep_until < ?", (now,))
                self._db.execute("DELETE FROM duty WHERE end < ?", (now - DUTY_KEEP_S,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._pruned = now

    def remember(self, command_id: str, expires_at: float,
                 duty: tuple[float, float] | None = None) -> int | None:
        """Record a command id (and, for an engagement, its planned duty interval) in one
        transaction. Returns the duty row, to be closed with `duty_close`."""
        now = time.time()
        with self._lock:
            row = None
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR IGNORE INTO replay (id, keep_until) VALUES (?, ?)",
                                 (command_id, max(expires_at, now) + REPLAY_MARGIN_S))
                if duty is not None:
                    cur = self._db.execute("INSERT INTO duty (start, end) VALUES (?, ?)", duty)
                    row = int(cur.lastrowid or 0)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return row

    # -- duty ledger ---------------------------------------------------------------------
    def duty_close(self, row: int, end: float) -> None:
        with self._lock:
            self._db.execute("UPDATE duty SET end = MIN(end, ?) WHERE rowid = ?", (end, row))

    def duty_used_s(self, window_s: float, now: float | None = None) -> float:
        """On-time inside the sliding window ending now. An interval still open counts with
        its planned end: the budget is charged up front and refunded by `duty_close`."""
        now = time.time() if now is None else now
        since = now - window_s
        with self._lock:
            rows = self._db.execute("SELECT start, end FROM duty WHERE end > ?",
                                    (since,)).fetchall()
        return sum(max(0.0, end - max(start, since)) for start, end in rows)

    # -- latched fault -------------------------------------------------------------------
    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def put(self, key: str, value: str | None) -> None:
        with self._lock:
            if value is None:
                self._db.execute("DELETE FROM meta WHERE k = ?", (key,))
            else:
                self._db.execute("INSERT OR REPLACE INTO meta (k, v) VALUES (?, ?)",
                                 (key, value))

    def close(self) -> None:
        with self._lock:
            self._db.close()
