"""Transport and lifecycle: the node as a SAPIENT sensor (and effector) module over TCP.

One thread owns the socket. It connects (TLS optional), registers and waits for the
RegistrationAck, sends a StatusReport every status interval, turns track events into
DetectionReports and answers Tasks. The detection thread only puts events on a bounded queue
(`publish_event`), so a slow or absent peer never holds it up. SAPIENT is live: an event that
arrives while the node is not registered is dropped and counted, never replayed.

A stream that can no longer be read as frames (a length above max_message_bytes, a frame that
is not a SapientMessage, a frame left unfinished) resets the connection with the reason logged;
the node reconnects with backoff and registers again. Messages are stamped when they are sent,
and the node refuses to connect while the clock is not synchronised: a middleware drops a
message stamped more than 0.9 s before or 0.1 s after it arrives.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import select
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgenode.config import Config
from edgenode.detect.regions import Region
from edgenode.health import Health, LoopThread
from edgenode.interop.sapient import messages
from edgenode.interop.sapient.effector_tasks import EffectorRequest
from edgenode.interop.sapient.framing import (
    FrameReader,
    FramingError,
    decode_payload,
    encode_frame,
)
from edgenode.interop.sapient.identity import UUID4, load_node_id
from edgenode.interop.sapient.proto import Alert, SapientMessage, StatusReport, TaskAck
from edgenode.interop.sapient.tasks import Decision, Settings, decide
from edgenode.ulid import new_ulid

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 5.0
SEND_TIMEOUT_S = 2.0  # a peer that does not read for this long is reset
FRAME_TIMEOUT_S = 10.0  # an unfinished frame older than this is a truncated message
POLL_S = 0.1
SAME_OBJECT_MIN_S = 0.08  # two reports of one object: one timestamp, or >= 80 ms apart
# The effector's entry for an authenticated issuer (edgenode.control's Effector.handle_trusted):
# (issuer, action, params, where it came from) -> the command result {"status", "reason", ...}.
EffectorEntry = Callable[[str, str, dict[str, Any], dict[str, Any]], dict[str, Any]]


class SapientClient:
    name = "sapient"

    def __init__(self, config: Config, state_dir: Path, health: Health, *, version: str,
                 clock_synced: Callable[[], bool],
                 selftest: Callable[[], dict[str, Any] | None] = lambda: None,
                 effector: EffectorEntry | None = None,
                 regions: Callable[[tuple[Region, ...]], None] | None = None):
        """`selftest`: the node's last self-test report (its failed checks are WARNINGs in the
        StatusReport), or None when none has run. `effector`: the effector's entry for an
        authenticated issuer (Effector.handle_trusted), used only with [sapient]
        effector_tasks = true. `regions`: where the tracker may start tracks (the daemon's
        detection stage), called whenever the active task's regions change, and only over
        mutual TLS: a peer nobody authenticated must not keep the node from tracking an area
        (its regions then filter only the reports sent to it)."""
        if config.sapient is None:
            raise ValueError("SapientClient needs a [sapient] section")
        self.config, self.section = config, config.sapient
        self.version = version
        self.node_id = load_node_id(state_dir)
        self._clock_synced = clock_synced
        self._effector = effector
        sec = config.sapient
        mutual = bool(sec.tls and sec.ca_file is not None and sec.cert_file is not None)
        self._on_regions = regions if mutual else None
        self._engage_task: str | None = None  # the engage task last accepted (STOP disengages)
        # (issuer, monotonic end) of that engage: it ends when the connection it came on does.
        self._engagement: tuple[str, float] | None = None
        self._selftest = selftest
        self._health = health
        self.stage = health.register(self.name, deadline_s=CONNECT_TIMEOUT_S + 10.0)
        self.counters: Counter[str] = Counter()
        self._counters_lock = threading.Lock()  # counted from the detection thread too
        self._events: queue.Queue[dict[str, Any]] = queue.Queue(self.section.queue_max)
        self._stop = threading.Event()
        self._thread = LoopThread(self.stage, self._step, self._stop)
        self._sock: socket.socket | None = None
        self._reader = FrameReader(self.section.max_message_bytes)
        self._frame_since: float | None = None
        self._backoff = self.section.reconnect_min_s
        self._next_connect = 0.0
        self.registered = False
        self._register_at: float | None = None  # when to (re)send the Registration
        self._registration_deadline = 0.0
        self._next_status = 0.0
        self._last_status: tuple[int, tuple[str, ...]] | None = None
        self.settings = Settings()
        self._last_stamp: dict[str, float] = {}  # object id -> timestamp of its last report
        self._last_sent: dict[str, float] = {}  # object id -> monotonic time of last report
        self._reported: set[str] = set()
        self._drone_alerts: dict[str, str] = {}  # object id -> alert id
        self._part_alerts: dict[str, str] = {}  # stage name -> alert id

    # -- the daemon's side -------------------------------------------------------------------
    def start(self) -> None:
        log.info("sapient: node id %s, peer %s:%d%s", self.node_id, self.section.host,
                 self.section.port, " (TLS)" if self.section.tls else "")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self._sock is not None and self.registered:
            try:
                self._send(status_report=messages.goodbye(self.config))
                log.info("sapient: GOODBYE sent")
            except OSError as exc:
                log.warning("sapient: GOODBYE not sent: %s", exc)
        self._close()

    def publish_event(self, event: dict[str, Any]) -> None:
        """Called by the detection thread for every track event; never blocks."""
        if not self.registered:
            self._count("reports_dropped_disconnected")
            return
        try:
            self._events.put_nowait(event)
        except queue.Full:
            self._count("reports_dropped_queue_full")

    def snapshot(self) -> dict[str, int]:
        """For the node's health report (`counters.sapient`): counts, and the connection's
        state as 0/1 (the stage's state and reason are in `parts.sapient`)."""
        with self._counters_lock:
            counts = dict(self.counters)
        return {"registered": int(self.registered), "connected": int(self._sock is not None),
                "objects": max(len(t) for t in (self._last_stamp, self._last_sent,
                                                self._reported, self._drone_alerts)),
                **counts}

    def _count(self, name: str) -> None:
        with self._counters_lock:
            self.counters[name] += 1

    # -- the thread ----------------------------------------------------------------------------
    def _step(self) -> None:
        now = time.monotonic()
        if self._sock is None:
            self._drain_dropped()
            if now < self._next_connect:
                self._stop.wait(min(POLL_S * 2, self._next_connect - now))
                return
            self._connect()
            return
        try:
            self._timers(now)
            self._send_events()
            self._read()
        except FramingError as exc:
            self._reset(f"unusable stream: {exc}")
        except OSError as exc:
            self._reset(f"connection failed: {exc}")

    def _connect(self) -> None:
        section = self.section
        if not self._clock_synced():
            self._retry_later("clock not synchronised: a SAPIENT peer refuses messages stamped "
                              "more than 0.9 s off; not connecting until NTP has synchronised")
            return
        try:
            sock = socket.create_connection((section.host, section.port), CONNECT_TIMEOUT_S)
            if section.tls:
                context = ssl.create_default_context(
                    cafile=str(section.ca_file) if section.ca_file else None)
                if section.cert_file and section.key_file:
                    context.load_cert_chain(str(section.cert_file), str(section.key_file))
                sock = context.wrap_socket(sock, server_hostname=section.host)
        except (OSError, ssl.SSLError) as exc:
            self._retry_later(f"cannot connect to {section.host}:{section.port}: {exc}")
            return
        sock.settimeout(SEND_TIMEOUT_S)
        self._sock = sock
        self._reader = FrameReader(section.max_message_bytes)
        self._frame_since = None
        self._count("connects")
        log.info("sapient: connected to %s:%d", section.host, section.port)
        self._register_at = time.monotonic()

    def _retry_later(self, reason: str) -> None:
        self.stage.set("degraded", reason)
        delay = self._backoff * random.uniform(0.8, 1.2)
        self._next_connect = time.monotonic() + delay
        self._backoff = min(self._backoff * 2, self.section.reconnect_max_s)

    def _reset(self, reason: str) -> None:
        log.warning("sapient: resetting the connection to %s:%d: %s", self.section.host,
                    self.section.port, reason)
        self._count("resets")
        self._close()
        self._retry_later(reason)

    def _close(self) -> None:
        self.registered = False
        self._end_engagement_of_lost_peer()
        self._register_at = None
        if self.settings.regions and self._on_regions is not None:
            # A peer that is gone cannot see or lift its regions: the tracker starts tracks
            # everywhere again (the reports' filter waits for the next registration, which
            # drops the task).
            self._on_regions(())
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None

    def _drain_dropped(self) -> None:
        while True:
            try:
                self._events.get_nowait()
            except queue.Empty:
                return
            self._count("reports_dropped_disconnected")

    def _send(self, **content: Any) -> float:
        """Stamp and send one message; returns its timestamp."""
        return self._send_stamped(time.time(), **content)

    def _send_stamped(self, stamp: float, **content: Any) -> float:
        if self._sock is None:
            raise OSError("sapient: not connected")
        message = messages.wrap(self.node_id, stamp, **content)
        self._sock.sendall(encode_frame(message))
        self._count("sent_" + next(iter(content)))
        return stamp

    # -- lifecycle ------------------------------------------------------------------------------
    def _timers(self, now: float) -> None:
        if self._register_at is not None and now >= self._register_at:
            self._register_at = None
            self.registered = False
            self._send(registration=messages.registration(self.config, self.version))
            self._registration_deadline = now + self.section.registration_timeout_s
            self._count("registrations_sent")
            log.info("sapient: Registration sent as node %s", self.node_id)
        if not self.registered:
            if self._register_at is None and now > self._registration_deadline:
                raise OSError(f"no RegistrationAck within registration_timeout_s "
                              f"{self.section.registration_timeout_s:g}")
            return
        if now >= self._next_status:
            self._send_status()

    def _send_status(self) -> None:
        system, statuses = messages.system_state(self._health.snapshot(), self._selftest())
        # Which parts are off and how, not the wording of their reasons (a count of seconds).
        key = (system, tuple(s.status_value.split(" (")[0] for s in statuses))
        new = key != self._last_status  # the first after registration is always INFO_NEW
        self._send(status_report=messages.status_report(
            self.config, system, statuses, new=new, task_id=self.settings.task_id))
        self._last_status = key
        self._next_status = time.monotonic() + self.section.status_interval_s
        self._part_alerts_for(statuses)

    def _registered(self) -> None:
        self.registered = True
        self._backoff = self.section.reconnect_min_s
        self._last_status = None
        self._count("registrations_accepted")
        # A peer that registers the node anew may have restarted and forgotten its tasks and
        # alerts: a filter it no longer knows of must not hide tracks from it.
        if self.settings != Settings():
            log.warning("sapient: task %s no longer applies after a new registration; "
                        "reporting with the defaults", self.settings.task_id)
            self._apply(Settings())
        # What was kept per object belongs to the old session: ends lost while the node was
        # not registered would otherwise keep it for ever.
        for table in (self._reported, self._last_stamp, self._last_sent, self._drone_alerts):
            table.clear()
        self._part_alerts.clear()
        self.stage.set("ok")
        log.info("sapient: registered with %s:%d", self.section.host, self.section.port)
        self._send_status()

    def _refused(self, reasons: list[str], how: str) -> None:
        self._count("registrations_refused")
        log.warning("sapient: Registration refused (%s): %s; registering again in %.1f s", how,
                    "; ".join(reasons) or "no reason given", self._backoff)
        self.stage.set("degraded", f"registration refused: {'; '.join(reasons)}"[:200])
        self.registered = False
        self._register_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, self.section.reconnect_max_s)

    # -- reports -------------------------------------------------------------------------------
    def _send_events(self) -> None:
        for _ in range(self.section.queue_max):
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            self._report(event)

    def _report(self, event: dict[str, Any]) -> None:
        oid = str(event["object_id"])
        state = event.get("after") or event.get("before") or {}
        ended = event["type"] == "end"
        now = time.monotonic()
        if not ended:
            if not self.settings.admits(state):
                self._count("reports_filtered")
                return
            interval = self.settings.report_interval_s
            if (event["type"] == "update" and interval > 0
                    and now - self._last_sent.get(oid, -1e9) < interval):
                self._count("reports_throttled")
                return
        elif oid not in self._reported:
            return  # the peer never heard of it
        report = messages.detection_report(event, self.settings.task_id)
        last = self._forget(oid) if ended else self._last_stamp.get(oid)
        if report is None:
            self._count("reports_without_position")
            if ended:
                self._drone_alert(event, state, None)
            return
        stamp = time.time()
        if last is not None and 0 <= stamp - last < SAME_OBJECT_MIN_S:
            stamp = last
        self._send_stamped(stamp, detection_report=report)
        self._count("reports_sent")
        if not ended:
            self._last_stamp[oid], self._last_sent[oid] = stamp, now
            self._reported.add(oid)
        self._drone_alert(event, state, report)

    def _forget(self, oid: str) -> float | None:
        """An ended object: drop what is kept of it whatever becomes of its last report;
        returns the time stamp of its last report."""
        self._last_sent.pop(oid, None)
        self._reported.discard(oid)
        return self._last_stamp.pop(oid, None)

    def _drone_alert(self, event: dict[str, Any], state: dict[str, Any], report: Any) -> None:
        oid = str(event["object_id"])
        label, confidence = messages.top_class(state)
        if event["type"] == "end" or label != "drone":
            alert_id = self._drone_alerts.pop(oid, None)
            if alert_id is not None:
                self._send_alert(alert_id, f"track {oid} no longer a drone"
                                 + (" (lost)" if event["type"] == "end" else ""),
                                 Alert.ALERT_TYPE_WARNING, Alert.ALERT_STATUS_CLEAR, report)
            return
        if state.get("status") == "confirmed" and oid not in self._drone_alerts:
            alert_id = self._drone_alerts[oid] = new_ulid()
            self._send_alert(alert_id, f"drone detected: track {oid}, confidence "
                             f"{confidence:.2f}", Alert.ALERT_TYPE_WARNING,
                             Alert.ALERT_STATUS_ACTIVE, report)

    def _part_alerts_for(self, statuses: list[StatusReport.Status]) -> None:
        failed = {s.status_value.split(":")[0]: s.status_value for s in statuses
                  if s.status_level == StatusReport.STATUS_LEVEL_ERROR_STATUS}
        for part, text in failed.items():
            if part not in self._part_alerts:
                self._part_alerts[part] = new_ulid()
                self._send_alert(self._part_alerts[part], f"part failing: {text}",
                                 Alert.ALERT_TYPE_ERROR, Alert.ALERT_STATUS_ACTIVE)
        for part in [p for p in self._part_alerts if p not in failed]:
            self._send_alert(self._part_alerts.pop(part), f"{part}: recovered",
                             Alert.ALERT_TYPE_ERROR, Alert.ALERT_STATUS_CLEAR)

    def _send_alert(self, alert_id: str, description: str, alert_type: int, status: int,
                    report: Any = None) -> None:
        alert = messages.alert(description, alert_type, status=status, report=report,
                               node_id=self.node_id)
        alert.alert_id = alert_id
        self._send(alert=alert)
        log.info("sapient: alert %s %s: %s", alert_id, Alert.AlertStatus.Name(status),
                 description)

    # -- input ---------------------------------------------------------------------------------
    def _read(self) -> None:
        if self._sock is None:
            return
        pending = isinstance(self._sock, ssl.SSLSocket) and self._sock.pending()
        if not pending:
            ready, _, _ = select.select([self._sock], [], [], POLL_S)
            if not ready:
                self._check_unfinished()
                return
        data = self._sock.recv(65536)
        if not data:
            unfinished = self._reader.pending
            raise OSError("peer closed the connection" + (
                f" in the middle of a frame ({unfinished} bytes of it received): a "
                "truncated message" if unfinished else ""))
        for payload in self._reader.feed(data):
            self._handle(decode_payload(payload))
        self._frame_since = (self._frame_since or time.monotonic()) if self._reader.pending \
            else None

    def _check_unfinished(self) -> None:
        if self._frame_since is not None and \
                time.monotonic() - self._frame_since > FRAME_TIMEOUT_S:
            raise FramingError(f"a frame left unfinished for {FRAME_TIMEOUT_S:g} s "
                               f"({self._reader.pending} bytes of it received): a truncated "
                               "message")

    def _handle(self, message: SapientMessage) -> None:
        kind = message.WhichOneof("content")
        self._count("received_" + (kind or "unknown"))
        if kind is None:
            log.warning("sapient: ignoring a message of unknown type from %s (no content this "
                        "node knows; fields %s)", message.node_id or "?",
                        [f.name for f, _ in message.ListFields()])
            return
        if message.HasField("destination_id") and message.destination_id != self.node_id:
            self._count("not_for_this_node")
            log.warning("sapient: ignoring a %s for node %s: this node is %s", kind,
                        message.destination_id, self.node_id)
            return
        if kind == "registration_ack":
            ack = message.registration_ack
            if ack.acceptance:
                if not self.registered:
                    self._registered()
            else:
                self._refused(list(ack.ack_response_reason), "negative RegistrationAck")
        elif kind == "error":
            reasons = list(message.error.error_message)
            if not self.registered:
                self._refused(reasons, "Error")  # how a middleware refuses a Registration
            else:
                log.warning("sapient: the peer reports an error: %s",
                            "; ".join(reasons) or "no reason given")
                if any("regist" in r.lower() for r in reasons):
                    self._refused(reasons, "Error while registered")
        elif kind == "task":
            self._task(message)
        elif kind == "alert_ack":
            ack = message.alert_ack
            self._count("alert_acks")
            log.info("sapient: alert %s acknowledged: %s%s", ack.alert_id,
                     messages.enum_name(type(ack).AlertAckStatus, ack.alert_ack_status),
                     f" ({'; '.join(ack.reason)})" if ack.reason else "")
        else:
            log.warning("sapient: ignoring a %s: a sensor module does not take one", kind)

    def _apply(self, settings: Settings) -> None:
        """New settings; their regions go to the tracker's start gates too."""
        old, self.settings = self.settings, settings
        if settings.regions == old.regions:
            return
        if self._on_regions is not None:
            self._on_regions(settings.regions)
        elif settings.regions:
            log.info("sapient: the task's regions filter only the reports sent to the peer; "
                     "gating where the tracker starts tracks needs mutual TLS ([sapient] tls, "
                     "ca_file, cert_file, key_file)")

    def _task(self, message: SapientMessage) -> None:
        task = message.task
        if not self.registered:
            log.warning("sapient: ignoring task %s: not registered yet", task.task_id)
            return
        decision = decide(task, self.settings, effector_tasks=self.section.effector_tasks,
                          engage_task=self._engage_task)
        if decision.effector is not None:
            decision = self._effector_task(message, decision.effector)
        accepted = decision.status == TaskAck.TASK_STATUS_ACCEPTED
        self._count("tasks_accepted" if accepted else "tasks_rejected")
        self._send(task_ack=TaskAck(task_id=task.task_id, task_status=decision.status,
                                    reason=decision.reasons))
        log.log(logging.INFO if accepted else logging.WARNING, "sapient: task %s %s%s",
                task.task_id, "ACCEPTED" if accepted else "REJECTED",
                f": {'; '.join(decision.reasons)}" if decision.reasons else "")
        if accepted and decision.settings is not None:
            self._apply(decision.settings)
        if decision.action == "registration":
            self._register_at = time.monotonic()
        elif decision.action == "status":
            self._last_status = None
            self._send_status()

    def _effector_task(self, message: SapientMessage, request: EffectorRequest) -> Decision:
        """The effector's answer to an effector task: ACCEPTED only when it acted, REJECTED
        with its refusal otherwise. The issuer is the sending SAPIENT node, which the mutual
        TLS the config requires for effector tasks has authenticated."""
        task = message.task
        if self._effector is None:
            return Decision(TaskAck.TASK_STATUS_REJECTED, ["no effector on this node"])
        if not UUID4.match(message.node_id):
            return Decision(TaskAck.TASK_STATUS_REJECTED, [
                f"the task's node_id {message.node_id[:40]!r} is not a SAPIENT node id "
                "(lowercase UUIDv4): the effector needs to know who asks"])
        via = {"system": "sapient", "task_id": task.task_id,
               "peer": f"{self.section.host}:{self.section.port}",
               "peer_certificate": self._peer_name()}
        result = self._effector(f"sapient:{message.node_id}", request.action, request.params,
                                via)
        reason = result.get("reason")
        if result.get("status") != "ok":
            return Decision(TaskAck.TASK_STATUS_REJECTED,
                            [str(reason or f"effector: {result.get('status')}")])
        if request.action == "engage":
            self._engage_task = task.task_id
            self._engagement = (f"sapient:{message.node_id}",
                                time.monotonic() + float(request.params["duration_s"]))
        else:
            self._engage_task = self._engagement = None
        return Decision(TaskAck.TASK_STATUS_ACCEPTED, [str(reason)] if reason else [])

    def _end_engagement_of_lost_peer(self) -> None:
        """A tasking system that is gone can no longer stop what it started (as the MQTT
        link's loss drops an operator's engagement): disengage, audited as its own."""
        engagement, self._engagement, self._engage_task = self._engagement, None, None
        if engagement is None or self._effector is None or time.monotonic() >= engagement[1]:
            return
        log.warning("sapient: connection lost during the engagement it tasked; disengaging")
        self._effector(engagement[0], "disengage", {},
                       {"system": "sapient", "reason": "connection to the tasking system lost"})

    def _peer_name(self) -> str | None:
        """The subject common name of the peer's (verified) certificate, for the audit log."""
        if not isinstance(self._sock, ssl.SSLSocket):
            return None
        cert = self._sock.getpeercert() or {}
        for rdn in cert.get("subject", ()):
            for key, value in rdn:
                if key == "commonName":
                    return str(value)
        return None
