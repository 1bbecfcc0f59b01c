"""Standing in for a dead instance's session, so that its share moves and nothing is lost.

Mosquitto keeps queuing a dead member's share of a shared subscription in its session (and
keeps what was in flight to it) until the session's owner comes back. A surviving instance
that sees the dead instance's last will therefore opens that session itself: a second
client with the dead instance's client id and clean_start False. It drains what was queued
and takes the share from then on, through the survivor's own intake. When the dead instance
restarts, its CONNECT takes the session back and the broker closes the stand-in's connection
(DISCONNECT 0x8E "session taken over" where the broker sends one; Mosquitto 2.0.11 just
closes it). A stand-in never reconnects: any end of its connection ends it, and if the
session is still orphaned then, the stand-in's own will (the dead instance's state, "dead"
again, after STAND_IN_WILL_DELAY_S) starts the next stand-in.

Instance states, retained, on `edgenode/central/instances/<instance>/state` (five levels: no
node topic filter `edgenode/+/+/<kind>` matches them): "online" on every connect, "dead" as
the last will, "stopped" on a clean stop (the session ends with it: nothing to take).
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edgenode.central.client import SharedAwareClient
from edgenode.central.journal import Journal
from edgenode.link.mqtt import BrokerOptions, InboundMessage

log = logging.getLogger(__name__)

INSTANCE_STATES = "edgenode/central/instances/+/state"
# A stand-in's will waits this long: a will with a delay is not sent when the session is
# taken over with clean_start False (MQTT 5, 3.1.3.2.2), so the restarted instance's
# takeover does not announce itself dead; a stand-in that dies hands on after it.
STAND_IN_WILL_DELAY_S = 1
# A SIGKILLed process's socket may close (and the broker send its will) a moment before its
# files do (the kernel releases them in reverse order): wait this long for its journal lock.
LOCK_WAIT_S = 2.0


def instance_topic(instance: str) -> str:
    return f"edgenode/central/instances/{instance}/state"


def state_payload(instance: str, state: str, journal: Path | None,
                  by: str | None = None) -> bytes:
    """`journal`: where the stand-in writes what it takes (the instance's own journal), on
    `host`; `by`: the stand-in whose will this is."""
    return json.dumps({"instance": instance, "state": state,
                       "journal": str(journal.resolve()) if journal else None,
                       "host": socket.gethostname(), "by": by}).encode()


def reachable_journal(state: dict[str, object]) -> Path | None:
    """The dead instance's journal if this instance can lock it: same host (one path may
    name two different files on two hosts, even our own journal), and there."""
    journal = state.get("journal")
    if state.get("host") != socket.gethostname() or not isinstance(journal, str):
        return None
    return Path(journal) if Path(journal).exists() else None


class Roster:
    """Which instances are online, from their retained states, and who stands in for whom:
    the lowest instance name among the live ones, so that with three or more only one
    survivor opens a dead instance's session (two would take it from each other)."""

    def __init__(self, me: str):
        self.me = me
        self.states: dict[str, str] = {}

    def update(self, instance: str, state: str) -> None:
        self.states[instance] = state

    def stands_in_for(self, dead: str) -> bool:
        live = {n for n, s in self.states.items() if s == "online"} | {self.me}
        candidates = sorted(live - {dead})
        return bool(candidates) and candidates[0] == self.me


class StandIn:
    """One dead instance's session held by this instance. `intake`: the shared subscriptions
    to take; `unwanted`: the dead instance's other subscriptions (every observation, every
    birth), dropped from its session, since the survivor has them on its own connection
    (the restarted instance subscribes again). `take(msg, stand_in)` is the
    survivor's intake (it journals into `self.journal` and relays on `self.client`, so the
    relay is on the wire before the acknowledgement paho sends when `take` returns);
    `recall(ids)` learns what the dead instance had journaled; `gone(stand_in)` is called
    once, from the stand-in's network thread, when its connection has ended.
    `journal_capacity`: the survivor's de-dup window, which sizes the journal's rotation
    while the stand-in writes into it."""

    def __init__(self, url: str, dead: str, journal: Path, *, by: str, intake: list[str],
                 unwanted: list[str], session_expiry_s: int, journal_capacity: int,
                 take: Callable[[InboundMessage, StandIn], None],
                 recall: Callable[[list[str]], None], gone: Callable[[StandIn], None]):
        self.dead, self.by, self.url = dead, by, url
        self.journal_path, self.journal_capacity = journal, journal_capacity
        self.intake, self.session_expiry_s = intake, session_expiry_s
        self.unwanted = unwanted
        self._take, self._recall, self._gone = take, recall, gone
        self.journal: Journal | None = None
        self.client: SharedAwareClient | None = None
        self.started = time.monotonic()
        self.taken = 0
        self._stopping = False

    def start(self) -> bool:
        """Open the session (on a thread of its own: it may wait for the lock); False when
        the dead instance's journal lock stays held (it is back, or another stand-in has it)."""
        journal = Journal(self.journal_path, self.journal_capacity)
        if not journal.lock(LOCK_WAIT_S) or self._stopping:
            journal.close()
            log.info("central: not standing in for %s: its journal %s is locked", self.dead,
                     self.journal_path)
            self._gone(self)
            return False
        self.journal = journal
        self._recall(journal.read_new())  # taken, maybe not acknowledged: duplicates
        client = _StandInClient(
            BrokerOptions(url=self.url, client_id=self.dead, max_inflight=200,
                          clean_start=False),
            session_expiry_s=self.session_expiry_s, on_connect=self._on_connect,
            on_disconnect=self._on_disconnect)
        client.set_will(state_payload(self.dead, "dead", self.journal_path, self.by))
        client.unwanted = self.unwanted
        for topic in self.intake:  # the session has them already: subscribing again is a no-op
            client.subscribe(topic, lambda msg: self._take(msg, self))
        self.client = client
        client.start()
        return True

    def _on_connect(self) -> None:
        log.warning("central: %s standing in for %s, %.0f ms after its will (its session; its "
                    "journal %s)", self.by, self.dead, (time.monotonic() - self.started) * 1000,
                    self.journal_path)

    def _on_disconnect(self, reason: str) -> None:
        # paho handled every message it read before the close: from here on nothing is
        # taken, so the lock goes and the restarted instance may read the journal.
        if self.client is not None:
            self.client._client.disconnect()  # no reconnect attempt either way
        if self.journal is not None:
            self.journal.close()
        log.warning("central: %s stopped standing in for %s after %.1f s, %d events taken "
                    "(%s: session taken over or connection lost; not reconnecting)",
                    self.by, self.dead, time.monotonic() - self.started, self.taken, reason)
        self._gone(self)

    def stop(self) -> None:
        """A clean stop of the survivor: leave the session to the dead instance (or the next
        stand-in: DISCONNECT 0x04 sends the will, i.e. "dead" again after its delay)."""
        self._stopping = True
        if self.client is None:
            return
        with_will = ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message")
        try:
            self.client._client.disconnect(reasoncode=with_will)
        finally:
            self.client._client.loop_stop()
        if self.journal is not None:
            self.journal.close()


class _StandInClient(SharedAwareClient):
    """The dead instance's client id. Never reconnects: it would take the session back from
    the restarted instance, which would take it back again, for ever. A session that had
    expired (the broker made a new, empty one) is ended again before it subscribes to
    anything, so that no event goes to it, and the dead instance marked `expired`."""

    def __init__(self, options: BrokerOptions, **kwargs: Any):
        super().__init__(options, **kwargs)
        self.unwanted: list[str] = []
        self.expired = False
        self._client._reconnect_on_failure = False  # paho has no setter for it

    def set_will(self, payload: bytes) -> None:
        props = Properties(PacketTypes.WILLMESSAGE)
        props.WillDelayInterval = STAND_IN_WILL_DELAY_S
        self._client.will_set(instance_topic(self.options.client_id), payload, qos=1,
                              retain=True, properties=props)

    def _handle_connect(self, client: Any, userdata: object, flags: Any, reason: Any,
                        properties: object) -> None:
        if not reason.is_failure and not flags.session_present:
            self.expired = True
            dead = self.options.client_id
            log.warning("central: %s's session had expired: nothing to take, state now "
                        "'expired'", dead)
            self._client.publish(instance_topic(dead), state_payload(dead, "expired", None),
                                 qos=1, retain=True)
            end = Properties(PacketTypes.DISCONNECT)
            end.SessionExpiryInterval = 0
            self._client.disconnect(properties=end)  # before any SUBSCRIBE: none is sent
            return
        if not reason.is_failure and self.unwanted:
            self._client.unsubscribe(self.unwanted)
        super()._handle_connect(client, userdata, flags, reason, properties)
