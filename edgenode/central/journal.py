"""An instance's journal (`--events-log`): the event_id of every event taken, one a line,
written before the broker gets the acknowledgement. A restart reads it back, so what the
broker redelivers is a duplicate, not a second take.

The journal is also where a stand-in (edgenode/central/standin.py) writes the events it
takes from a dead instance's session, and its lock says who holds that session's intake:
the instance itself holds it while it runs; a stand-in takes it (without waiting) before it
connects with the dead instance's client id and lets go once its connection is closed, i.e.
after it handled the last message the broker sent it. The restarted instance waits for the
lock before it handles its first message, then reads what the stand-in wrote: an event in
flight to the stand-in when the broker took the session back comes again, and is a
duplicate. flock(2): one host (or a directory every instance's host locks reliably).

Rotation keeps what de-duplication needs, the last `capacity` ids (the service's
dedup_capacity), in two segments: FILE, appended to, and FILE.1, the one before. When FILE
holds `capacity` ids, the lock holder (the only writer) retires it to FILE.1, dropping the
older one, and starts an empty FILE. So the two hold at most 2 x capacity ids and at least
the last `capacity`, and a (re)start reads only the last `capacity` lines, from the end.

Segments rather than rewriting the kept tail into a new file: a rotation copies nothing
(the intake thread does not stall behind megabytes of copying), and a segment, once
written, is never rewritten, so a reader's offset in it stays valid after it is retired:
a reader that holds it (a restarted instance waiting for its stand-in) reads it to its end
and goes on at the start of the new FILE, every id once. The steps (_rotate) are safe to
be killed between: until the new FILE is in place, FILE is the full segment, and FILE.1 is
missing or names that same file. The new FILE is locked before it gets the name, so the
lock never leaves the journal; whoever then gets the old segment's lock sees that FILE
names another file (st_ino) and follows it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # read backwards this much at a time for a file's last lines
_APPEND = os.O_RDWR | os.O_CREAT | os.O_APPEND


def _ident(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


def _tail(fd: int, n: int) -> tuple[list[str], int]:
    """The last `n` complete lines of a file and the offset just after them; read from the
    end, so however large the file (a journal from before rotation) this reads ~n lines."""
    pos = os.fstat(fd).st_size
    chunks: list[bytes] = []
    newlines = 0
    while pos > 0 and newlines <= n:
        step = min(pos, CHUNK)
        pos -= step
        chunks.append(os.pread(fd, step, pos))
        newlines += chunks[-1].count(b"\n")
    data = b"".join(reversed(chunks))
    end = data.rfind(b"\n") + 1  # a line still being written is left for later
    start = data.find(b"\n") + 1 if pos > 0 else 0  # the first read may start mid-line
    lines = data[start:end].split()
    return [line.decode() for line in lines[max(0, len(lines) - n):]], pos + end


class Journal:
    def __init__(self, path: Path, capacity: int = 500_000):
        self.path = path
        self.capacity = capacity  # ids a segment holds before it is retired
        self.previous = path.with_name(f"{path.name}.1")
        self._next = path.with_name(f"{path.name}.next")
        self._fd: int | None = os.open(path, _APPEND, 0o644)
        self._offset: int | None = None  # read up to here in our segment; None: not yet
        self._lines = 0  # complete lines in our segment (as far as we know: to rotate)
        self._unread: list[str] = []  # read while taking the lock, for read_new
        self.locked = False

    def try_lock(self) -> bool:
        """Without waiting. Once locked, everything written so far has been read (read_new
        returns it) and we are the only writer: our own lines need no reading back."""
        if self.locked:
            return True
        assert self._fd is not None
        while True:
            segment = _ident(os.fstat(self._fd))
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            self._unread += self._read()
            if _ident(os.fstat(self._fd)) == segment:
                break
            # We locked a segment its holder had retired (its lock went with the close):
            # _read moved us on to the current one, whose lock is the journal's.
        assert self._offset is not None
        if os.fstat(self._fd).st_size > self._offset:
            # A writer killed mid-line: end that line, or our first id would join it.
            os.write(self._fd, b"\n")
            self._offset = os.fstat(self._fd).st_size
        self.locked = True
        return True

    def lock(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.try_lock():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def read_new(self) -> list[str]:
        """The ids written by others since the last call (the first call: the last
        `capacity`), oldest first; a line still being written is left for the next call."""
        assert self._fd is not None
        ids, self._unread = self._unread + self._read(), []
        return ids

    def append(self, event_id: str) -> None:
        if self._fd is None:
            return
        line = f"{event_id}\n".encode()
        os.write(self._fd, line)
        if not self.locked:
            return  # not ours to rotate: an instance that gave up waiting for the lock
        assert self._offset is not None
        self._offset += len(line)
        self._lines += 1
        if self._lines >= self.capacity:
            self._rotate()

    def close(self) -> None:
        """Closing the file lets go of the lock."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self.locked = False

    # -- reading -------------------------------------------------------------------------
    def _read(self) -> list[str]:
        """What we have not read yet, following rotations to the segment FILE names now."""
        assert self._fd is not None
        ids = self._read_start() if self._offset is None else []
        while True:
            try:
                # Looked at before reading: a segment is retired only after its last line.
                named = _ident(os.stat(self.path))
            except FileNotFoundError:  # removed by hand: nothing to follow
                return ids + self._read_segment()
            ids += self._read_segment()
            if named == _ident(os.fstat(self._fd)):
                return ids
            ids += self._follow()

    def _read_start(self) -> list[str]:
        """The last `capacity` ids: FILE's last lines, then FILE.1's to make up the number.
        FILE was opened first, so FILE.1 is at worst that same segment, retired meanwhile
        (skipped), never one newer than it."""
        assert self._fd is not None
        ids, self._offset = _tail(self._fd, self.capacity)
        self._lines = len(ids)
        if len(ids) >= self.capacity:
            return ids
        return self._previous_tail(self.capacity - len(ids), self._fd) + ids

    def _read_segment(self) -> list[str]:
        assert self._fd is not None and self._offset is not None
        data = os.pread(self._fd, os.fstat(self._fd).st_size - self._offset, self._offset)
        end = data.rfind(b"\n") + 1
        self._offset += end
        lines = data[:end].split()
        self._lines += len(lines)
        return [line.decode() for line in lines]

    def _follow(self) -> list[str]:
        """Our segment was retired (and we read it to its end): go on at the start of the
        one FILE names. If FILE.1 is not ours either, ours was dropped too (`capacity`
        ids were written since our last read): FILE.1's ids come first."""
        assert self._fd is not None
        fd = os.open(self.path, _APPEND)  # before FILE.1 is looked at, as in _read_start
        ids = self._previous_tail(self.capacity, self._fd, fd)
        os.close(self._fd)
        self._fd, self._offset, self._lines = fd, 0, 0
        return ids

    def _previous_tail(self, n: int, *known: int) -> list[str]:
        """FILE.1's last `n` lines, unless it is one of the segments open as `known`."""
        try:
            fd = os.open(self.previous, os.O_RDONLY)
        except FileNotFoundError:
            return []
        try:
            if _ident(os.fstat(fd)) in {_ident(os.fstat(k)) for k in known}:
                return []
            return _tail(fd, n)[0]
        finally:
            os.close(fd)

    # -- rotation (the lock holder only) -------------------------------------------------
    def _rotate(self) -> None:
        assert self._fd is not None
        new = os.open(self._next, _APPEND | os.O_TRUNC, 0o644)  # truncates a killed one's
        try:
            fcntl.flock(new, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.fsync(self._fd)  # the full segment is on disk before the older one goes
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.previous)
            os.link(self.path, self.previous)
            os.replace(self._next, self.path)
        except OSError as e:
            os.close(new)
            self._lines = 0  # try again after another `capacity` ids
            log.error("central: journal %s not rotated (%s): it grows until a rotation "
                      "succeeds", self.path, e)
            return
        os.close(self._fd)  # lets go of the retired segment's lock
        self._fd, self._offset, self._lines = new, 0, 0
        try:
            dir_fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)  # the new names, for a power cut
            finally:
                os.close(dir_fd)
        except OSError as e:  # some file systems cannot sync a directory: not fatal
            log.warning("central: journal %s: directory not synced after rotation (%s)",
                        self.path, e)
        log.info("central: journal %s rotated: the last %d ids in %s", self.path,
                 self.capacity, self.previous)
