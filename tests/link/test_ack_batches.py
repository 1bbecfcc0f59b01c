"""Issue 21: acknowledged rows leave the outbox in batches (edgenode/link/pump.py: one delete
per ACK_BATCH rows or ACK_DELAY_S, whichever comes first), not in one transaction per PUBACK.

Counted where SQLite writes them: every transaction committed to a WAL-mode database ends
with one commit frame in the `-wal` file (https://www.sqlite.org/fileformat2.html#walformat).
A second connection holding a read transaction open keeps those frames from being
checkpointed away while they are counted."""

from __future__ import annotations

import math
import sqlite3
import struct
import time
from pathlib import Path

from edgenode.health import Health
from edgenode.link import Link
from edgenode.link.link import OUTBOX_FILE
from edgenode.link.pump import ACK_BATCH, ACK_DELAY_S
from tests.conftest import Mosquitto
from tests.link.helpers import make_config, track_event, wait_until

ROWS = 640


def wal_commits(wal: Path) -> int:
    """Transactions in the WAL: frames of its current generation (the header's salts) that
    end a transaction (a non-zero database size after commit)."""
    data = wal.read_bytes()
    page_size = struct.unpack(">I", data[8:12])[0]
    salts = data[16:24]
    commits = 0
    for at in range(32, len(data) - 24 - page_size + 1, 24 + page_size):
        header = data[at:at + 24]
        if header[8:16] == salts and struct.unpack(">I", header[4:8])[0]:
            commits += 1
    return commits


def test_acknowledged_rows_are_deleted_in_batches_not_one_transaction_per_puback(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    state = tmp_path / "state"
    link = Link(make_config(tmp_path, mosquitto.url, replay_rate_per_s=10000), state,
                Health(), version="0.0-test", capabilities=[], config_digest="sha256:test")
    reader = None
    try:
        # A backlog stored while the link is not started (as after an outage).
        for _ in range(ROWS // 64):
            link.publish_events([track_event("update") for _ in range(64)])
        assert link.flush(10)
        reader = sqlite3.connect(state / OUTBOX_FILE)
        reader.execute("BEGIN")
        assert reader.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == ROWS
        wal = state / f"{OUTBOX_FILE}-wal"
        before = wal_commits(wal)
        started = time.monotonic()
        link.start()
        assert wait_until(lambda: link.counters()["published"] == ROWS, 20), link.counters()
        assert wait_until(lambda: link.counters()["backlog"] == 0, 5)
        elapsed = time.monotonic() - started
        deletes = wal_commits(wal) - before  # nothing else writes the file meanwhile
        # Each delete holds ACK_BATCH rows, or waited ACK_DELAY_S since the one before.
        most = ROWS // ACK_BATCH + math.ceil(elapsed / ACK_DELAY_S) + 1
        assert 1 <= deletes <= most, (
            f"{ROWS} rows acknowledged in {elapsed:.2f} s took {deletes} delete "
            f"transactions (batched: at most {most})")
    finally:
        if reader is not None:
            reader.close()
        link.stop()
    db = sqlite3.connect(state / OUTBOX_FILE)
    assert db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
    db.close()
