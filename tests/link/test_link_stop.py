"""Issue 21: `Link.stop` when the link's loop thread does not end in time. The loop is held
with the health fault injection (`Health.stall`, the hook the daemon's control socket
offers) while PUBACKs for rows it sent wait for it; stop must say so at ERROR and leave the
outbox (and its writer) open for that thread, which still has acknowledged rows to delete
when it wakes, instead of closing SQLite under it."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from edgenode.health import Health
from edgenode.link import Link
from edgenode.link.link import OUTBOX_FILE
from tests.conftest import Mosquitto
from tests.link.helpers import make_config, track_event, wait_until
from tests.link.wire import WireCount

ROWS = 5


def _rows_in_file(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])
    finally:
        db.close()


def test_stop_leaves_the_outbox_open_for_a_loop_thread_that_did_not_stop(
        tmp_path: Path, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture) -> None:
    wire = WireCount(mosquitto.port)
    health = Health()
    state = tmp_path / "state"
    link = Link(make_config(tmp_path, wire.url), state, health, version="0.0-test",
                capabilities=[], config_digest="sha256:test")
    try:
        link.start()
        assert wait_until(lambda: link.connected, 10)
        assert wait_until(lambda: wire.unacked == 0, 5)
        # Rows sent and not yet acknowledged: the broker hangs.
        mosquitto.freeze()
        link.publish_events([track_event("new") for _ in range(ROWS)])
        assert link.flush(5)
        assert wait_until(lambda: link.counters()["in_flight"] == ROWS, 5)
        # The loop is held before its next round; the PUBACKs arrive and wait for it.
        health.stall("link", 60)
        assert wait_until(lambda: float(health.snapshot()["link"]["since_beat_s"]) > 1.0, 5)
        mosquitto.thaw()
        assert wait_until(lambda: wire.unacked == 0, 5), "no PUBACK passed the relay"
        with caplog.at_level(logging.ERROR, logger="edgenode.link"):
            link.stop()
        assert "link: loop thread did not stop; outbox left open for it" in [
            r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        # Still open: the held thread has not deleted its acknowledged rows yet.
        assert link.outbox.max_id() >= ROWS
        assert _rows_in_file(state / OUTBOX_FILE) == ROWS
        caplog.clear()
        health.stall("link", 0)  # the loop wakes, ends, and deletes what was acknowledged
        assert wait_until(lambda: _rows_in_file(state / OUTBOX_FILE) == 0, 5), (
            "the loop thread could not finish its work on the outbox")
        assert link.counters()["published"] == ROWS
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        health.stall("link", 0)
        mosquitto.thaw()
        wire.close()
