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
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path


class Journal:
    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        self._offset = 0  # read up to here (always just after a newline)
        self.locked = False

    def try_lock(self) -> bool:
        if self.locked:
            return True
        assert self._fd is not None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
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
        """The ids appended (by anyone) since the last call; a line still being written is
        left for the next call."""
        assert self._fd is not None
        data = os.pread(self._fd, os.fstat(self._fd).st_size - self._offset, self._offset)
        end = data.rfind(b"\n") + 1
        self._offset += end
        return [line.decode() for line in data[:end].split() if line]

    def append(self, event_id: str) -> None:
        if self._fd is not None:
            os.write(self._fd, f"{event_id}\n".encode())

    def close(self) -> None:
        """Closing the file lets go of the lock."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self.locked = False
