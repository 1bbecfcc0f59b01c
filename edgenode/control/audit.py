"""Append-only, hash-chained audit log in rotating segments under `<state_dir>/audit/`.

Each record is one JSON line:

    {"seq": n, "t": unix s, "kind": "command"|"result"|"state"|"alarm"|"junk"|...,
     "data": {...}, "prev": hex sha256 of the previous record, "hash": hex sha256}

`hash` is the SHA-256 of the record without `hash` in the canonical encoding of
`edgenode.control.envelope` (sorted keys, no whitespace, UTF-8). The first record ever has
`prev` = 64 zeros and `seq` 0. Segments are `audit-00000001.jsonl`, `audit-00000002.jsonl`...;
a segment's first record chains to the previous segment's last one. A segment is closed when it
reaches `segment_bytes`; when more than `max_segments` exist the oldest is deleted after its last
`seq` and `hash` are written to `anchor.json`, so the remaining chain is still verifiable from
that anchor and the card never fills. A record torn by a power cut (a last line without its
newline) is cut off at start-up and a `recovery` record saying how many bytes were lost is
appended, so the chain stays whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgenode.control.envelope import canonical

log = logging.getLogger(__name__)
GENESIS = "0" * 64
SEGMENT_RE = re.compile(r"^audit-(\d{8})\.jsonl$")
HASH_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_SEQ = 2**63


def record_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def segments(directory: Path) -> list[tuple[int, Path]]:
    found = []
    if directory.is_dir():
        for path in directory.iterdir():
            match = SEGMENT_RE.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
    return sorted(found)


def read_anchor(directory: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((directory / "anchor.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return {"invalid": str(exc)}
    return data if isinstance(data, dict) else {"invalid": "not an object"}


def chain_head(seq: Any, digest: Any) -> tuple[int, str] | None:
    """(seq, hash) when both are plausible (an integer seq, a sha256 hex), else None."""
    if (isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq < MAX_SEQ
            and isinstance(digest, str) and HASH_RE.match(digest)):
        return seq, digest
    return None


def parse_head(text: str | None) -> tuple[int, str] | None:
    """A stored chain head ({"seq": n, "hash": hex}) or None when absent or not valid."""
    if text is None:
        return None
    try:
        data = json.loads(text)
        return chain_head(data.get("seq"), data.get("hash"))
    except (ValueError, AttributeError, RecursionError):
        return None


def move_aside(path: Path, why: str) -> Path:
    """Rename a damaged state file out of the way (kept for the investigation)."""
    aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
    os.replace(path, aside)
    log.error("%s is damaged (%s); moved aside to %s", path, why, aside.name)
    return aside


class AuditLog:
    """The writer. `known_head` is the (seq, hash) of the last record the node knows it wrote
    (kept outside this directory, in the effector store): a log that ends before it was
    truncated, which is recorded (`recovery` with `truncated`), and seqs continue after the
    known head, never reused. `damaged` names state files found damaged and moved aside."""

    def __init__(self, directory: Path, *, segment_bytes: int, max_segments: int,
                 fsync: bool = True, known_head: tuple[int, str] | None = None,
                 on_anchor: Callable[[int, str], None] | None = None):
        self.directory = directory
        # Told each anchor written, so the node keeps its own copy outside this directory.
        self._on_anchor = on_anchor or (lambda _seq, _hash: None)
        self.segment_bytes, self.max_segments, self.fsync = segment_bytes, max_segments, fsync
        self._lock = threading.Lock()
        self.damaged: list[str] = []
        directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        self._seq, self._prev = 0, GENESIS
        anchor = read_anchor(directory)
        if anchor is not None:
            head = chain_head(anchor.get("seq"), anchor.get("hash"))
            if head is None:
                self._damaged(directory / "anchor.json", anchor.get("invalid", "no seq/hash"))
            else:
                self._seq, self._prev = head[0] + 1, head[1]
        found = segments(directory)
        self._segment = found[-1][0] if found else 1
        self._path = self._segment_path(self._segment)
        torn = self._recover_tail() if found else 0
        # Unbuffered: a write that fails (disk full) leaves nothing behind in a buffer to be
        # written later under a stale seq; `append` cuts off what it wrote partially.
        self._fh = open(self._path, "ab", buffering=0)  # noqa: SIM115 - kept open
        self._notes: list[dict[str, Any]] = []
        if torn:
            self.append("recovery", {"torn_bytes": torn, "segment": self._path.name})
        if known_head is not None and known_head[0] >= self._seq:
            missing = {"first_seq": self._seq, "last_seq": known_head[0],
                       "last_hash": known_head[1]}
            log.error("audit: %s ends at seq %d but the node wrote up to seq %d: records were "
                      "removed; seqs continue after them", directory, self._seq - 1,
                      known_head[0])
            self._seq = known_head[0] + 1
            self.append("recovery", {"truncated": missing, "segment": self._path.name})

    def _damaged(self, path: Path, why: str) -> None:
        try:
            aside = move_aside(path, why)
            self.damaged.append(f"{path} ({why}; moved aside to {aside.name})")
        except OSError as exc:
            self.damaged.append(f"{path} ({why}; could not move it aside: {exc})")

    def _segment_path(self, number: int) -> Path:
        return self.directory / f"audit-{number:08d}.jsonl"

    def _recover_tail(self) -> int:
        """Find the chain head in the last segment; cut off a torn final line."""
        data = self._path.read_bytes()
        torn = 0
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            torn = len(data) - keep
            with open(self._path, "r+b") as fh:
                fh.truncate(keep)
            data = data[:keep]
            log.error("audit: %s ended in a torn record (%d bytes); cut off", self._path, torn)
        lines = data.splitlines()
        for line_no in range(len(lines), 0, -1):
            try:
                record = json.loads(lines[line_no - 1])
                head = chain_head(record.get("seq"), record.get("hash"))
            except (ValueError, AttributeError, RecursionError):
                head = None
            if head is not None and head[0] >= self._seq:
                self._seq, self._prev = head[0] + 1, head[1]
                break
            # The chain continues from the last sound record; verify names this one.
            why = f"{self._path} line {line_no}: not a sound record"
            log.error("audit: %s; the chain continues from the record before it", why)
            self.damaged.append(why)
        return torn

    def append(self, kind: str, data: dict[str, Any], t: float | None = None, *,
               sync: bool = True) -> dict[str, Any]:
        """Chain and write one record; with sync=False the caller calls `sync` (once for a
        batch) before relying on it. A `segment` record written first when the record opened
        a new segment is kept for `take_notes`."""
        with self._lock:
            t = round(time.time() if t is None else t, 6)
            record, line = self._build(kind, data, t)
            if self._fh.tell() and self._fh.tell() + len(line) > self.segment_bytes:
                closed = self._rotate()
                segment, segment_line = self._build("segment", closed, t)
                self._write(segment_line, sync=False)
                self._seq, self._prev = self._seq + 1, segment["hash"]
                self._notes.append(segment)
                record, line = self._build(kind, data, t)
            self._write(line, sync=sync)
            self._seq, self._prev = self._seq + 1, record["hash"]
            return record

    def take_notes(self) -> list[dict[str, Any]]:
        """Records the log wrote by itself (`segment`) since the last call, in order."""
        with self._lock:
            notes, self._notes = self._notes, []
            return notes

    def _build(self, kind: str, data: dict[str, Any], t: float) -> tuple[dict[str, Any], bytes]:
        record: dict[str, Any] = {"seq": self._seq, "t": t, "kind": kind, "data": data,
                                  "prev": self._prev}
        record["hash"] = record_hash(record)
        return record, canonical(record) + b"\n"

    def _write(self, line: bytes, *, sync: bool) -> None:
        start = self._fh.tell()
        try:
            view = memoryview(line)
            while view:
                written = self._fh.write(view)
                view = view[written or 0:]
            if self.fsync and sync:
                os.fdatasync(self._fh.fileno())
        except OSError:
            # Not written (disk full, I/O error): cut off any part of it, so the chain stays
            # whole and the seq is not used; the caller notes the loss (`gap`).
            try:
                self._fh.truncate(start)
                self._fh.seek(start)
            except OSError:
                log.exception("audit: cannot cut a failed record off %s", self._path)
            raise

    def sync(self) -> None:
        """Put every record appended so far on the disk."""
        with self._lock:
            if self.fsync and not self._fh.closed:
                os.fdatasync(self._fh.fileno())

    def _rotate(self) -> dict[str, Any]:
        """Close the segment, open the next; returns what the `segment` record says of the
        closed one (its last seq and hash, and its file's digest), which is published like
        every record, so the control room can later prove the file complete and unaltered."""
        path = self._segment_path(self._segment + 1)
        new = open(path, "ab", buffering=0)  # noqa: SIM115 - opened before the old closes
        self._fh.close()
        content = self._path.read_bytes()
        closed = {"closed": self._path.name, "last_seq": self._seq - 1,
                  "last_hash": self._prev, "bytes": len(content),
                  "sha256": hashlib.sha256(content).hexdigest()}
        self._segment += 1
        self._path, self._fh = path, new
        try:
            self._drop_oldest()
        except OSError:
            log.exception("audit: could not drop the oldest segment (kept)")
        return closed

    def _drop_oldest(self) -> None:
        found = segments(self.directory)
        while len(found) > self.max_segments:
            number, oldest = found.pop(0)
            last = _last_record(oldest)
            if last is not None:
                anchor = {"segment": oldest.name, "seq": last["seq"], "hash": last["hash"],
                          "t": last["t"], "dropped_at": time.time()}
                tmp = self.directory / "anchor.tmp"
                tmp.write_text(json.dumps(anchor), encoding="utf-8")
                os.replace(tmp, self.directory / "anchor.json")
                self._on_anchor(last["seq"], last["hash"])
            oldest.unlink()
            log.info("audit: dropped %s (segment %d) to bound the log; anchor kept",
                     oldest.name, number)

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                try:
                    os.fsync(self._fh.fileno())
                finally:
                    self._fh.close()


def _last_record(path: Path) -> dict[str, Any] | None:
    for line in reversed(path.read_bytes().splitlines()):
        try:
            record = json.loads(line)
            if isinstance(record, dict) and "hash" in record:
                return record
        except ValueError:
            continue
    return None


@dataclass
class VerifyReport:
    records: int
    segments: int
    first_seq: int | None
    last_seq: int | None
    broken: str | None  # names the first broken record, None when the chain is whole
    # Records known to have existed and now gone: a truncation the node noted on restart, or
    # a log ending before the last seq the node knows it wrote.
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.broken is None and not self.missing


def _truncation(record: dict[str, Any], expect_seq: int) -> tuple[int, int] | None:
    """The seq range a `recovery` record says was removed, when it starts where expected."""
    data = record.get("data")
    cut = data.get("truncated") if isinstance(data, dict) else None
    if (record.get("kind") == "recovery" and isinstance(cut, dict)
            and cut.get("first_seq") == expect_seq and isinstance(cut.get("last_seq"), int)
            and record.get("seq") == cut["last_seq"] + 1):
        return expect_seq, cut["last_seq"]
    return None


def verify(directory: Path, known_head: tuple[int, str] | None = None, *,
           node_anchor: tuple[int, str] | None = None,
           check_anchor: bool = False) -> VerifyReport:
    """Check the chain from the anchor (or genesis) across every segment, in order; with
    `known_head` (the last seq and hash the node knows it wrote) also that nothing is missing
    from the tail; with `check_anchor`, that anchor.json is the one the node wrote last
    (`node_anchor`, None when it never dropped a segment): a forged anchor hides removed
    head segments."""
    found = segments(directory)
    anchor = read_anchor(directory)
    missing: list[str] = []
    if anchor is not None:
        head = chain_head(anchor.get("seq"), anchor.get("hash"))
        if head is None:
            return VerifyReport(0, len(found), None, None, "anchor.json unreadable: "
                                f"{anchor.get('invalid', 'no valid seq and hash')}")
        expect_seq, expect_prev = head[0] + 1, head[1]
        if check_anchor and head != node_anchor:
            written = "none" if node_anchor is None else f"seq {node_anchor[0]}"
            missing.append(f"anchor.json (seq {head[0]}) is not the anchor the node wrote "
                           f"({written}): records before it were removed")
    else:
        expect_seq, expect_prev = 0, GENESIS
        if check_anchor and node_anchor is not None:
            missing.append(f"anchor.json is gone (the node wrote one at seq {node_anchor[0]})")
    count, first, last, previous_number = 0, None, None, None

    def report(broken: str | None) -> VerifyReport:
        return VerifyReport(count, len(found), first, last, broken, missing)

    for number, path in found:
        if previous_number is not None and number != previous_number + 1:
            return report(f"segment {number - 1:08d} is missing before {path.name}")
        previous_number = number
        for line_no, line in enumerate(path.read_bytes().splitlines(), start=1):
            where = f"{path.name} line {line_no}"
            try:
                record = json.loads(line)
                seq, prev, stored = record["seq"], record["prev"], record["hash"]
                sound = record_hash(record) == stored
                # The node writes each record in canonical form: anything else (a duplicate
                # key, another encoding of the same values) was not written by it.
                canonical_line = canonical(record) == line
            except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
                return report(f"{where} (after seq {last}): not a record")
            if not sound:
                return report(f"{where} seq {seq}: content does not match its hash")
            if not canonical_line:
                return report(f"{where} seq {seq}: not in the canonical form the node writes "
                              "(a duplicate key or a re-encoded record)")
            if prev != expect_prev:
                return report(f"{where} seq {seq}: prev does not match the hash of the record "
                              f"before it (a record was removed or altered)")
            if seq != expect_seq:
                cut = _truncation(record, expect_seq)
                if cut is None:
                    return report(f"{where} seq {seq}: expected seq {expect_seq}")
                missing.append(f"seq {cut[0]}..{cut[1]} removed before {where} (the node "
                               "found its log truncated on restart)")
            count += 1
            first = seq if first is None else first
            last = seq
            expect_seq, expect_prev = seq + 1, stored
    if known_head is not None and known_head[0] >= expect_seq:
        missing.append(f"seq {expect_seq}..{known_head[0]} removed from the tail (the node "
                       f"wrote up to seq {known_head[0]})")
    return report(None)


def export(directory: Path, start: float | None = None,
           end: float | None = None) -> Iterator[dict[str, Any]]:
    """Records with start <= t < end, oldest first (unreadable lines are skipped)."""
    for _, path in segments(directory):
        for line in path.read_bytes().splitlines():
            try:
                record = json.loads(line)
                t = float(record["t"])
            except (ValueError, KeyError, TypeError):
                continue
            if (start is None or t >= start) and (end is None or t < end):
                yield record
