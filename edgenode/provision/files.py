"""All-or-nothing writes: every file goes to a temporary name beside its target, and only when
all are written are they renamed into place (and files to drop are removed)."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)


def owner_ids(user: str | None) -> tuple[int, int]:
    """(uid, gid) of `user`, or (-1, -1) when there is none (files then stay ours)."""
    if user is None:
        return -1, -1
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        log.info("provision: no user '%s' on this machine: files stay owned by uid %d",
                 user, os.getuid())
        return -1, -1
    if os.getuid() != 0 and entry.pw_uid != os.getuid():
        return -1, -1
    return entry.pw_uid, entry.pw_gid


class Staged:
    """Collect writes with `add`, then `commit`; leaving the block without commit undoes all."""

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []
        self._drop: list[Path] = []
        self._made: list[Path] = []

    def make_dir(self, path: Path, mode: int, gid: int = -1) -> None:
        """Make a missing directory (and its parents); removed again if nothing is committed."""
        missing = []
        for parent in [path, *path.parents]:
            if parent.is_dir():
                break
            missing.append(parent)
        for directory in reversed(missing):
            leaf = directory == path
            directory.mkdir()
            self._made.append(directory)
            os.chmod(directory, mode if leaf else 0o755)
            if leaf:
                os.chown(directory, -1, gid)

    def add(self, target: Path, data: bytes, mode: int, *, uid: int = -1, gid: int = -1) -> Path:
        """Write `data` to a temporary file beside `target`; return the temporary path."""
        tmp = target.with_name(f".{target.name}.provision-tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        self._pending.append((tmp, target))
        try:
            os.fchmod(fd, mode)   # the umask may have taken bits off
            if uid != -1 or gid != -1:
                os.fchown(fd, uid, gid)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        return tmp

    def drop(self, path: Path) -> None:
        self._drop.append(path)

    def commit(self) -> None:
        for tmp, target in self._pending:
            os.replace(tmp, target)
        self._pending.clear()
        for path in self._drop:
            path.unlink(missing_ok=True)
        self._drop.clear()
        self._made.clear()

    def __enter__(self) -> Staged:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for tmp, _ in self._pending:
            tmp.unlink(missing_ok=True)
        self._pending.clear()
        for directory in reversed(self._made):
            with contextlib.suppress(OSError):   # not empty: something else put a file there
                directory.rmdir()
        self._made.clear()
