"""The CoT output stage: track events and the node's state in, CoT events out.

The detection thread only rate-limits and queues (`on_event`, a few microseconds); one sender
thread encodes, sends, reconnects with backoff and refreshes the node's marker. The queue is
bounded: while the destination is gone the oldest events are dropped (counted), since a TAK map
wants the present, not a replay.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from edgenode.config import Config
from edgenode.config.models import CotSection
from edgenode.health import Health, LoopThread
from edgenode.interop.cot.events import (
    CotEvent,
    NodeInfo,
    node_marker,
    pilot_marker,
    track_event,
    withdrawn,
)
from edgenode.interop.cot.transport import CotTransportError, Transport

log = logging.getLogger(__name__)
MAX_TRACKS = 1000  # rate-limit entries kept; the oldest go first
STOP_FLUSH_S = 2.0


class CotOutput:
    name = "cot"

    def __init__(self, config: Config, health: Health,
                 node_state: Callable[[], tuple[str, str | None]]) -> None:
        """`node_state()` -> (status, effector state) for the node's marker."""
        section = config.cot
        if section is None:
            raise ValueError("CotOutput needs a [cot] section")
        self.section: CotSection = section
        n = config.node
        self.node = NodeInfo(n.site, n.id, n.latitude_deg, n.longitude_deg, n.altitude_m,
                             n.mast_heading_deg)
        self._node_state = node_state
        self.transport = Transport(section.url, ca_file=section.ca_file,
                                   cert_file=section.cert_file, key_file=section.key_file,
                                   multicast_ttl=section.multicast_ttl,
                                   multicast_interface=section.multicast_interface)
        self._q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=section.queue_events)
        self._last_sent: dict[str, float] = {}  # object id -> monotonic time of its last event
        self._pilots: dict[str, CotEvent] = {}  # object id -> its pilot marker on the map (sender)
        self._lock = threading.Lock()  # counters and the rate map (detection vs sender thread)
        self.counters = {"sent": 0, "dropped": 0, "rate_limited": 0, "reconnects": 0,
                         "send_errors": 0}
        self._retry_at = 0.0
        self._backoff = section.reconnect_min_s
        self._marker_due = 0.0
        self._stop = threading.Event()
        self.health = health.register(self.name, deadline_s=10.0)
        self._thread = LoopThread(self.health, self._step, self._stop)

    # -- producer side (detection thread) -------------------------------------------------
    def on_event(self, event: dict[str, Any]) -> None:
        """Queue a track event unless its track was sent less than 1/max_rate_hz ago (a new
        track and a track's end always go)."""
        object_id = event["object_id"]
        now = time.monotonic()
        with self._lock:
            if event["type"] == "update":
                last = self._last_sent.get(object_id)
                if last is not None and now - last < 1.0 / self.section.max_rate_hz:
                    self.counters["rate_limited"] += 1
                    return
            if event["type"] == "end":
                self._last_sent.pop(object_id, None)
            else:
                self._last_sent.pop(object_id, None)
                self._last_sent[object_id] = now
                if len(self._last_sent) > MAX_TRACKS:
                    del self._last_sent[next(iter(self._last_sent))]
        self._put(("track", event))

    def node_changed(self) -> None:
        """The node's state changed (effector, health): refresh its marker now."""
        self._marker_due = 0.0

    def _put(self, item: tuple[str, Any]) -> None:
        while True:
            try:
                self._q.put_nowait(item)
                return
            except queue.Full:
                try:
                    self._q.get_nowait()
                    with self._lock:
                        self.counters["dropped"] += 1
                except queue.Empty:
                    pass

    # -- sender thread --------------------------------------------------------------------
    def start(self) -> None:
        self.health.set("degraded", f"connecting to {self.section.url}")
        self._thread.start()

    def _step(self) -> None:
        if not self.transport.connected and not self._connect():
            self._stop.wait(0.2)
            return
        if time.monotonic() >= self._marker_due:
            self._marker_due = time.monotonic() + self.section.marker_period_s
            self._send(self._marker())
        try:
            kind, value = self._q.get(timeout=0.5)
        except queue.Empty:
            return
        if kind == "track":
            for cot in self._track(value):
                self._send(cot)

    def _connect(self) -> bool:
        now = time.monotonic()
        if now < self._retry_at:
            return False
        try:
            self.transport.connect()
        except CotTransportError as exc:
            self._retry_at = now + self._backoff * random.uniform(0.8, 1.2)
            self._backoff = min(self._backoff * 2, self.section.reconnect_max_s)
            self.health.set("degraded", f"{exc}; retrying")
            return False
        self._backoff = self.section.reconnect_min_s
        self._marker_due = 0.0
        with self._lock:
            self.counters["reconnects"] += 1
        self.health.set("ok")
        return True

    def _send(self, event: CotEvent) -> None:
        if self.section.protocol == "protobuf":
            data = event.protobuf(stream=self.transport.streaming)
        else:
            data = event.xml()
        try:
            self.transport.send(data)
        except CotTransportError as exc:
            with self._lock:
                self.counters["send_errors"] += 1
            self.health.set("degraded", f"{exc}; reconnecting")
            self._retry_at = time.monotonic() + self._backoff
            return
        with self._lock:
            self.counters["sent"] += 1

    def _track(self, event: dict[str, Any]) -> list[CotEvent]:
        """The track's event and its pilot's; a pilot no longer broadcast, or whose track
        ended, goes off the map with its last marker."""
        state = event.get("after") or event.get("before")
        if not state:
            return []
        now = time.time()
        ended = event["type"] == "end"
        track = track_event(state, self.node, now, now if ended else now + self.section.stale_s)
        if track is None:
            return []
        pilot = pilot_marker(state, track, self.node)
        last = self._pilots.pop(state["object_id"], None)
        if pilot is None and last is not None:
            pilot = withdrawn(last, now)
        elif pilot is not None and not ended:
            self._pilots[state["object_id"]] = pilot
            if len(self._pilots) > MAX_TRACKS:
                del self._pilots[next(iter(self._pilots))]
        return [track] if pilot is None else [track, pilot]

    def _marker(self, *, stale_now: bool = False) -> CotEvent:
        status, effector = self._node_state()
        now = time.time()
        stale = now if stale_now else now + 3 * self.section.marker_period_s
        return node_marker(self.node, "stopped" if stale_now else status, effector, now, stale)

    def stop(self) -> None:
        """Mark the node stale on the maps, then close."""
        self._stop.set()
        self._thread.join(timeout=STOP_FLUSH_S + 1)
        if self._thread.is_alive():
            log.error("cot: sender thread did not stop; leaving its socket open")
            return
        if self.transport.connected or self._connect():
            self._send(self._marker(stale_now=True))
        self.transport.close()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.counters, connected=self.transport.connected,
                        queued=self._q.qsize())
