"""The effector's durable memory: replay cache, duty-cycle ledger, latched fault.

One SQLite file, `<state_dir>/control/effector.db`, WAL mode with `synchronous=NORMAL` plus a
sync thread: a command id is committed (in the WAL, so a crash of the process loses nothing)
before the command acts, and the WAL is fsynced by the sync thread right after, off the
command's path (an fsync inline cost 0.5 ms at the median and 6 ms at p99 here, more on a
busy SD card). A power cut inside that millisecond or two can lose the last commits: the id of
a command that just acted and the start of its duty interval. Both are covered: the jammer
lost its supply with the node, so the unrecorded on-time is that instant; and the effector
refuses arm/engage commands issued before it started, so a command whose id was lost cannot
be replayed after the reboot. Pruning runs in `prune`, off the command path, so an engage
pays for exactly one commit.
A replay-cache entry is kept until it has expired on both clocks: on the wall clock
(`keep_until`, which survives a restart) and, for ids received since this process started, on
the monotonic clock as well, so stepping the wall clock forward (to prune) and back (to make a
captured command fresh again) cannot re-admit it.
Duty intervals use wall-clock time (they must survive a restart); an engagement is written
with its planned end when it starts and counts in full at once, so a crash charges the whole
planned time against the budget; its real end replaces the planned one when it ends normally.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

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


def read_meta(path: Path, key: str) -> str | None:
    """One value from a store file, opened read-only (the `edgenode audit` command beside a
    running daemon); None when the file or the key is absent or unreadable."""
    if not path.exists():
        return None
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = db.execute("SELECT v FROM meta WHERE k = ?", (key,)).fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        log.warning("effector store: cannot read %s: %s", path, exc)
        return None
    return None if row is None else str(row[0])


def disk_full(exc: BaseException) -> bool:
    """True for the errors a full disk (or quota) raises, from the OS or from SQLite."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or \
            "disk is full" in str(exc)
    return False


class EffectorStore:
    def __init__(self, directory: Path, *, wall_clock: Callable[[], float] = time.time,
                 fsync: Callable[[int], None] = os.fsync):
        directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        self._wall, self._fsync = wall_clock, fsync
        self.path = directory / "effector.db"
        self._lock = threading.Lock()
        # Set when the file was damaged and moved aside: its replay cache, duty ledger and
        # latched fault are unknown, and the effector latches a FAULT (`state_damaged`).
        self.damaged: str | None = None
        try:
            self._open(str(self.path))
        except sqlite3.OperationalError as exc:
            # Not damage: a full disk or failing I/O. The file is left alone; this run keeps
            # its memory in RAM, and the effector latches a FAULT (what the file holds, a
            # latched fault among it, cannot be read).
            self._close_quietly()
            code = "disk_full" if disk_full(exc) or "I/O" in str(exc) else "unusable"
            self.damaged = (f"{self.path} cannot be opened ({code}: {exc}); left in place, "
                            "this run keeps its memory in RAM")
            log.error("effector store: %s", self.damaged)
            self._open(":memory:")
        except (sqlite3.DatabaseError, ValueError, TypeError) as exc:
            self._close_quietly()
            aside = f"{self.path.name}.damaged-{int(time.time())}"
            for suffix in ("", "-wal", "-shm"):
                part = Path(f"{self.path}{suffix}")
                if part.exists():
                    os.replace(part, part.with_name(aside + suffix))
            self.damaged = f"{self.path} ({type(exc).__name__}: {exc}; moved aside to {aside})"
            log.error("effector store: %s is damaged (%s: %s); moved aside to %s, starting "
                      "a new one", self.path, type(exc).__name__, exc, aside)
            self._open(str(self.path))
        self._pruned: float | None = None  # monotonic time of the last prune
        # Ids received by this process -> the monotonic time until which they are kept.
        self._recent: dict[str, float] = {}
        self._dirty = threading.Event()
        self._closed = False
        self.syncs = 0
        self._syncer = threading.Thread(target=self._sync_loop, name="effector-store-sync",
                                        daemon=True)
        self._syncer.start()

    def _close_quietly(self) -> None:
        if getattr(self, "_db", None) is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()

    def _open(self, target: str) -> None:
        self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        check = self._db.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            raise sqlite3.DatabaseError(f"quick_check: {check[:3]}")
        # The duty ledger mirrored in memory (rowid -> [start, end]): an engage reads its
        # budget without a query; the file stays the truth at start-up.
        duty = {int(r): [float(s), float(e)] for r, s, e in self._db.execute(
            "SELECT rowid, start, end FROM duty")}
        if not all(math.isfinite(s) and math.isfinite(e) for s, e in duty.values()):
            raise ValueError("a duty interval is not a finite time")
        self._duty = duty

    # -- durability ----------------------------------------------------------------------
    def _committed(self) -> None:
        self._dirty.set()

    def _sync_loop(self) -> None:
        while True:
            self._dirty.wait()
            self._dirty.clear()
            if self._closed:
                return
            try:
                self.sync()
            except OSError:
                log.exception("effector store: fsync of %s-wal failed", self.path)

    def sync(self) -> None:
        """fsync the WAL: everything committed so far survives a power cut."""
        try:
            fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        except FileNotFoundError:  # closed: the last connection checkpointed and removed it
            return
        try:
            self._fsync(fd)
        finally:
            os.close(fd)
        self.syncs += 1

    # -- replay --------------------------------------------------------------------------
    def seen(self, command_id: str) -> bool:
        with self._lock:
            # The memory first: an id whose commit failed (disk full) is still known here.
            if command_id in self._recent:
                return True
            return self._db.execute("SELECT 1 FROM replay WHERE id = ?",
                                    (command_id,)).fetchone() is not None

    def prune(self, now: float | None = None, *, every_s: float = 60.0) -> None:
        """Drop expired replay entries and day-old duty intervals, at most once per every_s.
        Called from the effector loop outside its lock: never on a command's path."""
        mono = time.monotonic()
        if self._pruned is not None and mono - self._pruned < every_s:
            return
        now = self._wall() if now is None else now
        self._pruned = mono  # a failing prune (disk full) is not retried every loop step
        with self._lock:
            self._recent = {k: until for k, until in self._recent.items() if until >= mono}
            expired = [row[0] for row in self._db.execute(
                "SELECT id FROM replay WHERE keep_until < ?", (now,))]
            # Expired on the wall clock, but still young on the monotonic one: the wall clock
            # was stepped forward; keep them.
            drop = [(k,) for k in expired if k not in self._recent]
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany("DELETE FROM replay WHERE id = ?", drop)
                self._db.execute("DELETE FROM duty WHERE end < ?", (now - DUTY_KEEP_S,))
                self._db.execute("COMMIT")
                self._duty = {r: v for r, v in self._duty.items() if v[1] >= now - DUTY_KEEP_S}
            except BaseException:
                self._rollback()
                raise

    def remember(self, command_id: str, expires_at: float,
                 duty: tuple[float, float] | None = None) -> int | None:
        """Record a command id (and, for an engagement, its planned duty interval) in one
        transaction. Returns the duty row, to be closed with `duty_close`."""
        now = self._wall()
        keep_s = max(expires_at, now) + REPLAY_MARGIN_S - now
        with self._lock:
            row = None
            self._recent[command_id] = time.monotonic() + keep_s
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR IGNORE INTO replay (id, keep_until) VALUES (?, ?)",
                                 (command_id, now + keep_s))
                if duty is not None:
                    cur = self._db.execute("INSERT INTO duty (start, end) VALUES (?, ?)", duty)
                    row = int(cur.lastrowid or 0)
                self._db.execute("COMMIT")
                if duty is not None and row is not None:
                    self._duty[row] = [duty[0], duty[1]]
            except BaseException:
                self._rollback()
                raise
        self._committed()
        return row

    def _rollback(self) -> None:
        """Roll back what is open: SQLite may have ended the transaction itself (a full
        disk), and "cannot rollback" must never hide the error that caused it."""
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                log.exception("effector store: rollback failed")

    # -- duty ledger ---------------------------------------------------------------------
    def duty_close(self, row: int, end: float) -> None:
        with self._lock:
            if row in self._duty:  # memory first: the budget refund holds even on a full disk
                self._duty[row][1] = min(self._duty[row][1], end)
            self._db.execute("UPDATE duty SET end = MIN(end, ?) WHERE rowid = ?", (end, row))
        self._committed()

    def duty_used_s(self, window_s: float, now: float | None = None) -> float:
        """On-time inside the sliding window ending now. An interval still open counts with
        its planned end: the budget is charged up front and refunded by `duty_close`."""
        now = self._wall() if now is None else now
        since = now - window_s
        with self._lock:
            rows = list(self._duty.values())
        return sum(max(0.0, end - max(start, since)) for start, end in rows if end > since)

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
        self._committed()

    def close(self) -> None:
        with self._lock:
            self._db.close()  # the last connection: checkpoints the WAL into the file
        self._closed = True
        self._dirty.set()
        self._syncer.join(timeout=5)
