"""The session number: grows on every daemon start, and keeps growing when the outbox file
is lost (issue 22.13: an outbox reset started again at 1, so (session, seq) pairs repeated).

It is kept in two places, the outbox's meta table and a small file of its own in the state
directory; the next session is one more than the larger. When neither can be trusted (the
outbox was reset and the file is missing or unreadable) the next one is at least the Unix time
in seconds, which is above every session a node counting from 1 will reach, and grows with the
clock.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from edgenode.link.outbox import Outbox

log = logging.getLogger(__name__)

SESSION_FILE = "link-session"


def _read(path: Path) -> int | None:
    try:
        value = int(path.read_text().strip())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.error("link: session file %s unreadable (%s); sessions continue from the clock",
                  path, exc)
        return None
    if not 1 <= value < 2**53:
        log.error("link: session file %s holds %d, outside 1..2^53; sessions continue from "
                  "the clock", path, value)
        return None
    return value


def _write(path: Path, session: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(f"{session}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def next_session(state_dir: Path, outbox: Outbox) -> int:
    """Take the next session number and persist it in both places."""
    path = state_dir / SESSION_FILE
    kept = _read(path)
    floor = kept or 0
    if kept is None and (outbox.reset_corrupt or path.exists()):
        floor = int(time.time())
    session = outbox.next_session(floor)
    try:
        _write(path, session)
    except OSError as exc:  # the outbox holds it too; the next start copes without the file
        log.error("link: cannot write session file %s: %s", path, exc)
    return session
