"""The outbox's size cap at its edges, on a real SQLite file: it frees down to 90 % even when
one row less would leave it a byte over, it walks past the first 512 rows of a priority before
touching the next one, and the rows of each session it drops are reported apart."""

from __future__ import annotations

from pathlib import Path

from edgenode.link.outbox import ROW_OVERHEAD_BYTES, Outbox, Record
from edgenode.link.payloads import PRIORITY_NEW_END, PRIORITY_UPDATE

PAYLOAD = b"{" + b"x" * 34 + b"}"
ROW = len(PAYLOAD) + ROW_OVERHEAD_BYTES  # 100 bytes stored


def _records(n: int, *, priority: int, session: int = 1, first_seq: int = 0,
             payload: bytes = PAYLOAD) -> list[Record]:
    return [Record("t", payload, "events", session, first_seq + i, priority, 1000.0 + i)
            for i in range(n)]


def test_the_cap_frees_down_to_90_percent_even_one_byte_short(tmp_path: Path) -> None:
    cap = 100 * ROW - 1  # 90 % of it: 90 rows less one byte
    box = Outbox(tmp_path / "o.sqlite3", max_bytes=cap, max_age_s=3600)
    assert box.append_many(_records(99, priority=PRIORITY_UPDATE)) == []
    drops = box.append_many(_records(1, priority=PRIORITY_UPDATE, first_seq=99))
    # 100 rows over the cap; 90 rows would be a byte over 90 %: eleven go, the oldest.
    assert [d.seqs for d in drops] == [list(range(11))]
    assert box.backlog == 89 and box.backlog_bytes <= int(cap * 0.9)


def test_the_cap_drops_every_update_before_any_new_or_end(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_bytes=700 * ROW, max_age_s=3600)
    box.append_many(_records(50, priority=PRIORITY_NEW_END))
    box.append_many(_records(600, priority=PRIORITY_UPDATE, first_seq=50))
    box.append_many(_records(50, priority=PRIORITY_NEW_END, first_seq=650))
    # A new track whose payload is as big as 600 rows: every update (more than one read of
    # 512 rows) must go before the first new/end.
    big = b"{" + b"x" * (600 * ROW - ROW_OVERHEAD_BYTES - 2) + b"}"
    drops = box.append_many(_records(1, priority=PRIORITY_NEW_END, first_seq=700,
                                     payload=big))
    dropped = sorted(seq for d in drops for seq in d.seqs)
    # 1300 rows' worth over a cap of 700, down to 630: the 600 updates (seqs 50-649),
    # then the 70 oldest new/end (seqs 0-49 and 650-669).
    assert dropped == list(range(670))
    left = box.claim(0, limit=1000)
    assert all(r.priority == PRIORITY_NEW_END for r in left)


def test_rows_of_two_sessions_dropped_together_are_reported_per_session(
        tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_bytes=10 * ROW, max_age_s=3600)
    box.append_many(_records(5, priority=PRIORITY_UPDATE, session=1))  # before a restart
    box.append_many(_records(5, priority=PRIORITY_UPDATE, session=2))
    drops = box.append_many(_records(8, priority=PRIORITY_NEW_END, session=2, first_seq=5))
    assert sorted((d.session, d.seqs, d.reason) for d in drops) == [
        (1, [0, 1, 2, 3, 4], "outbox_size_cap"), (2, [0, 1, 2, 3], "outbox_size_cap")]
