"""What the daemon's memory is made of, for the `memory` control-socket request: resident and
anonymous memory from /proc, and, when the daemon was started with EDGENODE_TRACEMALLOC=1, the
allocation sites that grew most since the first request (the soak tests and a technician
chasing a leak use it; tracing costs CPU, so it is off unless asked for)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import tracemalloc
from pathlib import Path
from typing import Any

TRACE_ENV = "EDGENODE_TRACEMALLOC"
TRACE_FRAMES = 8
TOP = 15
# glibc's defaults let a long-running threaded numpy process hold far more than it uses:
# - each thread that contends for malloc gets an arena of its own (up to 8 per core), and each
#   keeps what was freed in it: on the twin under CPU load RssAnon rose ~110 -> ~190 MB;
# - the mmap threshold adapts upwards (to 32 MB) after a large block is freed, so audio blocks
#   and FFT buffers (~0.1-1 MB) then come from the heaps and fragment them: with two arenas,
#   RssAnon still climbed 148 -> 173 MB in 8 min of a broker outage at 4x.
# Two arenas and a fixed 128 KiB threshold (large buffers mmapped, returned when freed) hold
# it at ~108-120 MB, flat, at no CPU cost the daemon bench can see.
MALLOC_ARENAS = 2
MMAP_THRESHOLD_BYTES = 128 * 1024
_M_MMAP_THRESHOLD, _M_ARENA_MAX = -3, -8  # mallopt parameters, <malloc.h>


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def tune_malloc() -> bool:
    """Cap glibc's arenas and fix its mmap threshold, for the threads started from now on
    (call before they start). False where the C library is not glibc (nothing to tune)."""
    try:
        libc = _libc()
        return bool(libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS)) and \
            bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


def proc_memory_kb(pid: int | None = None) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile and VmHWM in kB from /proc/PID/status."""
    out: dict[str, int] = {}
    path = Path(f"/proc/{pid or os.getpid()}/status")
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def malloc_arenas() -> int | None:
    """How many malloc arenas glibc has made (from malloc_info), or None off glibc."""
    try:
        libc = _libc()
        buf, size = ctypes.c_void_p(), ctypes.c_size_t()
        libc.open_memstream.restype = ctypes.c_void_p
        libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.fclose.argtypes = [ctypes.c_void_p]
        libc.free.argtypes = [ctypes.c_void_p]
        stream = libc.open_memstream(ctypes.byref(buf), ctypes.byref(size))
        if not stream:
            return None
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        text = ctypes.string_at(buf, size.value).decode()
        libc.free(buf)
    except (OSError, AttributeError):
        return None
    return text.count("<heap nr=")


class MemoryProbe:
    def __init__(self) -> None:
        self.tracing = os.environ.get(TRACE_ENV) == "1"
        if self.tracing and not tracemalloc.is_tracing():
            tracemalloc.start(TRACE_FRAMES)
        self._baseline: tracemalloc.Snapshot | None = None

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ok": True, **proc_memory_kb(), "malloc_arenas": malloc_arenas()}
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
