"""Small parts of the link at their edges: the broker password file as written, which
response topics the node writes to, payloads with NaN in them, gap ranges, a gap record's
id, and the group commit on an outbox file gone corrupt."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from edgenode.link.credentials import LinkConfigError, broker_password
from edgenode.link.losses import Loss
from edgenode.link.outbox import Dropped, Outbox, Record
from edgenode.link.payloads import Envelope, encode, seq_ranges
from edgenode.link.ratelimit import TokenBucket
from edgenode.link.refusal import REFUSAL_WINDOW_S, REFUSED_AFTER, RefusalWatch
from edgenode.link.topics import Topics
from edgenode.link.writer import OutboxWriter
from edgenode.ulid import ulid_time_s
from tests.link.helpers import make_config


# -- the password file -----------------------------------------------------------------
@pytest.mark.parametrize("written, password", [
    ("correct horse \n", "correct horse "),     # a trailing space is part of it
    ("\tpass\t\r\n", "\tpass\t"),               # tabs too: only the line end goes
    ("S3CRETX\n", "S3CRETX"),
    ("two\nlines\n\n", "two\nlines"),
])
def test_the_password_is_the_file_without_its_line_end(tmp_path: Path, written: str,
                                                       password: str) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_text(written)
    config = make_config(tmp_path, "mqtt://127.0.0.1:1883", username="u", password_file=secret)
    assert broker_password(config.broker) == password


def test_a_password_file_that_is_missing_or_empty_is_named_with_the_key(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "mqtt-password"
    config = make_config(tmp_path, "mqtt://127.0.0.1:1883", username="u", password_file=missing)
    with pytest.raises(LinkConfigError) as error:
        broker_password(config.broker)
    assert str(error.value) == (f"broker.password_file: cannot read {missing}: "
                                "No such file or directory")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    config = make_config(tmp_path, "mqtt://127.0.0.1:1883", username="u", password_file=empty)
    with pytest.raises(LinkConfigError) as error:
        broker_password(config.broker)
    assert str(error.value) == f"broker.password_file: {empty} is empty"


# -- response topics -------------------------------------------------------------------
@pytest.mark.parametrize("topic, own", [
    ("edgenode/s1/n1/cmd/result/ctl-7", True),
    ("edgenode/s1/n1/cmd/result/+", False),         # a filter, not a topic to write to
    ("edgenode/s1/n1/cmd/result/#", False),
    ("edgenode/s1/n1/cmd/result/a+b", False),
    ("edgenode/s1/n1/cmd/result/ctl#7", False),
    ("edgenode/s1/n1/cmd/result", False),           # cmd/result itself gets it anyway
    ("edgenode/s1/n2/cmd/result/ctl-7", False),     # another node's
])
def test_only_a_plain_topic_under_cmd_result_is_a_response_topic(topic: str, own: bool) -> None:
    assert Topics("s1", "n1").is_own_response_topic(topic) is own


# -- payloads --------------------------------------------------------------------------
def test_payloads_are_compact_json() -> None:
    # Every byte goes over a field unit's mobile link, many times a second.
    assert encode({"a": 1, "b": [1, 2], "c": {"d": None}}) == b'{"a":1,"b":[1,2],"c":{"d":null}}'


def test_non_finite_numbers_become_null_and_every_other_value_stays() -> None:
    payload = {"type": "update", "range_m": 12.5, "snr_db": math.nan, "n": 3, "ok": True,
               "after": {"speed_mps": math.inf, "heading_deg": 90.0, "label": "drone"},
               "points": [1.5, -math.inf, "x", None, [2.0, math.nan]], "pair": (0.25, math.nan)}
    assert json.loads(encode(payload)) == {
        "type": "update", "range_m": 12.5, "snr_db": None, "n": 3, "ok": True,
        "after": {"speed_mps": None, "heading_deg": 90.0, "label": "drone"},
        "points": [1.5, None, "x", None, [2.0, None]], "pair": [0.25, None]}


@pytest.mark.parametrize("seqs, ranges", [
    ([3, 5], [[3, 3], [5, 5]]),                     # 4 was not dropped: two runs
    ([3, 4, 5, 9], [[3, 5], [9, 9]]),
    ([9, 3, 4, 4], [[3, 4], [9, 9]]),
])
def test_gap_ranges_claim_exactly_the_dropped_seqs(seqs: list[int],
                                                   ranges: list[list[int]]) -> None:
    assert seq_ranges(seqs) == ranges


def test_an_event_the_link_cannot_carry_is_refused_naming_what_is_wrong() -> None:
    env = Envelope("s1", "n1", 3)
    with pytest.raises(ValueError) as error:
        env.event({"type": "lost", "object_id": "T1"}, 0, time.time())
    assert str(error.value) == (
        "link: event type 'lost' is not one of ('new', 'update', 'end')")
    with pytest.raises(ValueError) as error:
        env.event({"type": "new", "object_id": 7}, 0, time.time())
    assert str(error.value) == "link: event without a string object_id"


def test_an_events_id_is_of_the_events_time() -> None:
    t = time.time() + 0.05  # ahead of every id made so far: ids only ever increase
    event = Envelope("s1", "n1", 3).event({"type": "new", "object_id": "T1"}, 0, t)
    assert abs(ulid_time_s(event["event_id"]) - t) < 0.002


def test_a_gap_records_id_is_of_the_gap_records_time() -> None:
    t = time.time() + 0.05  # ahead of every id made so far: ids only ever increase
    gap = Envelope("s1", "n1", 3).gap(stream="events", session=2, ranges=[[4, 6]], count=3,
                                      reason="outbox_size_cap", t=t)
    assert abs(ulid_time_s(gap["event_id"]) - t) < 0.002


# -- the group commit on a corrupt file --------------------------------------------------
class CorruptOutbox(Outbox):
    """A real outbox whose file went bad under it: every append fails as SQLite says then
    (DatabaseError, which no retry cures)."""

    def append_many(self, records):  # type: ignore[no-untyped-def, override]
        raise sqlite3.DatabaseError("database disk image is malformed")


def _gap(loss: Loss) -> Record:
    return Record("t/events", json.dumps({"dropped": loss.ranges}).encode(), "gap", 4, None,
                  3, 0.0)


def test_on_a_corrupt_outbox_each_streams_loss_is_reported_and_gap_records_are_not(
        tmp_path: Path) -> None:
    outbox = CorruptOutbox(tmp_path / "o.sqlite3", max_bytes=10**6, max_age_s=3600)
    reported: list[Dropped] = []
    reports = threading.Event()

    def on_drops(drops: list[Dropped]) -> None:  # as the link does: count, hand back
        reported.extend(drops)
        reports.set()
        writer.lost(drops)

    writer = OutboxWriter(outbox, on_committed=lambda: None, on_drops=on_drops,
                          on_error=lambda e: None, gap_record=_gap)
    writer.submit([Record("t/events", b"{}", "events", 4, 10, 1, 0.0),
                   Record("t/audit", b"{}", "audit", 4, 2, 2, 0.0),
                   Record("t/events", b"{}", "events", 4, 11, 1, 0.0)])
    assert writer.flush(5)
    assert reports.wait(5)
    # The gap record for these drops fails too: dropped, not reported as a loss of its own
    # (which would ask for another gap record, and so on for ever).
    assert wait_for_quiet(writer)
    assert sorted((d.stream, d.session, d.reason, d.seqs) for d in reported) == [
        ("audit", 4, "unpublishable", [2]), ("events", 4, "unpublishable", [10, 11])]
    assert writer.close(5)


def wait_for_quiet(writer: OutboxWriter, timeout_s: float = 5.0) -> bool:
    """True once nothing has been waiting to be written for 0.1 s."""
    deadline = time.monotonic() + timeout_s
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        if writer.pending:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= 0.1:
            return True
        time.sleep(0.01)
    return False


def test_losses_of_two_streams_are_two_gap_records_and_both_count_as_pending(
        tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.sqlite3", max_bytes=10**6, max_age_s=3600)
    writer = OutboxWriter(outbox, on_committed=lambda: None, on_drops=lambda d: None,
                          on_error=lambda e: None, gap_record=_gap)
    writer.lost([Dropped("events", 4, "broker_refused", [3]),
                 Dropped("audit", 4, "broker_refused", [1])])
    assert writer.flush(5)
    assert writer.pending == 0  # what health shows as `uncommitted`
    writer.close()
    assert outbox.backlog == 2
    outbox.close()


# -- a publish the broker refuses by closing the connection ------------------------------
def test_closes_within_the_refusal_window_count_up_to_its_very_end() -> None:
    watch = RefusalWatch()
    assert [watch.closed(9, REFUSAL_WINDOW_S) for _ in range(REFUSED_AFTER)] == (
        [None] * (REFUSED_AFTER - 1) + [9])


def test_a_token_bucket_gives_its_burst_then_its_rate() -> None:
    now = [100.0]  # steps below are exact in binary, so the token count is too
    bucket = TokenBucket(8.0, 3.0, clock=lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.125  # one token
    assert [bucket.take(), bucket.take()] == [True, False]
    now[0] += 60.0  # never more than the burst
    assert sum(bucket.take() for _ in range(10)) == 3
