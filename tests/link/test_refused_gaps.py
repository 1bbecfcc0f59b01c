"""Issue 21: a drop seen on the pump's thread (the broker refusing a row in its PUBACK) is
accounted for exactly once in gap records (drops not yet written merge into one record per
stream, session and reason: edgenode/link/losses.py), stored through the outbox writer like
every other record, while the detection side keeps handing over events: nothing lost, nothing
twice, every stream in its seq order."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from edgenode.health import Health
from edgenode.link import Link
from tests.link.helpers import (
    Recorder,
    audit_refusing_broker,
    make_config,
    track_event,
    wait_until,
)

EVENTS = 256  # handed over by a second thread, 4 at a time
AUDITS = 32  # each refused by the broker's ACL


def test_each_refused_row_is_in_exactly_one_gap_while_events_keep_coming(tmp_path: Path) -> None:
    broker = audit_refusing_broker(tmp_path)
    recorder = Recorder(broker.port).start()
    link = Link(make_config(tmp_path, broker.url), tmp_path / "state", Health(),
                version="0.0-test", capabilities=[], config_digest="sha256:test")
    errors: list[Exception] = []

    def detection() -> None:
        try:
            for _ in range(EVENTS // 4):
                link.publish_events([track_event("update") for _ in range(4)])
                time.sleep(0.002)
        except Exception as exc:  # reported by the test, not lost on its thread
            errors.append(exc)

    producer = threading.Thread(target=detection, name="detection")
    try:
        link.start()
        assert wait_until(lambda: link.connected, 10)
        producer.start()
        for seq in range(AUDITS):
            link.publish_audit({"seq": seq, "kind": "test"})
            time.sleep(0.005)
        producer.join(20)
        assert not errors and not producer.is_alive()

        def gaps() -> list[dict]:
            return [m.payload for m in recorder.on("events") if m.payload.get("type") == "gap"]

        def gap_count() -> int:
            return sum(g["dropped"]["count"] for g in gaps())

        assert recorder.wait_for(lambda: len(recorder.track_events()) >= EVENTS
                                 and gap_count() >= AUDITS, 20), (
            len(recorder.track_events()), len(gaps()), link.counters())
        assert wait_until(lambda: link.counters()["backlog"] == 0, 5)
        time.sleep(0.3)  # anything sent twice would be here by now
        assert not recorder.problems, recorder.problems[:3]
        # Every event once, in seq order.
        assert [e["seq"] for e in recorder.track_events()] == list(range(EVENTS))
        # Every refused audit record in exactly one gap, in the audit records' seq order, each
        # gap's count the size of its ranges.
        covered = []
        for g in gaps():
            assert (g["reason"], g["dropped"]["stream"], g["dropped"]["session"]) == (
                "broker_refused", "audit", link.session)
            seqs = [s for a, b in g["dropped"]["ranges"] for s in range(a, b + 1)]
            assert g["dropped"]["count"] == len(seqs)
            covered += seqs
        assert covered == list(range(AUDITS))
        assert not recorder.on("audit")
        counters = link.counters()
        assert (counters["refused"], counters["dropped"]) == (AUDITS, AUDITS)
        assert counters["gaps"] == len(gaps())
        assert counters["published"] == EVENTS + len(gaps())
    finally:
        link.stop()
        recorder.stop()
        broker.stop()
