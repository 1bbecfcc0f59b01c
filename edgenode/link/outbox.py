"""The durable outbox: an SQLite file (WAL) holding every event and audit record until the
broker has acknowledged it.

Durability (docs/mqtt.md): `journal_mode=WAL`, `synchronous=NORMAL`. A committed append
survives a crash of the process (kill -9) because the WAL is written before `append` returns;
a power cut may lose the appends committed since the last WAL sync (at most one checkpoint's
worth, normally well under a second), never the database's consistency.

Bounds: a size cap (payload bytes plus a per-row overhead) and an age cap. When one bites, rows
go lowest priority first (track updates, then new/end, then audit), oldest first within a
priority; gap records are never dropped. Rows being published (in flight) are never dropped:
their PUBACK may already be on its way. Every drop is returned as `Dropped` so that the link
publishes a gap record for it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

ROW_OVERHEAD_BYTES = 64  # rough per-row cost in the file beside the payload
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    stream TEXT NOT NULL,
    session INTEGER NOT NULL,
    seq INTEGER,
    priority INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_by_priority ON outbox (priority, id);
CREATE INDEX IF NOT EXISTS outbox_by_created ON outbox (created);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Row:
    id: int
    topic: str
    payload: bytes
    stream: str
    session: int
    seq: int | None
    priority: int
    created: float


@dataclass
class Dropped:
    """Rows of one stream and session removed for one reason."""

    stream: str
    session: int
    reason: str
    seqs: list[int] = field(default_factory=list)


class Outbox:
    def __init__(self, path: Path, *, max_bytes: int, max_age_s: float):
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self.inflight: set[int] = set()  # row ids handed to the client, awaiting PUBACK
        self.reset_corrupt = 0
        self._db = self._open()
        rows, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()
        self._rows, self._bytes = int(rows), int(size) + ROW_OVERHEAD_BYTES * int(rows)

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            # A power cut on an SD card can leave a broken file: keep it for forensics and
            # start afresh rather than refuse to run (the loss is logged and counted).
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.error("link: outbox %s unreadable (%s); moved to %s, starting empty",
                      self.path, exc, aside)
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    os.replace(src, f"{aside}{suffix}")
            self.reset_corrupt += 1
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, timeout=5)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            db.close()
            raise sqlite3.DatabaseError("quick_check failed")
        db.executescript(_SCHEMA)
        return db

    # -- meta ---------------------------------------------------------------------------
    def next_session(self) -> int:
        """Increment and return the persisted session number (1 on a new outbox)."""
        with self._lock, self._db:
            row = self._db.execute("SELECT value FROM meta WHERE key='session'").fetchone()
            session = (int(row[0]) if row else 0) + 1
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('session', ?)",
                             (str(session),))
        return session

    # -- rows ---------------------------------------------------------------------------
    def append(self, topic: str, payload: bytes, *, stream: str, session: int,
               seq: int | None, priority: int, created: float) -> list[Dropped]:
        """Store one record (committed on return); returns what the size cap dropped."""
        with self._lock:
            with self._db:
                self._db.execute(
                    "INSERT INTO outbox (topic, payload, stream, session, seq, priority, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (topic, payload, stream, session, seq, priority, created))
            self._rows += 1
            self._bytes += len(payload) + ROW_OVERHEAD_BYTES
            if self._bytes <= self.max_bytes:
                return []
            return self._shrink_locked()

    def _shrink_locked(self) -> list[Dropped]:
        # Free down to 90 % so the cap does not bite again on every append.
        target = int(self.max_bytes * 0.9)
        drops: dict[tuple[str, int], Dropped] = {}
        victims: list[int] = []
        freed = 0
        for priority in (0, 1, 2):
            last_id = 0
            while self._bytes - freed > target:
                batch = self._db.execute(
                    "SELECT id, LENGTH(payload), stream, session, seq FROM outbox"
                    " WHERE priority = ? AND id > ? ORDER BY id LIMIT 512",
                    (priority, last_id)).fetchall()
                if not batch:
                    break
                for row_id, size, stream, session, seq in batch:
                    last_id = row_id
                    if row_id in self.inflight:
                        continue
                    victims.append(row_id)
                    freed += size + ROW_OVERHEAD_BYTES
                    drop = drops.setdefault((stream, session),
                                            Dropped(stream, session, "outbox_size_cap"))
                    if seq is not None:
                        drop.seqs.append(seq)
                    if self._bytes - freed <= target:
                        break
            if self._bytes - freed <= target:
                break
        self._delete_locked(victims)
        return list(drops.values())

    def expire(self, now: float | None = None) -> list[Dropped]:
        """Drop every record (gap records excepted) older than the age cap."""
        cutoff = (time.time() if now is None else now) - self.max_age_s
        with self._lock:
            rows = self._db.execute(
                "SELECT id, stream, session, seq FROM outbox WHERE created < ? AND priority < 3"
                " ORDER BY id", (cutoff,)).fetchall()
            drops: dict[tuple[str, int], Dropped] = {}
            victims = []
            for row_id, stream, session, seq in rows:
                if row_id in self.inflight:
                    continue
                victims.append(row_id)
                drop = drops.setdefault((stream, session),
                                        Dropped(stream, session, "outbox_age_cap"))
                if seq is not None:
                    drop.seqs.append(seq)
            self._delete_locked(victims)
        return list(drops.values())

    def claim(self, after_id: int, *, upto_id: int | None = None, limit: int = 256) -> list[Row]:
        """Rows with after_id < id (<= upto_id), oldest first, not yet in flight; they are
        marked in flight (no cap drops them) until `delete` or `release`."""
        query = ("SELECT id, topic, payload, stream, session, seq, priority, created FROM outbox"
                 " WHERE id > ?")
        args: list[object] = [after_id]
        if upto_id is not None:
            query += " AND id <= ?"
            args.append(upto_id)
        query += " ORDER BY id LIMIT ?"
        args.append(limit + len(self.inflight))
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
            out = [Row(*r) for r in rows if r[0] not in self.inflight][:limit]
            self.inflight.update(row.id for row in out)
        return out

    def release(self, ids: Iterable[int]) -> None:
        """Forget that rows are in flight (the client lost them: they will be claimed again)."""
        with self._lock:
            self.inflight.difference_update(ids)

    def max_id(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0])

    def delete(self, ids: Iterable[int]) -> None:
        """Remove acknowledged rows."""
        ids = list(ids)
        if ids:
            with self._lock:
                self._delete_locked(ids)

    def _delete_locked(self, ids: list[int]) -> None:
        if not ids:
            return
        sizes = 0
        with self._db:
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                row = self._db.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
                    f" WHERE id IN ({marks})", chunk).fetchone()
                self._db.execute(f"DELETE FROM outbox WHERE id IN ({marks})", chunk)
                self._rows -= int(row[0])
                sizes += int(row[1]) + ROW_OVERHEAD_BYTES * int(row[0])
        self._bytes -= sizes
        self.inflight.difference_update(ids)

    @property
    def backlog(self) -> int:
        return self._rows

    @property
    def backlog_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        with self._lock:
            self._db.close()
