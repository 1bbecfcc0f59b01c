"""Issue 21: link behaviour documented in docs/mqtt.md that no test reached: broker refusals,
unpublishable rows, foreign response topics, reconnect backoff, the in-flight map. Tests with
`any_broker` run on Mosquitto and, under `make test-long`, on RabbitMQ (MQTT 3.1.1)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgenode.health import Health
from edgenode.link import Link
from edgenode.link.credentials import LinkConfigError
from edgenode.link.mqtt import BrokerOptions, MqttClient
from edgenode.link.outbox import Outbox
from edgenode.link.payloads import PRIORITY_AUDIT
from edgenode.link.refusal import REFUSAL_WINDOW_S, REFUSED_AFTER, RefusalWatch
from edgenode.link.writer import MAX_PENDING
from edgenode.ulid import new_ulid
from tests.brokers import connected_client, needs_mqtt5
from tests.conftest import ROOT, Mosquitto, free_port
from tests.link.helpers import (
    PREFIX,
    Recorder,
    audit_refusing_broker,
    make_config,
    track_event,
    wait_until,
)


def _link(tmp_path: Path, url: str, **broker: object) -> Link:
    return Link(make_config(tmp_path, url, **broker), tmp_path / "state", Health(),
                version="0.0-test", capabilities=[], config_digest="sha256:test")


def _link_to(tmp_path: Path, broker: Any) -> Link:
    """A link to `any_broker` in the highest MQTT version it speaks."""
    return _link(tmp_path, broker.url, mqtt_version=broker.mqtt_version)


def _mosquitto_acl_only(broker: Any) -> None:
    if broker.mqtt_version != "5":
        pytest.skip(f"denies one topic with Mosquitto's acl_file; {type(broker).__name__}'s "
                    "topic permissions are its own mechanism, not set up here")


def _gaps(recorder: Recorder) -> list[dict]:
    return [m.payload for m in recorder.on("events") if m.payload.get("type") == "gap"]


def test_a_publish_the_broker_refuses_becomes_a_broker_refused_gap(tmp_path: Path,
                                                                  any_broker: Any) -> None:
    # On 3.1.1 a refusing broker closes the connection or acknowledges silently: the first is
    # test_a_publish_a_311_broker_refuses_by_disconnecting_does_not_stall_the_link.
    needs_mqtt5(any_broker, "PUBACK reason codes (a refusal the node can see)")
    broker = audit_refusing_broker(tmp_path)
    recorder = Recorder(broker.port).start()
    link = _link(tmp_path, broker.url)
    try:
        link.start()
        link.publish_audit({"seq": 0, "kind": "test"})
        assert recorder.wait_for(lambda: _gaps(recorder), 10), "no gap record"
        gap = _gaps(recorder)[0]
        assert gap["reason"] == "broker_refused"
        assert gap["dropped"] == {"stream": "audit", "session": link.session,
                                  "ranges": [[0, 0]], "count": 1}
        assert wait_until(lambda: link.counters()["backlog"] == 0, 5)
        assert link.counters()["refused"] == 1
        assert not recorder.on("audit")
    finally:
        link.stop()
        recorder.stop()
        broker.stop()


def test_a_refusal_while_another_process_locks_the_outbox_still_becomes_a_gap(
        tmp_path: Path) -> None:
    # The pump deleted a refused row itself: on a locked file the delete threw in the pump
    # (after SQLite's 5 s wait), the drop was never reported and no gap record was written.
    broker = audit_refusing_broker(tmp_path)
    recorder = Recorder(broker.port).start()
    link = _link(tmp_path, broker.url)
    try:
        link.start()
        assert wait_until(lambda: link.connected, 10)
        broker.freeze()  # the refusal comes once the outbox is locked
        link.publish_audit({"seq": 0, "kind": "test"})
        assert wait_until(lambda: link.counters()["in_flight"] == 1, 5)
        lock = sqlite3.connect(link.outbox.path, timeout=0, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        broker.thaw()
        time.sleep(6)  # past SQLite's busy wait (5 s)
        lock.execute("ROLLBACK")
        lock.close()
        assert recorder.wait_for(lambda: _gaps(recorder), 10), "no gap record"
        assert _gaps(recorder)[0]["reason"] == "broker_refused"
        assert wait_until(lambda: link.counters()["backlog"] == 0, 5)
        assert link.counters()["refused"] == 1
    finally:
        link.stop()
        recorder.stop()
        broker.stop()


def test_a_publish_the_broker_answers_by_disconnecting_becomes_a_gap_not_a_stall(
        tmp_path: Path) -> None:
    # Mosquitto throws off a client that sends a packet over max_packet_size (as RabbitMQ does
    # one that publishes where its permissions deny): the old link sent that row again on every
    # reconnect, for ever, and nothing after it got through.
    port = free_port()
    broker = Mosquitto(tmp_path / "broker", port=port, extra=(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_packet_size 20000\n")).start()
    recorder = Recorder(port).start()
    link = _link(tmp_path, broker.url, mqtt_version="3.1.1", reconnect_min_s=0.2,
                 reconnect_max_s=1)
    try:
        link.start()
        assert wait_until(lambda: link.connected, 10)
        link.publish_audit({"seq": 0, "kind": "test", "data": {"blob": "x" * 30_000}})
        link.publish_event(track_event("new"))
        assert recorder.wait_for(lambda: recorder.track_events(), 15), (
            f"nothing got past the row the broker refuses ({link.counters()['connects']} "
            "connects)")
        assert recorder.wait_for(lambda: _gaps(recorder), 5)
        assert _gaps(recorder)[0]["reason"] == "broker_refused"
        assert _gaps(recorder)[0]["dropped"]["stream"] == "audit"
        assert link.counters()["refused"] == 1
    finally:
        link.stop()
        recorder.stop()
        broker.stop()


def test_only_the_same_message_unacknowledged_over_quick_closes_counts_as_refused() -> None:
    watch = RefusalWatch()
    assert [watch.closed(7, 0.1) for _ in range(REFUSED_AFTER)] == [None] * (
        REFUSED_AFTER - 1) + [7]
    # Another message oldest in between (7 was acknowledged): counting starts again.
    assert watch.closed(7, 0.1) is None and watch.closed(8, 0.1) is None
    assert watch.closed(8, 0.1) is None
    # A connection that lived longer than the window proves the broker took what came first.
    assert watch.closed(8, REFUSAL_WINDOW_S + 1) is None
    assert [watch.closed(8, 0.1) for _ in range(REFUSED_AFTER)][-1] == 8
    # Nothing unacknowledged: nothing to blame.
    assert watch.closed(None, 0.1) is None and watch.closed(9, 0.1) is None


def test_a_row_that_can_never_be_published_becomes_an_unpublishable_gap(
        tmp_path: Path, any_broker: Any) -> None:
    # A row left in the outbox whose topic paho refuses (a wildcard): sent for ever it
    # would block nothing, but lost silently it would leave a hole nobody explains.
    state = tmp_path / "state"
    box = Outbox(state / "outbox.sqlite3", max_bytes=10**6, max_age_s=3600)
    box.append(f"{PREFIX}/#", b'{"x":1}', stream="audit", session=1, seq=7,
               priority=PRIORITY_AUDIT, created=time.time())
    box.close()
    recorder = Recorder.for_broker(any_broker).start()
    link = _link_to(tmp_path, any_broker)
    try:
        link.start()
        assert recorder.wait_for(lambda: _gaps(recorder), 10), "no gap record"
        gap = _gaps(recorder)[0]
        assert gap["reason"] == "unpublishable"
        assert gap["dropped"] == {"stream": "audit", "session": 1, "ranges": [[7, 7]],
                                  "count": 1}
        assert wait_until(lambda: link.counters()["backlog"] == 0, 5)
    finally:
        link.stop()
        recorder.stop()


def test_drops_while_the_outbox_cannot_commit_wait_as_one_gap_record_and_all_reach_it(
        tmp_path: Path) -> None:
    # While commits failed, every overflowing publish queued one more gap record beyond
    # MAX_PENDING, for as long as the disk failed. Another process holding the file's write
    # lock fails every commit ("database is locked") as a failing card does.
    link = _link(tmp_path, "mqtt://127.0.0.1:1")  # never started: the rows stay in the file
    blocker = sqlite3.connect(link.outbox.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    published = MAX_PENDING + 1000
    try:
        for _ in range(published):
            link.publish_event(track_event("update"))
        counters = link.counters()
        assert counters["dropped"] >= 1000
        assert counters["uncommitted"] <= MAX_PENDING + 2, "loss accounting grew with the loss"
    finally:
        blocker.rollback()
        blocker.close()
    try:
        assert link.flush(30), "the outbox did not catch up once the lock was released"
        db = sqlite3.connect(link.outbox.path)
        gaps = [json.loads(p) for (p,) in db.execute(
            "SELECT payload FROM outbox WHERE stream = 'gap'")]
        assert sum(g["dropped"]["count"] for g in gaps) == link.counters()["dropped"]
        stored = {seq for (seq,) in db.execute(
            "SELECT seq FROM outbox WHERE stream = 'events'")}
        explained = {seq for g in gaps for lo, hi in g["dropped"]["ranges"]
                     for seq in range(lo, hi + 1)}
        assert stored | explained == set(range(published)) and not stored & explained
        db.close()
    finally:
        link.stop()


def test_a_response_topic_outside_the_nodes_prefix_is_refused_and_counted(
        tmp_path: Path, any_broker: Any) -> None:
    # On 3.1.1 there is no response topic: results go to cmd/result only
    # (test_link_broker.py::test_every_payload_on_every_topic_matches_its_schema).
    needs_mqtt5(any_broker, "response topics")
    recorder = Recorder.for_broker(any_broker, topic="#").start()
    link = _link_to(tmp_path, any_broker)
    link.on_command(lambda m: {"id": None, "status": "rejected", "reason": "test"})
    link.start()
    sender = connected_client(any_broker.port, client_id=f"s-{new_ulid()}")
    try:
        assert wait_until(lambda: link.connected, 10)
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = "elsewhere/inbox"
        props.CorrelationData = b"c1"
        sender.publish(f"{PREFIX}/cmd", b"{}", qos=1, properties=props).wait_for_publish(5)
        assert recorder.wait_for(lambda: recorder.on("cmd/result"), 5)
        time.sleep(0.3)
        assert not [m for m in recorder.messages if m.topic.startswith("elsewhere")]
        assert link.counters()["responses_refused"] == 1
    finally:
        sender.loop_stop()
        link.stop()
        recorder.stop()


def test_reconnect_delays_double_from_the_minimum_to_the_maximum_with_jitter() -> None:
    port = free_port()  # nothing listens: every attempt fails
    client = MqttClient(BrokerOptions(url=f"mqtt://127.0.0.1:{port}", client_id="backoff",
                                      reconnect_min_s=0.1, reconnect_max_s=0.8))
    delays: list[float] = []
    client.start()
    try:
        deadline = time.monotonic() + 6
        while len(delays) < 6 and time.monotonic() < deadline:
            if client.next_delay_s not in delays[-1:]:
                delays.append(client.next_delay_s)
            time.sleep(0.005)
    finally:
        client.stop()
    # Nominal 0.1 (start, first failure), then 0.2, 0.4, 0.8, 0.8: each drawn in [d/2, d].
    assert len(delays) == 6, delays
    rest = [d for d in delays if d > 0.1]
    assert all(0.05 <= d <= 0.1 for d in delays[:len(delays) - len(rest)]), delays
    for got, d in zip(rest, [0.2, 0.4, 0.8, 0.8, 0.8], strict=False):
        assert d / 2 <= got <= d, delays
    assert len(rest) >= 4, delays
    assert len({round(x, 6) for x in delays}) == len(delays), "no jitter"


def test_a_ca_file_with_a_plain_mqtt_url_is_a_config_error(tmp_path: Path) -> None:
    # The installer meant TLS: a connection in the clear would look configured and be open.
    ca = tmp_path / "ca.pem"
    ca.write_text("not read before the check\n")
    with pytest.raises(LinkConfigError, match=r"^broker.ca_file is set but broker.url "
                       r"mqtt://127.0.0.1:1 is not mqtts://: the connection would not be "
                       r"encrypted$"):
        Link(make_config(tmp_path, "mqtt://127.0.0.1:1", ca_file=ca), tmp_path / "state",
             Health(), version="0.1.0", capabilities=[], config_digest="sha256:x")


def test_a_stopped_link_says_so_in_its_health_stage(tmp_path: Path) -> None:
    # Stopped on purpose, not broken: the stage says which.
    health = Health()
    link = Link(make_config(tmp_path, f"mqtt://127.0.0.1:{free_port()}"), tmp_path / "state",
                health, version="0.1.0", capabilities=[], config_digest="sha256:x")
    link.start()
    link.stop()
    stage = health.stages["link"]
    assert (stage.state, stage.reason) == ("failed", "stopped")


def test_a_process_that_never_stops_its_link_still_exits(tmp_path: Path) -> None:
    """A daemon that dies on an error without stopping its link must exit (and systemd
    restart it), not hang on the link's threads: they are daemon threads, every one."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from edgenode.health import Health\n"
        "from edgenode.link import Link\n"
        "from tests.link.helpers import make_config, track_event\n"
        f"tmp = Path({str(tmp_path)!r})\n"
        f"link = Link(make_config(tmp, 'mqtt://127.0.0.1:{free_port()}'), tmp / 'state',\n"
        "            Health(), version='0.1.0', capabilities=[], config_digest='sha256:x')\n"
        "link.start()\n"
        "link.publish_event(track_event('new'))\n"
        "sys.exit(3)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=20)
    assert proc.returncode == 3, proc.stderr


def test_deleted_rows_leave_the_in_flight_map(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", max_bytes=10**6, max_age_s=3600)
    for seq in range(5):
        box.append("t", b"{}", stream="events", session=1, seq=seq, priority=0,
                   created=time.time())
    rows = box.claim(0, limit=5)
    assert set(box.inflight) == {r.id for r in rows}
    box.delete([r.id for r in rows[:3]])
    assert set(box.inflight) == {r.id for r in rows[3:]}
    box.release(r.id for r in rows[3:])
    assert box.inflight == {}
    assert box.backlog == 2
    box.close()


def test_an_echo_of_a_ping_already_seen_proves_nothing(tmp_path: Path,
                                                      mosquitto: Mosquitto) -> None:
    """Only a fresh ping coming back proves the broker carries messages: one replayed from
    earlier (a broker redelivering, or anyone with write access to the topic) counts for
    nothing."""
    recorder = Recorder(mosquitto.port, topic=f"{PREFIX}/ping").start()
    link = _link(tmp_path, mosquitto.url)
    sender = connected_client(mosquitto.port, mosquitto.mqtt_version, "replayer")
    try:
        link.start()
        assert recorder.wait_for(lambda: len(recorder.on("ping")) >= 2, 10)
        old = recorder.on("ping")[0].payload
        assert wait_until(lambda: link.counters()["echoes"] >= 2, 10)
        before = link.counters()["echoes"]
        for _ in range(50):
            sender.publish(f"{PREFIX}/ping", json.dumps(old), qos=1).wait_for_publish(5)
        assert recorder.wait_for(
            lambda: sum(m.payload == old for m in recorder.on("ping")) == 51, 10)
        time.sleep(0.2)
        assert link.counters()["echoes"] - before < 10  # its own pings only
    finally:
        sender.disconnect()
        sender.loop_stop()
        link.stop()
        recorder.stop()


def test_a_link_whose_pings_never_come_back_counts_as_lost(tmp_path: Path,
                                                           any_broker: Any) -> None:
    _mosquitto_acl_only(any_broker)
    # The broker lets the node do everything but ping itself (an old ACL): the link can never
    # be checked, so it must not stay "up" for the link-loss rule by default.
    acl = tmp_path / "acl"
    acl.write_text(f"pattern readwrite {PREFIX}/events\npattern readwrite {PREFIX}/status\n"
                   f"pattern readwrite {PREFIX}/health\npattern readwrite {PREFIX}/cmd\n"
                   f"pattern readwrite {PREFIX}/audit\n")
    port = free_port()
    broker = Mosquitto(tmp_path / "broker", port=port, extra=(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nacl_file {acl}\n")).start()
    health = Health()
    link = Link(make_config(tmp_path, broker.url), tmp_path / "state", health,
                version="0.0-test", capabilities=[], config_digest="sha256:test")
    changes: list[bool] = []
    link.on_link_change(changes.append)
    try:
        link.start()
        assert wait_until(lambda: link.connected, 10)
        assert wait_until(lambda: changes == [False], 8), changes
        assert link.counters()["carries_commands"] is False
        assert link.counters()["echoes"] == 0 and link.counters()["pings"] > 0
        assert wait_until(lambda: health.snapshot()["link"]["state"] == "degraded", 2)
        assert health.snapshot()["link"]["reason"].endswith(
            "but the node's pings do not come back through it: commands may not get through "
            "(broker frozen, or ping not allowed by its ACL?)")
    finally:
        link.stop()
        broker.stop()


@pytest.mark.long
def test_a_publish_a_311_broker_refuses_by_disconnecting_does_not_stall_the_link(
        tmp_path: Path, rabbitmq: Any) -> None:
    # MQTT 3.1.1 lets a broker refuse by closing the connection; RabbitMQ does. The old link
    # sent the refused row again on every reconnect (~60 a 10 s) and nothing after it went
    # through; now it becomes a broker_refused gap, as an MQTT 5 refusal does.
    # The node may write everything of its own but `audit` (RabbitMQ's topic permissions
    # match the AMQP routing key: `/` becomes `.`).
    user = f"node-{new_ulid()[-8:].lower()}"
    rabbitmq.ctl("add_user", user, "pw")
    rabbitmq.ctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
    own = PREFIX.replace("/", r"\.")
    rabbitmq.ctl("set_topic_permissions", "-p", "/", user, "amq.topic",
                 rf"^{own}\.(events|status|health|effector|selftest|cmd|ping)(\..*)?$", ".*")
    password = tmp_path / "pw"
    password.write_text("pw\n")
    recorder = Recorder.for_broker(rabbitmq).start()
    link = _link(tmp_path, rabbitmq.url, mqtt_version="3.1.1", username=user,
                 password_file=password, reconnect_min_s=0.2, reconnect_max_s=1)
    try:
        link.start()
        assert wait_until(lambda: link.connected, 10)
        link.publish_audit({"seq": 0, "kind": "test"})
        link.publish_event(track_event("new"))
        assert recorder.wait_for(lambda: recorder.track_events(), 10), (
            f"the event never got past the refused audit row ({link.counters()['connects']} "
            "connects)")
        assert recorder.wait_for(lambda: _gaps(recorder), 5)
        gap = _gaps(recorder)[0]
        assert gap["reason"] == "broker_refused"
        assert gap["dropped"] == {"stream": "audit", "session": link.session,
                                  "ranges": [[0, 0]], "count": 1}
        assert link.counters()["refused"] == 1
        assert not recorder.on("audit")
        # The link stays up now that the refused row is gone.
        connects = link.counters()["connects"]
        time.sleep(1.0)
        assert link.counters()["connects"] == connects and link.connected
    finally:
        link.stop()
        recorder.stop()
