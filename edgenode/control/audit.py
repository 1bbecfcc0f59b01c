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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgenode.control.envelope import canonical

log = logging.getLogger(__name__)
GENESIS = "0" * 64
SEGMENT_RE = re.compile(r"^audit-(\d{8})\.jsonl$")


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


class AuditLog:
    def __init__(self, directory: Path, *, segment_bytes: int, max_segments: int,
                 fsync: bool = True):
        self.directory = directory
        self.segment_bytes, self.max_segments, self.fsync = segment_bytes, max_segments, fsync
        self._lock = threading.Lock()
        directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        self._seq, self._prev = 0, GENESIS
        anchor = read_anchor(directory)
        if anchor and "hash" in anchor and "seq" in anchor:
            self._seq, self._prev = int(anchor["seq"]) + 1, str(anchor["hash"])
        found = segments(directory)
        self._segment = found[-1][0] if found else 1
        self._path = self._segment_path(self._segment)
        torn = self._recover_tail() if found else 0
        # Unbuffered: a write that fails (disk full) leaves nothing behind in a buffer to be
        # written later under a stale seq; `append` cuts off what it wrote partially.
        self._fh = open(self._path, "ab", buffering=0)  # noqa: SIM115 - kept open
        if torn:
            self.append("recovery", {"torn_bytes": torn, "segment": self._path.name})

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
        for line in reversed(data.splitlines()):
            try:
                record = json.loads(line)
                self._seq, self._prev = int(record["seq"]) + 1, str(record["hash"])
                break
            except (ValueError, KeyError, TypeError):
                log.error("audit: %s holds an unreadable record; `edgenode audit verify` will "
                          "name it", self._path)
        return torn

    def append(self, kind: str, data: dict[str, Any], t: float | None = None, *,
               sync: bool = True) -> dict[str, Any]:
        """Chain and write one record; with sync=False the caller calls `sync` (once for a
        batch) before relying on it."""
        with self._lock:
            record: dict[str, Any] = {"seq": self._seq, "t": round(time.time() if t is None
                                                                   else t, 6),
                                      "kind": kind, "data": data, "prev": self._prev}
            record["hash"] = record_hash(record)
            line = canonical(record) + b"\n"
            if self._fh.tell() and self._fh.tell() + len(line) > self.segment_bytes:
                self._rotate()
            start = self._fh.tell()
            try:
                view = memoryview(line)
                while view:
                    written = self._fh.write(view)
                    view = view[written or 0:]
                if self.fsync and sync:
                    os.fdatasync(self._fh.fileno())
            except OSError:
                # Not written (disk full, I/O error): cut off any part of it, so the chain
                # stays whole and the seq is not used; the caller notes the loss (`gap`).
                try:
                    self._fh.truncate(start)
                    self._fh.seek(start)
                except OSError:
                    log.exception("audit: cannot cut a failed record off %s", self._path)
                raise
            self._seq, self._prev = self._seq + 1, record["hash"]
            return record

    def sync(self) -> None:
        """Put every record appended so far on the disk."""
        with self._lock:
            if self.fsync and not self._fh.closed:
                os.fdatasync(self._fh.fileno())

    def _rotate(self) -> None:
        path = self._segment_path(self._segment + 1)
        new = open(path, "ab", buffering=0)  # noqa: SIM115 - opened before the old closes
        self._fh.close()
        self._segment += 1
        self._path, self._fh = path, new
        try:
            self._drop_oldest()
        except OSError:
            log.exception("audit: could not drop the oldest segment (kept)")

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

    @property
    def ok(self) -> bool:
        return self.broken is None


def verify(directory: Path) -> VerifyReport:
    """Check the chain from the anchor (or genesis) across every segment, in order."""
    found = segments(directory)
    anchor = read_anchor(directory)
    if anchor is not None and "invalid" in anchor:
        return VerifyReport(0, len(found), None, None,
                            f"anchor.json unreadable: {anchor['invalid']}")
    if anchor:
        expect_seq, expect_prev = int(anchor["seq"]) + 1, str(anchor["hash"])
    else:
        expect_seq, expect_prev = 0, GENESIS
    count, first, last, previous_number = 0, None, None, None
    for number, path in found:
        if previous_number is not None and number != previous_number + 1:
            return VerifyReport(count, len(found), first, last,
                                f"segment {number - 1:08d} is missing before {path.name}")
        previous_number = number
        for line_no, line in enumerate(path.read_bytes().splitlines(), start=1):
            where = f"{path.name} line {line_no}"
            try:
                record = json.loads(line)
                seq, prev, stored = record["seq"], record["prev"], record["hash"]
            except (ValueError, KeyError, TypeError):
                return VerifyReport(count, len(found), first, last,
                                    f"{where} (after seq {last}): not a record")
            if record_hash(record) != stored:
                return VerifyReport(count, len(found), first, last,
                                    f"{where} seq {seq}: content does not match its hash")
            if prev != expect_prev:
                return VerifyReport(count, len(found), first, last,
                                    f"{where} seq {seq}: prev does not match the hash of the "
                                    f"record before it (a record was removed or altered)")
            if seq != expect_seq:
                return VerifyReport(count, len(found), first, last,
                                    f"{where} seq {seq}: expected seq {expect_seq}")
            count += 1
            first = seq if first is None else first
            last = seq
            expect_seq, expect_prev = seq + 1, stored
    return VerifyReport(count, len(found), first, last, None)


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
