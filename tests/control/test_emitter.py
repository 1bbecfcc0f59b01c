"""The effector's emitter while the audit disk hangs: the effector never waits for it, what
waits is bounded, and the records dropped are written as a `gap` record once the disk answers."""

from __future__ import annotations

import errno
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edgenode.control.audit import AuditLog, verify
from edgenode.control.emitter import MAX_QUEUED, Emitter
from tests.control.conftest import RigFactory, wait_for


class HangingDisk:
    """A real audit log on a disk whose fdatasync hangs until `answer()` (a dying SD card)."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log
        self.hung = threading.Event()
        self.answered = threading.Event()

    def append(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._log.append(*args, **kwargs)

    def take_notes(self) -> list[dict[str, Any]]:
        return self._log.take_notes()

    def sync(self) -> None:
        self.hung.set()
        self.answered.wait()
        self._log.sync()

    def answer(self) -> None:
        self.answered.set()


def _records(directory: Path) -> list[dict[str, Any]]:
    report = verify(directory)
    assert report.ok, report
    return [json.loads(line) for path in sorted(directory.glob("audit-*.jsonl"))
            for line in path.read_text().splitlines()]


def test_a_hanging_audit_disk_never_holds_the_effector_and_its_drops_become_a_gap_record(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = AuditLog(tmp_path, segment_bytes=1 << 24, max_segments=4, fsync=True)
    disk = HangingDisk(log)
    published: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    emitter = Emitter(disk, published.append, states.append)  # type: ignore[arg-type]
    emitter.start()
    watchdog = threading.Timer(60, disk.answer)  # a put that waits would hang the test
    watchdog.start()
    try:
        emitter.put(("audit", ("command", {"n": -1}, time.time())))
        assert disk.hung.wait(5)
        caplog.set_level(logging.ERROR, logger="edgenode.control.emitter")
        puts = MAX_QUEUED + 3000
        for n in range(puts):
            emitter.put(("audit", ("command", {"n": n}, time.time())))
            if n % 100 == 99:
                emitter.put(("state", {"n": n}))
        emitter.put(("state", {"n": "latest"}))
        assert not disk.answered.is_set(), "a put waited for the disk"
        assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
        disk.answer()
        assert emitter.flush(30)
    finally:
        watchdog.cancel()
        disk.answer()
        emitter.stop()
        log.close()
    records = _records(tmp_path)
    assert published == records
    kept = [r["data"]["n"] for r in records if r["kind"] == "command"]
    assert kept == list(range(-1, len(kept) - 1)), "the oldest are kept, in order"
    assert len(kept) < MAX_QUEUED, "more waited than the bound"
    gap = records[-1]
    assert gap["kind"] == "gap" and gap["data"]["reason"] == "queue_full"
    assert gap["data"]["lost"] == gap["data"]["kinds"]["command"] == puts - (len(kept) - 1)
    assert states[-1] == {"n": "latest"}, "the latest state is published"
    assert len(states) <= MAX_QUEUED // 100 + 1


class SlowHandler(logging.Handler):
    """A log sink that takes its time over one message (a slow journald), so a state change
    stays half made (state set, records not yet queued) for that long."""

    def __init__(self, needle: str, seconds: float) -> None:
        super().__init__(logging.WARNING)
        self.needle, self.seconds = needle, seconds

    def emit(self, record: logging.LogRecord) -> None:
        if self.needle in record.getMessage():
            time.sleep(self.seconds)


def test_flush_waits_for_a_state_change_half_made(make_rig: RigFactory) -> None:
    """`flush` after the state is seen changed returns with that change's audit record out
    (it failed here under mutmut's slow instrumentation: state ARMED, no record yet)."""
    rig = make_rig()
    slow = SlowHandler("ENGAGED -> ARMED", 0.5)
    logger = logging.getLogger("edgenode.control.effector")
    logger.addHandler(slow)
    try:
        assert rig.send("alice", "arm", {"ttl_s": 60})["status"] == "ok"
        assert rig.send("alice", "engage", {"duration_s": 1, "bearing_deg": 1})["status"] == "ok"
        assert wait_for(lambda: rig.effector.state == "ARMED", 5)
        assert rig.effector.flush(5)
        ends = [r["data"] for r in rig.audit if r.get("kind") == "state"
                and r["data"]["from"] == "ENGAGED"]
        assert ends == [{"from": "ENGAGED", "to": "ARMED", "reason": "engagement duration ended",
                         "command": None}]
    finally:
        logger.removeHandler(slow)


def test_flush_gives_up_at_once_when_the_writer_thread_is_not_running(tmp_path: Path) -> None:
    # A dead writer never empties the queue: waiting out the timeout would only hold up
    # the daemon's stop by that much.
    log = AuditLog(tmp_path, segment_bytes=1 << 20, max_segments=2, fsync=False)
    emitter = Emitter(log, [].append, [].append)  # never started
    emitter.put(("state", {"n": 1}))
    started = time.monotonic()
    try:
        assert emitter.flush(60) is False
        assert time.monotonic() - started < 10, "flush waited for a thread that is gone"
    finally:
        log.close()


class FullDisk(HangingDisk):
    """A real audit log on a disk that is full (ENOSPC on every write) until `full` is
    cleared."""

    def __init__(self, log: AuditLog) -> None:
        super().__init__(log)
        self.full = True
        self.answer()  # its syncs never hang

    def append(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().append(*args, **kwargs)


def test_records_lost_to_a_full_disk_become_a_gap_record_by_kind_and_time(
        tmp_path: Path) -> None:
    """What could not be written is counted by kind over the span of its times, and the
    gap record comes before the first record written again. Records keep the time they were
    made at, not the time the writer got to them."""
    log = AuditLog(tmp_path, segment_bytes=1 << 20, max_segments=4, fsync=False)
    disk = FullDisk(log)
    emitter = Emitter(disk, [].append, [].append)  # type: ignore[arg-type]
    emitter.start()
    made = time.time() - 100.0
    try:
        emitter.put(("audit", ("command", {"n": 1}, made)))
        emitter.put(("audit", ("state", {"n": 2}, made + 1.0)))
        emitter.put(("audit", ("command", {"n": 3}, made + 2.0)))
        assert emitter.flush(5)
        disk.full = False
        emitter.put(("audit", ("result", {"n": 4}, made + 3.0)))
        assert emitter.flush(5)
    finally:
        emitter.stop()
        log.close()
    gap, result = _records(tmp_path)
    assert gap["kind"] == "gap"
    assert gap["data"] == {"lost": 3, "kinds": {"command": 2, "state": 1}, "from_t": made,
                           "to_t": made + 2.0, "reason": "disk_full"}
    assert (result["kind"], result["data"], result["t"]) == ("result", {"n": 4},
                                                             round(made + 3.0, 6))
    assert emitter.lost_total == 3
