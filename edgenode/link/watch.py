"""Does the link carry messages? The node pings itself through the broker and believes only
the echo.

Why: a connection can be open while nothing flows (a frozen broker, a dead router: the TCP
session looks fine until the MQTT keepalive, which may be minutes, gives up), and a connection
can be made and lost again and again (a message that paho chokes on, a client id fight) so
that "connected" is true now and then but no command ever gets through. For the effector's
link-loss rule the link is up only once, on the present connection, the `cmd` subscription
is acknowledged and pings sent after it have kept coming back for STABLE_S; it is down from
the moment the connection drops or no echo has come back for `silence_s`. A link that flaps
faster than STABLE_S therefore stays down, and the relay drops after link_loss_grace_s. A
connection on which no ping comes back within PROOF_S (the broker's ACL denies the ping topic)
counts as lost too, even if nothing was ever told: the listener starts out believing in the
link, and must never keep believing in one that cannot be checked.

While the effector is armed or engaged (`vigilant`), and while a new connection proves
itself, a ping goes every `silence_s / 4`, so a silent broker is noticed within `silence_s`:
the relay then drops `link_loss_grace_s` later. Otherwise one goes every RELAXED_PERIOD_S:
enough for health, cheap on a metered link.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable

from edgenode.link.mqtt import InboundMessage, MqttClient

log = logging.getLogger(__name__)

RELAXED_PERIOD_S = 5.0
STABLE_S = 1.0  # echoes must keep coming this long on a new connection before it counts
# A connection that has not proven itself this long cannot carry commands (its pings are
# denied by the broker's ACL, say): counted as lost, even if it never counted as up.
PROOF_S = 5.0


class LinkWatch:
    def __init__(self, client: MqttClient, topic: str, *, silence_s: float,
                 payload: Callable[[str, int], bytes], on_change: Callable[[bool], None]):
        """`payload(nonce, n)` builds ping number n of the connection marked `nonce`;
        `on_change(up)` is called on every change of the verdict (from the watch's thread,
        or from the client's on a disconnect)."""
        self._client, self.topic = client, topic
        self.silence_s = silence_s
        self._payload, self._on_change = payload, on_change
        self._lock = threading.Lock()
        self._notify_lock = threading.Lock()
        self._nonce = ""  # of the present connection; "" while disconnected
        self._sent = 0
        self._echoed = 0
        self._last_echo = 0.0
        self._last_ping = 0.0
        self._first_echo: float | None = None  # on the present connection, while proving it
        self._proven = False  # the present connection has proven itself once
        self._connected_at: float | None = None
        # The verdict last told: None before the first (the listener's own start state).
        self._up: bool | None = None
        self._vigilant = False
        self.counters = {"pings": 0, "echoes": 0, "silences": 0}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        client.subscribe(topic, self._on_echo, qos=0)

    @property
    def up(self) -> bool:
        return self._up is True

    @property
    def verdict(self) -> bool | None:
        """The verdict last told: None before the first."""
        return self._up

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="link-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2)

    def connected(self) -> None:
        """A new connection: nothing is proven about it yet."""
        with self._lock:
            self._nonce = secrets.token_hex(8)
            self._sent = self._echoed = 0
            self._last_ping = 0.0
            self._first_echo = None
            self._proven = False
            self._connected_at = time.monotonic()
        self._wake.set()

    def disconnected(self) -> None:
        with self._lock:
            self._nonce = ""
            self._connected_at = None
        self._set(False, "connection lost")

    def set_vigilant(self, vigilant: bool) -> None:
        """Ping often (the effector is armed or engaged) or seldom."""
        with self._lock:
            if vigilant and not self._vigilant:
                # Whatever made us vigilant (an arm) came over the link just now.
                self._last_echo = max(self._last_echo, time.monotonic())
                self._last_ping = 0.0
            self._vigilant = vigilant
        self._wake.set()

    def _period(self) -> float:
        fast = self._vigilant or self._up is not True
        return self.silence_s / 4 if fast else RELAXED_PERIOD_S

    def _on_echo(self, message: InboundMessage) -> None:
        try:
            body = json.loads(message.payload)
            nonce, n = body["nonce"], int(body["n"])
        except (ValueError, TypeError, KeyError, RecursionError):
            return
        with self._lock:
            if not self._nonce or nonce != self._nonce or not self._echoed < n <= self._sent:
                return
            now = time.monotonic()
            self._echoed = n
            self._last_echo = now
            if self._first_echo is None:
                self._first_echo = now
            # A connection proves itself once; after a silence on it (a slow moment, a
            # congested path) the next echo is enough.
            self._proven = self._proven or now - self._first_echo >= STABLE_S
            proven = self._proven
        self.counters["echoes"] += 1
        if proven:
            self._set(True, f"pings echoed through the broker for {STABLE_S:g} s")

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(min(0.05, self._period()))
            self._wake.clear()
            try:
                self._tick()
            except Exception:
                log.exception("link: watch step failed")

    def _tick(self) -> None:
        now = time.monotonic()
        with self._lock:
            ready = (bool(self._nonce) and self._client.connected.is_set()
                     and self._client.subscribed.is_set())
            due = ready and now - self._last_ping >= self._period()
            if due:
                self._sent += 1
                self._last_ping = now
                nonce, n = self._nonce, self._sent
            limit = self.silence_s if self._vigilant else 3 * RELAXED_PERIOD_S
            silent = self._up is True and now - self._last_echo > limit
            if (not self._proven and self._first_echo is not None
                    and now - self._last_echo > self.silence_s):
                self._first_echo = None  # the proof must be unbroken
            unproven = (self._up is None and self._connected_at is not None
                        and now - self._connected_at > PROOF_S)
        if due:
            self._client.publish(self.topic, self._payload(nonce, n), qos=0)
            self.counters["pings"] += 1
        if silent:
            self.counters["silences"] += 1
            self._set(False, f"no echo through the broker for {limit:g} s")
        elif unproven:
            self._set(False, f"no ping came back through the broker in {PROOF_S:g} s of "
                             "connection (may this node read and write its ping topic?)")

    def _set(self, up: bool, why: str) -> None:
        # One verdict at a time, told in the order it was reached.
        with self._notify_lock:
            with self._lock:
                if up == self._up:
                    return
                self._up = up
            if up:
                log.info("link: commands can get through (%s)", why)
            else:
                log.warning("link: cannot carry commands (%s)", why)
            self._on_change(up)
