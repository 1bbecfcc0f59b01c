"""Bounds that keep the daemon's memory flat (issue: memory for weeks): each one pinned."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from edgenode.daemon.recent_logs import KEEP, RecentLogs
from edgenode.daemon.sensing import ReadingQueue
from edgenode.link import outbox as outbox_module
from edgenode.link.outbox import Outbox


def test_the_reading_queue_holds_at_most_its_byte_budget_of_audio_newest_kept():
    readings = ReadingQueue(max_bytes=8 * 1024 * 1024)
    block = np.zeros((4096, 16), dtype=np.float32)  # one UMA-16 block: 256 KiB
    for k in range(100):
        readings.put("audio", (k, block.copy()))
    assert readings.bytes <= 8 * 1024 * 1024
    assert readings.depth() == 32 and readings.dropped == 68
    assert readings.get(0.1)[1][0] == 68  # the oldest kept is the 69th
    assert readings.bytes == 31 * block.nbytes


def test_radar_frames_are_bounded_by_count():
    readings = ReadingQueue(maxsize=16)
    for k in range(40):
        readings.put("radar", k)
    assert readings.depth() == 16 and readings.dropped == 24
    assert readings.get(0.1) == ("radar", 24)


def test_rows_appended_while_the_broker_is_away_wait_in_the_file_not_in_memory(tmp_path: Path):
    box = Outbox(tmp_path / "o.sqlite3", max_bytes=10**8, max_age_s=3600)
    box.keep_fresh(False)
    payload = b"x" * 1500
    for start in range(0, 6000, 500):
        box.append_many([outbox_module.Record("t", payload, "events", 1, seq, 0, 0.0)
                         for seq in range(start, start + 500)])
    assert box.rows_in_memory == 0
    assert box.backlog == 6000
    claimed = box.claim(0, limit=300)
    assert [r.seq for r in claimed] == list(range(300))  # read back from the file
    box.keep_fresh(True)  # the broker is back: live rows are kept for the pump again
    box.append_many([outbox_module.Record("t", payload, "events", 1, seq, 0, 0.0)
                     for seq in range(6000, 6000 + outbox_module.FRESH_MAX + 100)])
    assert box.rows_in_memory == outbox_module.FRESH_MAX
    box.close()


def test_the_recent_log_lines_are_bounded():
    import logging

    handler = RecentLogs()
    for k in range(KEEP + 500):
        handler.emit(logging.LogRecord("x", logging.INFO, __file__, 1, "line %d", (k,), None))
    lines = handler.lines("debug", count=10**6)
    assert len(lines) == KEEP and lines[-1].endswith(f"line {KEEP + 499}")


def test_the_daemon_caps_its_malloc_arenas(tmp_path: Path, mosquitto) -> None:
    # Each thread would get an arena of its own that keeps what it freed (+70 MB under load).
    from edgenode.daemon.memory import MALLOC_ARENAS
    from tests.simdaemon import SimDaemon

    daemon = SimDaemon("empty-sky", tmp_path / "state", mosquitto)
    try:
        daemon.status()
        time.sleep(3)  # every stage's thread has allocated by now
        report = daemon.control({"cmd": "memory"})
        assert report["malloc_arenas"] is not None, "not glibc?"
        assert report["malloc_arenas"] <= MALLOC_ARENAS, report
    finally:
        daemon.stop()


LARGE_BLOCK_PROBE = """
import ctypes, sys
from edgenode.daemon.memory import tune_malloc
if sys.argv[1] == "tuned":
    assert tune_malloc()
class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                               "usmblks", "fsmblks", "uordblks", "fordblks",
                                               "keepcost")]
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
libc.mallinfo2.restype = Mallinfo2
libc.free(libc.malloc(1 << 20))  # glibc's default then raises its mmap threshold past 1 MB
block = libc.malloc(1 << 20)
print(libc.mallinfo2().hblkhd >= 1 << 20)  # the second MB mmapped, returned when freed
"""


def test_large_buffers_are_mapped_and_returned_not_left_in_the_heap() -> None:
    import subprocess
    import sys

    def mapped(mode: str) -> bool:
        out = subprocess.run([sys.executable, "-c", LARGE_BLOCK_PROBE, mode], check=True,
                             capture_output=True, text=True).stdout
        return out.strip() == "True"

    assert not mapped("default"), "glibc's adaptive threshold: this probe proves nothing here"
    assert mapped("tuned")


@pytest.mark.parametrize("heavy", ["scipy.signal", "scipy.optimize"])
def test_the_daemon_does_not_load(heavy: str) -> None:
    # Each ~22-25 MB resident: scipy.signal for one STFT in the self-test's wiring check,
    # scipy.optimize for the tracker's assignment (numpy and detect/assign.py do them).
    import subprocess
    import sys

    probe = ("import sys, edgenode.daemon.node, edgenode.detect.tracker, "
             f"edgenode.selftest.checks; print({heavy!r} in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                         text=True).stdout
    assert out.strip() == "False"
