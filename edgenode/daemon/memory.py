"""What the daemon's memory is made of, for the `memory` control-socket request: resident and
anonymous memory from /proc, and, when the daemon was started with EDGENODE_TRACEMALLOC=1, the
allocation sites that grew most since the first request (the soak tests and a technician
chasing a leak use it; tracing costs CPU, so it is off unless asked for)."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from typing import Any

TRACE_ENV = "EDGENODE_TRACEMALLOC"
TRACE_FRAMES = 8
TOP = 15


def proc_memory_kb(pid: int | None = None) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile and VmHWM in kB from /proc/PID/status."""
    out: dict[str, int] = {}
    path = Path(f"/proc/{pid or os.getpid()}/status")
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


class MemoryProbe:
    def __init__(self) -> None:
        self.tracing = os.environ.get(TRACE_ENV) == "1"
        if self.tracing and not tracemalloc.is_tracing():
            tracemalloc.start(TRACE_FRAMES)
        self._baseline: tracemalloc.Snapshot | None = None

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": True, **proc_memory_kb()}
        if not self.tracing:
            return out
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)])
        if self._baseline is None:
            self._baseline = snapshot
        stats = snapshot.compare_to(self._baseline, "traceback")[:TOP]
        out["traced_kb"] = tracemalloc.get_traced_memory()[0] // 1024
        out["grew"] = [{"kb": round(s.size_diff / 1024, 1), "count": s.count_diff,
                        "where": [f"{f.filename}:{f.lineno}" for f in s.traceback][-4:]}
                       for s in stats]
        return out
