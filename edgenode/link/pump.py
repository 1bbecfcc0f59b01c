"""Moves outbox rows to the broker: live rows at once, the backlog oldest first at a limited
rate and flagged `replayed`; a row leaves the outbox only on its PUBACK.

Only the pump's own thread touches the mid -> row map, the cursors and the outbox deletes; the
client's thread only queues PUBACKs and connection changes, so no lock guards them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from edgenode.link.mqtt import MqttClient
from edgenode.link.outbox import Dropped, Outbox, Row
from edgenode.link.payloads import mark_replayed

log = logging.getLogger(__name__)

# Acknowledged rows are deleted in batches: one statement per ACK_BATCH rows or ACK_DELAY_S,
# whichever comes first, so deletes do not hold the file against appends on every PUBACK.
# A crash in between only resends those rows (duplicates, never loss).
ACK_BATCH = 128
ACK_DELAY_S = 0.05


@dataclass
class PumpCounters:
    published: int = 0  # rows acknowledged by the broker and deleted
    replayed: int = 0  # rows sent from the backlog with replayed: true
    refused: int = 0  # rows the broker refused in its PUBACK (MQTT 5 reason >= 0x80)


class Pump:
    def __init__(self, outbox: Outbox, client: MqttClient, *, replay_rate_per_s: float,
                 window: int, on_drops: Callable[[list[Dropped]], None],
                 delete: Callable[[list[int]], None]):
        """`delete(ids)` removes acknowledged rows from the outbox (the writer's thread)."""
        self._outbox, self._client = outbox, client
        self._delete = delete
        self._rate = replay_rate_per_s
        self._burst = max(1.0, replay_rate_per_s / 5)
        self._window = window
        self._on_drops = on_drops
        self._acks: deque[tuple[int, int]] = deque()
        self._by_mid: dict[int, Row] = {}
        self._acked: list[int] = []  # acknowledged row ids not yet deleted
        self._acked_since = 0.0
        self._wake = threading.Event()
        self._connect_pending = False
        self._online = False
        self._live_after = 0
        self._backlog_after = 0
        self._backlog_upto = 0
        self._tokens = 0.0
        self._refilled = time.monotonic()
        self.counters = PumpCounters()
        outbox.keep_fresh(False)  # offline until the client connects

    # -- called from other threads -----------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def connected(self) -> None:
        """The client (re)connected: everything stored so far is backlog."""
        self._outbox.keep_fresh(True)
        self._connect_pending = True
        self._wake.set()

    def disconnected(self) -> None:
        self._outbox.keep_fresh(False)
        self._online = False
        self._connect_pending = False

    def on_publish_result(self, mid: int, reason_code: int) -> None:
        self._acks.append((mid, reason_code))
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._by_mid)

    # -- the pump's thread ---------------------------------------------------------------
    def step(self, timeout_s: float = 0.25) -> None:
        """One round: apply PUBACKs, send what the window and the replay rate allow, then
        wait for work (at most timeout_s)."""
        self._wake.clear()
        self._apply_acks()
        wait = timeout_s
        if self._acked:
            wait = min(wait, max(0.0, self._acked_since + ACK_DELAY_S - time.monotonic()))
        if self._connect_pending:
            self._connect_pending = False
            self._backlog_upto = self._outbox.max_id()
            self._backlog_after = 0
            self._live_after = self._backlog_upto
            self._tokens, self._refilled = self._burst, time.monotonic()
            self._online = True
        if self._online and self._client.connected.is_set():
            self._send_live()
            more_backlog = self._send_backlog()
            if more_backlog:
                wait = min(timeout_s, max(0.002, 1.0 / self._rate))
        self._wake.wait(wait)

    def drain(self, timeout_s: float) -> bool:
        """Send and await PUBACKs until nothing is left or timeout_s passed (graceful stop)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.step(0.02)
            self._flush_acked()
            if not self._by_mid and self._outbox.backlog == 0:
                return True
            if not self._client.connected.is_set():
                return False
        return False

    def finish(self) -> None:
        """Apply PUBACKs that arrived last; rows still in flight stay for the next start."""
        self._apply_acks()
        self._flush_acked()
        self._outbox.release(row.id for row in self._by_mid.values())
        self._by_mid.clear()

    def _free_window(self) -> int:
        return self._window - len(self._by_mid)

    def _send_live(self) -> None:
        while (free := self._free_window()) > 0:
            rows = self._outbox.claim(self._live_after, limit=free)
            if not rows:
                return
            for row in rows:
                self._publish(row, replayed=False)
            self._live_after = rows[-1].id

    def _send_backlog(self) -> bool:
        """Returns True while backlog remains."""
        if self._backlog_after >= self._backlog_upto:
            return False
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        budget = min(int(self._tokens), self._free_window())
        if budget <= 0:
            return True
        rows = self._outbox.claim(self._backlog_after, upto_id=self._backlog_upto, limit=budget)
        if not rows:
            self._backlog_after = self._backlog_upto
            return False
        for row in rows:
            self._publish(row, replayed=True)
        self._tokens -= len(rows)
        self._backlog_after = rows[-1].id
        return True

    def _publish(self, row: Row, *, replayed: bool) -> None:
        payload = mark_replayed(row.payload) if replayed else row.payload
        try:
            info = self._client.publish(row.topic, payload, qos=1)
        except (ValueError, TypeError) as exc:  # cannot ever be sent: drop it, say so
            log.error("link: outbox row %d unpublishable (%s); dropped", row.id, exc)
            self._drop(row, "unpublishable")
            return
        self._by_mid[info.mid] = row
        if replayed:
            self.counters.replayed += 1

    def _apply_acks(self) -> None:
        done = self._acked
        if not done:
            self._acked_since = time.monotonic()
        while self._acks:
            mid, code = self._acks.popleft()
            row = self._by_mid.pop(mid, None)
            if row is None:
                continue  # a state or result publish: not an outbox row
            if code >= 0x80:
                self.counters.refused += 1
                log.error("link: broker refused %s seq %s (reason code 0x%02x); dropped",
                          row.topic, row.seq, code)
                self._drop(row, "broker_refused")
                continue
            done.append(row.id)
        if done and (len(done) >= ACK_BATCH
                     or time.monotonic() - self._acked_since >= ACK_DELAY_S):
            self._flush_acked()

    def _flush_acked(self) -> None:
        if self._acked:
            self._delete(self._acked)
            self.counters.published += len(self._acked)
            self._acked = []

    def _drop(self, row: Row, reason: str) -> None:
        # Through the writer, as acknowledged rows are: the one thread that writes the file
        # (a locked or failing outbox must not throw here and lose the drop's gap record).
        self._delete([row.id])
        if row.stream != "gap":
            seqs = [row.seq] if row.seq is not None else []
            self._on_drops([Dropped(row.stream, row.session, reason, seqs)])
