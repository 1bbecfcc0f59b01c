"""The link on a real Mosquitto at its edges: rejected results at exactly the documented rate
and burst, a gap record the broker refuses (no gap record for a gap record, for ever), the
rebirth command, and flush giving up at its timeout while another process locks the outbox."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from edgenode.health import Health
from edgenode.link import Link
from edgenode.link.ratelimit import TokenBucket
from edgenode.ulid import new_ulid
from tests.brokers import connected_client
from tests.conftest import Mosquitto, free_port
from tests.link.helpers import PREFIX, Recorder, make_config, track_event, wait_until


def _link(tmp_path: Path, url: str, links: list[Link],
          rejected_results: TokenBucket | None = None) -> Link:
    link = Link(make_config(tmp_path, url), tmp_path / "state", Health(), version="0.0-test",
                capabilities=[], config_digest="sha256:test", rejected_results=rejected_results)
    links.append(link)
    return link


def test_rejected_results_go_out_at_the_rate_and_burst_and_the_rest_are_counted(
        tmp_path: Path, mosquitto: Mosquitto, links: list[Link]) -> None:
    # The limit's clock stands still unless the test moves it: the count is exact.
    now = [5000.0]
    link = _link(tmp_path, mosquitto.url, links,
                 rejected_results=TokenBucket(10.0, 5.0, clock=lambda: now[0]))
    link.on_command(lambda m: {"id": None, "status": "rejected", "reason": "bad_signature"},
                    slow=lambda m: False)
    link.start()
    assert wait_until(lambda: link.connected, 10)
    sender = connected_client(mosquitto.port)
    sent = 0

    def junk(n: int) -> tuple[int, int]:
        nonlocal sent
        for _ in range(n):
            sender.publish(f"{PREFIX}/cmd", b'{"junk":1}', qos=1)
        sent += n
        assert wait_until(lambda: sum(answered()) == sent, 5)
        return answered()

    def answered() -> tuple[int, int]:
        counters = link.counters()
        return counters["cmd_results"], counters["results_suppressed"]

    try:
        assert junk(8) == (5, 3)            # the burst, the rest counted
        now[0] += 0.1                       # 10 a second: one more token
        assert junk(2) == (6, 4)
        now[0] += 100.0                     # a long quiet time refills the burst, no more
        assert junk(7) == (11, 6)
    finally:
        sender.disconnect()
        sender.loop_stop()


def test_a_gap_record_the_broker_refuses_is_dropped_without_a_gap_record_of_its_own(
        tmp_path: Path, links: list[Link]) -> None:
    acl = tmp_path / "acl"  # everything of the node's own but `events`, where gaps go too
    acl.write_text("".join(f"pattern readwrite {PREFIX}/{suffix}\n"
                           for suffix in ("audit", "status", "health", "cmd", "ping"))
                   + "pattern read #\n")
    port = free_port()
    broker = Mosquitto(tmp_path / "broker", port=port, extra=(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nacl_file {acl}\n")).start()
    try:
        link = _link(tmp_path, broker.url, links)
        link.start()
        assert wait_until(lambda: link.connected, 10)
        link.publish_event(track_event("new"))
        # The event is refused, then the gap record saying so (it goes on `events` too).
        assert wait_until(lambda: link.counters()["refused"] == 2, 5)
        time.sleep(0.3)  # room for a gap record about the gap record, which must not come
        counters = link.counters()
        assert (counters["refused"], counters["gaps"], counters["dropped"]) == (2, 1, 1)
        assert counters["backlog"] == 0
        link.stop()
    finally:
        broker.stop()


def test_rebirth_publishes_the_birth_again_only_while_connected(
        tmp_path: Path, mosquitto: Mosquitto, links: list[Link]) -> None:
    link = _link(tmp_path, mosquitto.url, links)
    assert link.rebirth() is False  # not connected: nothing to publish it to
    recorder = Recorder(mosquitto.port).start()
    try:
        link.start()

        def births() -> int:
            return sum(m.payload.get("state") == "online" for m in recorder.on("status"))

        assert recorder.wait_for(lambda: births() == 1, 10)
        assert link.rebirth() is True
        assert recorder.wait_for(lambda: births() == 2, 5)
        assert recorder.problems == []
    finally:
        recorder.stop()


def test_flush_gives_up_at_its_timeout_while_another_process_locks_the_outbox(
        tmp_path: Path, links: list[Link]) -> None:
    link = _link(tmp_path, "mqtt://127.0.0.1:1", links)  # never started: no broker needed
    blocker = sqlite3.connect(link.outbox.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        link.publish_event(track_event("new"))
        answer: list[bool] = []
        waiter = threading.Thread(target=lambda: answer.append(link.flush(0.2)), daemon=True)
        started = time.monotonic()
        waiter.start()
        waiter.join(3)
        assert answer == [False], "flush did not give up at its timeout"
        assert time.monotonic() - started < 2
    finally:
        blocker.rollback()
        blocker.close()
    assert link.flush(10), "the record was not committed once the lock went"


def test_a_node_with_no_command_handler_answers_every_command_rejected(
        tmp_path: Path, mosquitto: Mosquitto, links: list[Link]) -> None:
    link = _link(tmp_path, mosquitto.url, links)
    recorder = Recorder.for_broker(mosquitto, topic=f"{PREFIX}/cmd/result").start()
    link.start()
    sender = connected_client(mosquitto.port)
    try:
        assert wait_until(lambda: link.connected, 10)
        command_id = new_ulid()
        sender.publish(f"{PREFIX}/cmd", b'{"id":"%s","action":"safe"}' % command_id.encode(),
                       qos=1)
        assert recorder.wait_for(lambda: len(recorder.on("cmd/result")) == 1, 10)
        answer = recorder.on("cmd/result")[0].payload
        assert (answer["id"], answer["status"], answer["reason"]) == (
            command_id, "rejected", "this node has no command handler")
    finally:
        sender.disconnect()
        recorder.stop()
