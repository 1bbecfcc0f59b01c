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

Speed without weaker durability: appends that arrive together commit in one transaction
(`append_many`; the link's group commit, edgenode/link/writer.py, batches them); rows appended
by this process are also kept in memory until claimed, so the pump sends live rows without
reading them back; in-flight rows carry their size, so PUBACK deletions are one constant
statement per batch without a read.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

ROW_OVERHEAD_BYTES = 64  # rough per-row cost in the file beside the payload
# Appended rows kept in memory for the pump (more wait in the file only): a burst of a few
# thousand events (~1.5 KB each) is sent without reading it back.
FRESH_MAX = 4096
_INSERT = ("INSERT INTO outbox (topic, payload, stream, session, seq, priority, created)"
           " VALUES (?, ?, ?, ?, ?, ?, ?)")
_DELETE = "DELETE FROM outbox WHERE id IN (SELECT value FROM json_each(?))"
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


@dataclass(frozen=True)
class Record:
    """One record to append (see `Outbox.append`)."""

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
        # _lock: the connection (held across SQL). _mem: the in-memory state (inflight,
        # _fresh, counters), held briefly, so the pump claims fresh rows while an append
        # waits on the disk. Order: _lock before _mem.
        self._lock = threading.Lock()
        self._mem = threading.Lock()
        # row id -> stored size, for rows handed to the client and awaiting PUBACK
        self.inflight: dict[int, int] = {}
        self.reset_corrupt = 0
        self._db = self._open()
        rows, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox").fetchone()
        self._rows, self._bytes = int(rows), int(size) + ROW_OVERHEAD_BYTES * int(rows)
        # Every row with id >= _fresh_from that is not in flight is in _fresh (id order), so
        # a claim above _fresh_from needs no read. Anything unusual just resets it: the file
        # is always the truth.
        self._fresh: dict[int, Row] = {}
        self._keeping = True  # False while the broker is away: see keep_fresh
        self._top_id = int(self._db.execute(
            "SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0])
        self._fresh_from = self._top_id + 1

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
    def next_session(self, floor: int = 0) -> int:
        """Persist and return one more than the larger of the stored session number and
        `floor` (1 on a new outbox; edgenode/link/session.py keeps a second copy)."""
        with self._lock, self._db:
            row = self._db.execute("SELECT value FROM meta WHERE key='session'").fetchone()
            try:
                stored = int(row[0]) if row else 0
            except ValueError:
                log.error("link: outbox %s: session %r unreadable", self.path, row[0])
                stored = 0
            session = max(stored, floor) + 1
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('session', ?)",
                             (str(session),))
        return session

    # -- rows ---------------------------------------------------------------------------
    def append(self, topic: str, payload: bytes, *, stream: str, session: int,
               seq: int | None, priority: int, created: float) -> list[Dropped]:
        """Store one record (committed on return); returns what the size cap dropped."""
        return self.append_many([Record(topic, payload, stream, session, seq, priority,
                                        created)])

    def append_many(self, records: Sequence[Record]) -> list[Dropped]:
        """Store records in one transaction (all committed on return, or none: an error
        raises and stores nothing); returns what the size cap dropped."""
        if not records:
            return []
        with self._lock:
            added: list[Row] = []
            with self._db:
                cursor = self._db.cursor()
                for r in records:
                    cursor.execute(_INSERT, (r.topic, r.payload, r.stream, r.session, r.seq,
                                             r.priority, r.created))
                    added.append(Row(int(cursor.lastrowid or 0), r.topic, r.payload, r.stream,
                                     r.session, r.seq, r.priority, r.created))
            with self._mem:
                return self._appended_locked(added)

    def _appended_locked(self, added: list[Row]) -> list[Dropped]:
        self._top_id = max(self._top_id, added[-1].id)
        for row in added:
            self._rows += 1
            self._bytes += len(row.payload) + ROW_OVERHEAD_BYTES
            if row.id >= self._fresh_from:
                self._fresh[row.id] = row
        while len(self._fresh) > FRESH_MAX:  # the link is away: the rest waits in the file
            oldest = next(iter(self._fresh))
            del self._fresh[oldest]
            self._fresh_from = oldest + 1
        if self._bytes <= self.max_bytes:
            return []
        return self._shrink_locked()

    def _reset_fresh_locked(self) -> None:
        self._fresh.clear()
        self._fresh_from = self._top_id + 1 if self._keeping else 2**62

    def keep_fresh(self, keep: bool) -> None:
        """Keep appended rows in memory for the pump (while the broker is there) or not
        (while it is away: nothing is sent, so the backlog waits in the file only and memory
        does not grow with an outage; the pump reads it back after the reconnect)."""
        with self._mem:
            self._keeping = keep
            self._reset_fresh_locked()

    @property
    def rows_in_memory(self) -> int:
        return len(self._fresh)

    def _shrink_locked(self) -> list[Dropped]:
        # Free down to 90 % so the cap does not bite again on every append.
        target = int(self.max_bytes * 0.9)
        drops: dict[tuple[str, int], Dropped] = {}
        victims: list[tuple[int, int]] = []
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
                    victims.append((row_id, size + ROW_OVERHEAD_BYTES))
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
        with self._lock, self._mem:
            rows = self._db.execute(
                "SELECT id, LENGTH(payload), stream, session, seq FROM outbox"
                " WHERE created < ? AND priority < 3 ORDER BY id", (cutoff,)).fetchall()
            drops: dict[tuple[str, int], Dropped] = {}
            victims = []
            for row_id, size, stream, session, seq in rows:
                if row_id in self.inflight:
                    continue
                victims.append((row_id, size + ROW_OVERHEAD_BYTES))
                drop = drops.setdefault((stream, session),
                                        Dropped(stream, session, "outbox_age_cap"))
                if seq is not None:
                    drop.seqs.append(seq)
            self._delete_locked(victims)
        return list(drops.values())

    def claim(self, after_id: int, *, upto_id: int | None = None, limit: int = 256) -> list[Row]:
        """Rows with after_id < id (<= upto_id), oldest first, not yet in flight; they are
        marked in flight (no cap drops them) until `delete` or `release`."""
        with self._mem:
            if after_id + 1 >= self._fresh_from:
                out = []
                for row in self._fresh.values():  # id order, none in flight
                    if row.id <= after_id:
                        continue
                    if (upto_id is not None and row.id > upto_id) or len(out) >= limit:
                        break
                    out.append(row)
                return self._claimed_locked(out)
        query = ("SELECT id, topic, payload, stream, session, seq, priority, created"
                 " FROM outbox WHERE id > ? AND id <= ? ORDER BY id LIMIT ?")
        with self._lock:
            # Rows still in flight from before a reconnect lie in the backlog's range: read
            # enough to fill `limit` past them (an empty answer means the range is done).
            rows = self._db.execute(
                query, (after_id, upto_id if upto_id is not None else 2**62,
                        limit + len(self.inflight))).fetchall()
            with self._mem:
                return self._claimed_locked(
                    [Row(*r) for r in rows if r[0] not in self.inflight][:limit])

    def _claimed_locked(self, out: list[Row]) -> list[Row]:
        for row in out:
            self.inflight[row.id] = len(row.payload) + ROW_OVERHEAD_BYTES
            self._fresh.pop(row.id, None)
        return out

    def release(self, ids: Iterable[int]) -> None:
        """Forget that rows are in flight (the client lost them: they will be claimed again)."""
        with self._mem:
            released = [self.inflight.pop(row_id, None) for row_id in ids]
            if any(size is not None for size in released):
                self._reset_fresh_locked()  # released rows are back in the file only

    def max_id(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0])

    def delete(self, ids: Iterable[int]) -> None:
        """Remove rows (acknowledged, or refused for good), in one statement."""
        ids = list(ids)
        if not ids:
            return
        with self._lock, self._mem:
            known = [(i, self.inflight[i]) for i in ids if i in self.inflight]
            unknown = [i for i in ids if i not in self.inflight]
            if unknown:  # not claimed by this process: read their sizes
                marks = ",".join("?" * len(unknown))
                known += self._db.execute(
                    f"SELECT id, LENGTH(payload) + {ROW_OVERHEAD_BYTES} FROM outbox"
                    f" WHERE id IN ({marks})", unknown).fetchall()
            self._delete_locked(known)

    def _delete_locked(self, victims: list[tuple[int, int]]) -> None:
        """Delete (id, stored size) rows that exist, in one statement and transaction."""
        if not victims:
            return
        ids = [row_id for row_id, _ in victims]
        with self._db:
            self._db.execute(_DELETE, (json.dumps(ids),))
        self._rows -= len(victims)
        self._bytes -= sum(size for _, size in victims)
        for row_id in ids:
            self.inflight.pop(row_id, None)
            self._fresh.pop(row_id, None)

    @property
    def backlog(self) -> int:
        return self._rows

    @property
    def backlog_bytes(self) -> int:
        return self._bytes

    def close(self) -> None:
        with self._lock:
            self._db.close()
