"""The node's link to the control room: topics, durable events, availability, commands.

Topics and payloads are the contract in docs/mqtt.md. Events and audit records go through the
on-disk outbox (edgenode/link/outbox.py) and leave it only on PUBACK; state topics (status,
health, effector, selftest) are retained, latest wins, and sent again on every connect.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgenode.config import Config
from edgenode.health import Health
from edgenode.link.credentials import LinkConfigError, broker_password
from edgenode.link.losses import Loss
from edgenode.link.mqtt import BrokerOptions, InboundMessage, MqttClient
from edgenode.link.outbox import Dropped, Outbox, Record
from edgenode.link.payloads import (
    PRIORITY_AUDIT,
    PRIORITY_GAP,
    PRIORITY_NEW_END,
    PRIORITY_UPDATE,
    STATE_NAMES,
    Envelope,
    encode,
    result_id,
)
from edgenode.link.pump import Pump
from edgenode.link.ratelimit import TokenBucket
from edgenode.link.session import next_session
from edgenode.link.topics import Topics
from edgenode.link.watch import LinkWatch
from edgenode.link.writer import OutboxWriter

log = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.sqlite3"
PUMP_WINDOW = 256  # outbox rows handed to the client and not yet acknowledged
STOP_FLUSH_S = 1.0
COMMAND_QUEUE = 256
VIGILANT_STATES = ("ARMED", "ENGAGED")  # effector states in which link loss drops the relay
# Results of rejected commands (junk, mostly) go out at most this fast: a flood of junk must
# not fill the client's in-flight window ahead of the answer to a signed `safe`. Far above
# what operators send; counted in health.link.results_suppressed when it bites.
REJECTED_RESULTS_PER_S = 1000.0
REJECTED_RESULTS_BURST = 2000.0
REFUSED_LOG_S = 60.0  # one log line per this long for response topics outside our prefix
_STATE_ORDER = {"ok": 0, "starting": 1, "degraded": 2, "failed": 3}

CommandHandler = Callable[[InboundMessage], dict[str, Any] | None]


class Link:
    """The daemon's MQTT link. Construct, register handlers, `start()`, `stop()`.

    `publish_event`/`publish_audit` work before `start()` and while the broker is away: they
    hand the record to the outbox's group commit (edgenode/link/writer.py) and return; `flush`
    waits until everything handed over is on disk.
    """

    def __init__(self, config: Config, state_dir: Path, health: Health, *,
                 version: str, capabilities: list[str], config_digest: str,
                 rejected_results: TokenBucket | None = None):
        self._config = config
        broker = config.broker
        self.topics = Topics(config.node.site, config.node.id)
        self.broker_url = broker.url
        self.outbox = Outbox(state_dir / OUTBOX_FILE,
                             max_bytes=int(config.storage.outbox_max_mb * 1024 * 1024),
                             max_age_s=config.storage.outbox_max_age_h * 3600)
        self.session = next_session(state_dir, self.outbox)
        self._env = Envelope(config.node.site, config.node.id, self.session)
        self._birth_facts = {"version": version, "capabilities": list(capabilities),
                             "config_digest": config_digest}
        try:
            self._client = MqttClient(self._broker_options(), on_connect=self._on_connect,
                                      on_disconnect=self._on_disconnect)
        except (ssl.SSLError, OSError) as exc:
            raise LinkConfigError(
                f"broker.ca_file/cert_file/key_file ({broker.ca_file}, {broker.cert_file}, "
                f"{broker.key_file}): cannot load for {broker.url}: {exc}") from None
        self._client.on_publish_result(self._on_publish_result)
        self._outbox_error: str | None = None
        self._writer = OutboxWriter(self.outbox, on_committed=lambda: self._pump.wake(),
                                    on_drops=self._record_drops, on_error=self._set_outbox_error,
                                    gap_record=self._gap_record)
        self._pump = Pump(self.outbox, self._client, replay_rate_per_s=broker.replay_rate_per_s,
                          window=PUMP_WINDOW, on_drops=self._record_drops,
                          delete=self._writer.delete)
        self._stage = health.register("link", deadline_s=5.0)
        self._health = health
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq_lock = threading.Lock()
        # Counters (self._n) are bumped from the network, command, writer and pump threads.
        self._drops_lock = threading.Lock()
        self._seq = {"events": 0, "audit": 0}
        self._state_lock = threading.Lock()
        self._states: dict[str, bytes] = {}  # encoded retained payloads, latest wins
        self._health_extra: dict[str, Any] = {}
        self._health_due = 0.0
        self._health_parts: dict[str, str] = {}
        self._next_expiry = 0.0
        self._handler: CommandHandler | None = None
        self._slow: Callable[[InboundMessage], bool] = lambda message: True
        self._commands: queue.Queue[InboundMessage | None] = queue.Queue(COMMAND_QUEUE)
        self._cmd_thread: threading.Thread | None = None
        self._listeners: list[Callable[[bool], None]] = []
        self._ever_connected = False
        self._n = {"dropped": 0, "gaps": 0, "connects": 0, "cmd_received": 0,
                   "cmd_results": 0, "cmd_overflow": 0, "responses_refused": 0,
                   "results_suppressed": 0}
        self._rejected_results = rejected_results or TokenBucket(REJECTED_RESULTS_PER_S,
                                                                 REJECTED_RESULTS_BURST)
        self._refused_logged = -REFUSED_LOG_S
        # Retain as published: a command published with the retain flag is refused even
        # when it reaches us live (it would come back on every reconnect).
        self._client.subscribe(self.topics.cmd, self._on_cmd_message, qos=1,
                               retain_as_published=True)
        self._watch = LinkWatch(self._client, self.topics.ping, silence_s=broker.silence_s,
                                payload=self._ping_payload, on_change=self._notify)

    def _broker_options(self) -> BrokerOptions:
        broker = self._config.broker
        offline = encode(self._env.offline(reason="connection_lost", t=None))
        for key in ("ca_file", "cert_file", "key_file"):
            path = getattr(broker, key)
            if path is not None and not Path(path).is_file():
                raise LinkConfigError(f"broker.{key}: {path} is not a readable file")
        if broker.url.startswith("mqtt://") and broker.ca_file is not None:
            raise LinkConfigError(f"broker.ca_file is set but broker.url {broker.url} is not "
                                  "mqtts://: the connection would not be encrypted")
        options = BrokerOptions(
            url=broker.url, client_id=self.topics.client_id, keepalive_s=broker.keepalive_s,
            mqtt_version=broker.mqtt_version, username=broker.username,
            password=broker_password(broker), ca_file=broker.ca_file,
            cert_file=broker.cert_file, key_file=broker.key_file,
            will_topic=self.topics.status, will_payload=offline,
            reconnect_min_s=broker.reconnect_min_s, reconnect_max_s=broker.reconnect_max_s,
            max_inflight=broker.max_inflight)
        return options

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background (never blocks on the broker) and start the pump."""
        self._stage.set("starting", f"connecting to {self.broker_url}")
        self._thread = threading.Thread(target=self._loop, name="link", daemon=True)
        self._thread.start()
        self._cmd_thread = threading.Thread(target=self._command_loop, name="link-cmd",
                                            daemon=True)
        self._cmd_thread.start()
        self._watch.start()
        self._client.start()

    def stop(self) -> None:
        """Flush what goes out within about a second, publish `offline`, disconnect.
        Rows not acknowledged stay in the outbox for the next start. Never raises."""
        # Signal, let the link's own thread drain the pump (the only thread that touches it),
        # then join; whatever a thread that did not end still uses is left alone.
        loop_alive = False
        try:
            self._watch.stop()
            self._writer.flush()
            self._stop.set()
            self._pump.wake()
            if self._thread is not None:
                self._thread.join(timeout=STOP_FLUSH_S + 3)
                loop_alive = self._thread.is_alive()
                if loop_alive:
                    log.error("link: loop thread did not stop; outbox left open for it")
            if self._client.connected.is_set():
                info = self._client.publish(
                    self.topics.status, encode(self._env.offline(reason="stopped",
                                                                 t=time.time())),
                    qos=1, retain=True)
                info.wait_for_publish(timeout=1.0)
        except Exception:
            log.exception("link: error while stopping")
        finally:
            try:
                self._client.stop()
            except Exception:
                log.exception("link: error while disconnecting")
            if self._cmd_thread is not None:
                self._commands.put(None)
                self._cmd_thread.join(timeout=2)
            if not loop_alive:
                if self._thread is None:
                    self._pump.finish()  # never started: nothing in flight, nothing to drain
                if self._writer.close():
                    self.outbox.close()
                else:
                    log.error("link: outbox writer did not stop; outbox left open for it")
            self._stage.set("failed", "stopped")

    # -- outbound ----------------------------------------------------------------------
    def publish_event(self, event: dict[str, Any]) -> None:
        """Wrap a detect event ({type, object_id, before, after}) and store it for sending."""
        self.publish_events([event])

    def publish_events(self, events: list[dict[str, Any]]) -> None:
        """Like `publish_event` for events that arrive together (one radar frame's): an
        invalid event raises ValueError and none of them is stored."""
        self._append_many("events", self.topics.events, [
            (PRIORITY_UPDATE if event.get("type") == "update" else PRIORITY_NEW_END,
             lambda seq, t, event=event: self._env.event(event, seq, t))
            for event in events])

    def publish_audit(self, record: dict[str, Any]) -> None:
        """Store an audit record (published verbatim under `record`) for sending."""
        self._append("audit", self.topics.audit, PRIORITY_AUDIT,
                     lambda seq, t: self._env.audit(record, seq, t))

    def _append(self, stream: str, topic: str, priority: int,
                build: Callable[[int, float], dict[str, Any]]) -> None:
        self._append_many(stream, topic, [(priority, build)])

    def _append_many(self, stream: str, topic: str,
                     items: list[tuple[int, Callable[[int, float], dict[str, Any]]]]) -> None:
        if not items:
            return
        with self._seq_lock:  # seq order == outbox order within the session
            first = self._seq[stream]
            t = time.time()
            records = [Record(topic, encode(build(first + i, t)), stream, self.session,
                              first + i, priority, t)
                       for i, (priority, build) in enumerate(items)]
            self._writer.submit(records)
            self._seq[stream] = first + len(records)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every event and audit record handed over so far is committed to the
        outbox file; False on timeout."""
        return self._writer.flush(timeout_s)

    def _set_outbox_error(self, error: str | None) -> None:
        self._outbox_error = error

    def _record_drops(self, drops: list[Dropped]) -> None:
        """Every drop is counted and goes into a gap record on `events`: never silent.
        Called from the writer's, the pump's and the link's threads; the writer, the one
        thread that appends to the outbox, merges drops not yet committed into one gap
        record per stream, session and reason (drops its own appends cause come back here)."""
        with self._drops_lock:
            for drop in drops:
                self._n["dropped"] += len(drop.seqs)  # under _drops_lock, as _count
                log.warning("link: dropped %d %s record(s) of session %d (%s)",
                            len(drop.seqs), drop.stream, drop.session, drop.reason)
        try:
            self._writer.lost(drops)
        except RuntimeError:  # stopping: the writer is closed
            log.error("link: gap record(s) for %d drop(s) not stored at stop", len(drops))

    def _gap_record(self, loss: Loss) -> Record:
        self._count("gaps")  # gap records written; `dropped` counts the records they explain
        t = time.time()
        gap = self._env.gap(stream=loss.stream, session=loss.session, ranges=loss.ranges,
                            count=loss.count, reason=loss.reason, t=t)
        return Record(self.topics.events, encode(gap), "gap", self.session, None,
                      PRIORITY_GAP, t)

    def set_state(self, name: str, payload: dict[str, Any]) -> None:
        """Retained state: "health" (merged into the link's own health report), "effector",
        "selftest". Latest wins; re-sent on every connect."""
        if name not in STATE_NAMES:
            raise ValueError(f"link: unknown state {name!r} (one of {STATE_NAMES})")
        if name == "health":
            with self._state_lock:
                self._health_extra = dict(payload)
            self._publish_health()
            return
        if name == "effector":
            # Armed or engaged: the link-loss rule is live, so silence must be noticed fast.
            self._watch.set_vigilant(payload.get("state") in VIGILANT_STATES)
        self._retain(name, encode(self._env.state(payload, time.time())))

    def _retain(self, name: str, body: bytes) -> None:
        """Keep `body` as the latest of retained state `name` and publish it, in one step
        under the lock that a (re)connect's re-send of every state takes too: otherwise that
        re-send could publish an older body after this one, and the broker would keep it."""
        with self._state_lock:
            self._states[name] = body
            if self._client.connected.is_set():
                self._client.publish(self.topics.topic(name), body, qos=1, retain=True)

    def _health_payload(self) -> bytes:
        parts = self._health.snapshot()
        worst = max((p["state"] for p in parts.values()), key=lambda s: _STATE_ORDER[str(s)],
                    default="ok")
        with self._state_lock:
            extra = dict(self._health_extra)
        body = {"state": worst, "parts": parts, **extra, "link": self.counters()}
        return encode(self._env.state(body, time.time()))

    def _publish_health(self) -> None:
        body = self._health_payload()
        self._health_due = time.monotonic() + self._config.broker.health_period_s
        self._retain("health", body)

    # -- the link's loop ---------------------------------------------------------------
    def _loop(self) -> None:
        # Like health.LoopThread (which cannot be joined: its `_stop` attribute shadows
        # threading.Thread._stop); a failing step reports and retries.
        while not self._stop.is_set():
            self._stage.stall_point()
            try:
                self._step()
            except Exception as exc:
                self._stage.set("failed", f"{type(exc).__name__}: {exc}")
                log.exception("link: loop step failed")
                self._stop.wait(1.0)
            self._stage.beat()
        # Stopping: send what goes out within STOP_FLUSH_S, then hand back what is in flight.
        try:
            if self._client.connected.is_set():
                self._writer.flush(STOP_FLUSH_S)
                self._pump.drain(STOP_FLUSH_S)
        except Exception:
            log.exception("link: error while draining at stop")
        finally:
            self._pump.finish()

    def _step(self) -> None:
        self._pump.step(0.25)
        now = time.monotonic()
        if now >= self._next_expiry:
            self._next_expiry = now + 10
            drops = self.outbox.expire()
            if drops:
                self._record_drops(drops)
        parts = {name: str(p["state"]) for name, p in self._health.snapshot().items()}
        if now >= self._health_due or parts != self._health_parts:
            self._health_parts = parts
            self._publish_health()
        self._update_stage()

    def _update_stage(self) -> None:
        if self._outbox_error:
            self._stage.set("degraded", self._outbox_error)
            return
        if self._client.connected.is_set():
            if self._watch.verdict is False:
                self._stage.set("degraded", f"connected to {self._client.broker} but the "
                                "node's pings do not come back through it: commands may not "
                                "get through (broker frozen, or ping not allowed by its ACL?)")
                return
            self._stage.set("ok")
            return
        why = self._client.last_error or ("connection lost" if self._ever_connected
                                          else "connecting")
        state = "starting" if why == "connecting" else "failed"
        self._stage.set(state, f"broker {self._client.broker} ({self.broker_url}): {why}")

    # -- connection --------------------------------------------------------------------
    def _on_connect(self) -> None:
        self._ever_connected = True
        self._count("connects")
        # The birth and states still unacknowledged from the last connection are stale:
        # paho would re-send them after the fresh ones published here.
        self._client.forget_retained({self.topics.status, *(self.topics.topic(name) for name
                                                            in STATE_NAMES)})
        self._publish_birth_and_states()
        self._pump.connected()
        self._watch.connected()  # up only once a ping came back (edgenode/link/watch.py)

    def rebirth(self) -> bool:
        """Publish the birth and every retained state again (the `rebirth` command: a
        control room that lost its retained view asks for it). False while disconnected."""
        if not self._client.connected.is_set():
            return False
        self._publish_birth_and_states()
        return True

    def _publish_birth_and_states(self) -> None:
        node = self._config.node
        birth = self._env.online(
            t=time.time(), version=self._birth_facts["version"], hardware=node.hardware,
            capabilities=self._birth_facts["capabilities"],
            position={"datum": "WGS84", "latitude_deg": node.latitude_deg,
                      "longitude_deg": node.longitude_deg, "altitude_m": node.altitude_m},
            mast_heading_deg=node.mast_heading_deg,
            config_digest=self._birth_facts["config_digest"], client_id=self.topics.client_id,
            mqtt_version=self._config.broker.mqtt_version)
        self._client.publish(self.topics.status, encode(birth), qos=1, retain=True)
        health = self._health_payload()
        with self._state_lock:
            self._states["health"] = health
            for name, body in self._states.items():
                self._client.publish(self.topics.topic(name), body, qos=1, retain=True)

    def _on_disconnect(self, reason: str) -> None:
        self._pump.disconnected()
        self._watch.disconnected()

    def _ping_payload(self, nonce: str, n: int) -> bytes:
        return encode(self._env.ping(nonce=nonce, n=n, t=time.time()))

    def _notify(self, up: bool) -> None:
        for listener in list(self._listeners):
            try:
                listener(up)
            except Exception:
                log.exception("link: link-change listener failed")

    def on_link_change(self, listener: Callable[[bool], None]) -> None:
        """`listener(True)` once the link carries messages (connected, `cmd` subscribed, a
        ping echoed through the broker), `listener(False)` when it no longer does (connection
        lost, or no echo for broker.silence_s): edgenode/link/watch.py."""
        self._listeners.append(listener)

    def _on_publish_result(self, mid: int, reason_code: int) -> None:
        self._pump.on_publish_result(mid, reason_code)

    @property
    def connected(self) -> bool:
        """Connected, and every subscription (`cmd`) acknowledged by the broker."""
        return self._client.connected.is_set() and self._client.subscribed.is_set()

    # -- commands ----------------------------------------------------------------------
    def on_command(self, handler: CommandHandler,
                   slow: Callable[[InboundMessage], bool] = lambda message: True) -> None:
        """`handler(message)` for every message on .../cmd, retained ones included (the
        handler refuses those: `message.retain`). A returned dict is the result: published
        on .../cmd/result (QoS 1) and, for an MQTT 5 command with a response topic under
        .../cmd/result/, there too with its correlation data. None publishes nothing.

        Messages for which `slow(message)` is false are handled at once on the network
        thread (an engage must not wait for a thread hand-over); the rest go to the command
        thread, so a long handler (a self-test) never holds up keepalives and PUBACKs."""
        self._handler, self._slow = handler, slow

    def _on_cmd_message(self, message: InboundMessage) -> None:
        self._count("cmd_received")
        if not self._slow(message):
            self._handle_command(message)
            return
        try:
            self._commands.put_nowait(message)
        except queue.Full:
            # Every command gets one answer, this one too (issue 22.15).
            overflow = self._count("cmd_overflow")
            if overflow == 1 or overflow % 1000 == 0:
                log.error("link: command queue full (%d); %d command(s) answered busy so far",
                          COMMAND_QUEUE, overflow)
            self._publish_result(message, {
                "id": result_id(message.payload), "status": "rejected",
                "reason": f"busy: {COMMAND_QUEUE} slow commands are waiting; try again"})

    def _command_loop(self) -> None:
        while True:
            message = self._commands.get()
            if message is None:
                return
            self._handle_command(message)

    def _handle_command(self, message: InboundMessage) -> None:
        handler = self._handler
        try:
            if handler is None:
                result: dict[str, Any] | None = {
                    "id": result_id(message.payload), "status": "rejected",
                    "reason": "this node has no command handler"}
            else:
                result = handler(message)
        except Exception as exc:
            log.exception("link: command handler failed")
            result = {"id": result_id(message.payload), "status": "error",
                      "reason": f"internal error: {type(exc).__name__}: {exc}"}
        if result is None:
            return
        self._publish_result(message, result)

    def _publish_result(self, message: InboundMessage, result: dict[str, Any]) -> None:
        if result.get("status") == "rejected" and not self._rejected_results.take():
            self._count("results_suppressed")
            return
        body = encode(self._env.result(result, time.time()))
        self._client.publish(self.topics.cmd_result, body, qos=1)
        self._count("cmd_results")
        if message.response_topic:
            if self.topics.is_own_response_topic(message.response_topic):
                self._client.publish(message.response_topic, body, qos=1,
                                     correlation_data=message.correlation_data)
                return
            refused = self._count("responses_refused")
            now = time.monotonic()
            if now - self._refused_logged >= REFUSED_LOG_S:  # junk may carry one each
                self._refused_logged = now
                log.warning("link: response topic %r is outside %s/; result sent on %s only "
                            "(%d so far)", message.response_topic[:200], self.topics.cmd_result,
                            self.topics.cmd_result, refused)

    def _count(self, name: str) -> int:
        with self._drops_lock:
            self._n[name] += 1
            return self._n[name]

    # -- counters ----------------------------------------------------------------------
    def _counts(self) -> dict[str, int]:
        with self._drops_lock:
            return dict(self._n)

    def counters(self) -> dict[str, Any]:
        """Outbox and link counters (also in every health report under `link`)."""
        pump = self._pump.counters
        return {"session": self.session, "connected": self.connected,
                "backlog": self.outbox.backlog, "backlog_bytes": self.outbox.backlog_bytes,
                "in_flight": self._pump.in_flight, "uncommitted": self._writer.pending,
                "published": pump.published,
                "replayed": pump.replayed, "refused": pump.refused,
                "outbox_resets": self.outbox.reset_corrupt, **self._counts(),
                "carries_commands": self._watch.up, **self._watch.counters,
                "properties_repaired": self._client.repaired,
                "last_error": self._client.last_error}

