"""The one MQTT client wrapper (paho-mqtt 2.x). Everything that speaks MQTT goes through here:
the daemon's link and the operator tool `edgenode ctl`.

- MQTT 5 by default, 3.1.1 on request; TLS with server verification, optional client certs.
- Subscriptions are remembered and made again in every on_connect, so a reconnect restores them.
- paho's loop thread reconnects for ever; the delay before each attempt is set here through
  `reconnect_delay_set`: exponential from `reconnect_min_s` to `reconnect_max_s`, each delay
  drawn in [d/2, d] ("equal jitter") so a fleet that lost one broker does not return in
  lockstep.
- A PUBLISH whose MQTT 5 properties paho refuses (U+FEFF in a user property, say) is received
  without those properties instead of dropping the connection (edgenode/link/tolerant.py):
  anyone who may publish to a topic we read could otherwise keep us off the broker.
- A connection that fails before CONNACK (refused TCP, TLS handshake) leaves its reason in
  `last_error`, naming the broker, so health can say why.
- A publish the broker refuses by closing the connection (MQTT 3.1.1 allows it; RabbitMQ does
  it) is given up after a few connections in a row ended over it (edgenode/link/refusal.py)
  and reported as refused, like an MQTT 5 PUBACK reason code, instead of being sent for ever.
"""

from __future__ import annotations

import functools
import logging
import random
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from edgenode.link.refusal import REFUSED_AFTER, RefusalWatch
from edgenode.link.tolerant import Unrepairable, without_refused_properties

log = logging.getLogger(__name__)

GIVEN_UP_CODE = 0x80  # "unspecified error": how a publish given up as refused is reported


@dataclass(frozen=True)
class BrokerOptions:
    url: str  # mqtt://host:port or mqtts://host:port
    client_id: str
    keepalive_s: int = 10
    mqtt_version: str = "5"
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    will_topic: str | None = None
    will_payload: bytes = b""
    clean_start: bool = True
    reconnect_min_s: float = 1.0
    reconnect_max_s: float = 30.0
    max_inflight: int = 20

    @property
    def host_port_tls(self) -> tuple[str, int, bool]:
        parts = urlsplit(self.url)
        tls = parts.scheme == "mqtts"
        return parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls


@dataclass(frozen=True)
class InboundMessage:
    topic: str
    payload: bytes
    retain: bool
    response_topic: str | None = None
    correlation_data: bytes | None = None


MessageHandler = Callable[[InboundMessage], None]


class _TolerantClient(paho.Client):
    """paho's client, except that a PUBLISH with properties paho refuses is received without
    them (edgenode/link/tolerant.py) instead of ending the connection."""

    repaired = 0  # PUBLISH packets received without some of their properties

    def _handle_publish(self) -> MQTTErrorCode:
        try:
            return super()._handle_publish()
        except MalformedPacket as exc:
            # The decode is the first thing paho does: nothing of this packet was handled.
            if self._protocol != paho.MQTTv5:
                raise
            try:
                body, removed = without_refused_properties(self._in_packet["command"],
                                                           self._in_packet["packet"])
            except Unrepairable:
                raise exc from None
            if not removed:
                raise
            self._in_packet["packet"] = body
            self.repaired += 1
            if self.repaired == 1 or self.repaired % 1000 == 0:
                log.warning("mqtt: %d message(s) received without properties paho refuses "
                            "(%s)", self.repaired, exc)
            return super()._handle_publish()

    def oldest_unacked(self) -> int | None:
        """The mid of the oldest message sent and not acknowledged: paho keeps its outgoing
        messages in the order they were queued and sends them again in that order."""
        with self._out_message_mutex:
            for message in self._out_messages.values():
                if message.state == paho.mqtt_ms_wait_for_puback:
                    return int(message.mid)
        return None

    def forget_retained(self, topics: set[str]) -> int:
        """Forget the unacknowledged retained publishes on `topics`. Called in on_connect,
        where the link publishes the latest of each again: paho re-sends the old ones only
        after on_connect returns, so left in place a stale state would be retained last."""
        with self._out_message_mutex:
            stale = [mid for mid, message in self._out_messages.items()
                     if message.retain and message.topic in topics]
            for mid in stale:
                del self._out_messages[mid]
        return len(stale)

    def give_up(self, mid: int) -> str | None:
        """Forget message `mid` so it is not sent again; its topic, or None if it is gone
        (acknowledged after all). Called in on_connect, before paho re-sends the rest."""
        with self._out_message_mutex:
            message = self._out_messages.pop(mid, None)
        return None if message is None else str(message.topic)


@functools.lru_cache(maxsize=16384)
def _matches(subscription: str, topic: str) -> bool:
    """paho's matcher builds a trie per call: cached, as a client sees the same few topics
    again and again (central: every node's events, health and status, at hundreds a second)."""
    return paho.topic_matches_sub(plain_filter(subscription), topic)


def plain_filter(subscription: str) -> str:
    """The topic filter of a subscription: `$share/g/edgenode/+/+/events` (an MQTT 5 shared
    subscription) -> `edgenode/+/+/events`; others unchanged."""
    if subscription.startswith("$share/"):
        return subscription.split("/", 2)[2]
    return subscription


class MqttClient:
    # The paho class under this wrapper; a subclass may swap in its own (central's coalesces
    # its writes).
    paho_class: type[_TolerantClient] = _TolerantClient

    def __init__(self, options: BrokerOptions,
                 on_connect: Callable[[], None] | None = None,
                 on_disconnect: Callable[[str], None] | None = None):
        self.options = options
        self._on_connect_cb, self._on_disconnect_cb = on_connect, on_disconnect
        self._subs: dict[str, tuple[int, MessageHandler, bool]] = {}
        self._lock = threading.Lock()
        self.connected = threading.Event()
        # Set once the broker acknowledged every subscription of this connection: until then
        # a command published to us may be routed before our SUBSCRIBE and never arrive.
        self.subscribed = threading.Event()
        self._pending_subs: dict[int, str] = {}
        self.last_error = ""
        v5 = options.mqtt_version == "5"
        self.v5 = v5
        self._client = self.paho_class(
            CallbackAPIVersion.VERSION2, client_id=options.client_id,
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            clean_session=None if v5 else options.clean_start,
        )
        host, port, tls = options.host_port_tls
        self._host, self._port, self._tls = host, port, tls
        if tls:
            context = ssl.create_default_context(
                cafile=str(options.ca_file) if options.ca_file else None)
            if options.cert_file and options.key_file:
                context.load_cert_chain(str(options.cert_file), str(options.key_file))
            self._client.tls_set_context(context)
        if options.username:
            self._client.username_pw_set(options.username, options.password)
        if options.will_topic:
            self._client.will_set(options.will_topic, options.will_payload, qos=1, retain=True)
        self._client.max_inflight_messages_set(options.max_inflight)
        self._failures = 0
        self._refusals = RefusalWatch()
        self._refused_mid: int | None = None
        self._connected_at = time.monotonic()
        self._schedule_next_attempt(failed=False)
        self._client.on_connect = self._handle_connect
        self._client.on_connect_fail = self._handle_connect_fail
        self._client.on_disconnect = self._handle_disconnect
        self._client.on_message = self._handle_message
        self._client.on_publish = self._handle_publish
        self._client.on_subscribe = self._handle_subscribe
        self._client.on_socket_open = _no_delay
        self._publish_listeners: list[Callable[[int], None]] = []
        self._publish_result_listeners: list[Callable[[int, int], None]] = []

    def _schedule_next_attempt(self, *, failed: bool) -> None:
        # paho waits `min_delay` before its next attempt after reconnect_delay_set (which also
        # resets its own doubling), so the doubling and the jitter are ours.
        self._failures = self._failures + 1 if failed else 0
        ceiling = max(self.options.reconnect_min_s, self.options.reconnect_max_s)
        delay = min(ceiling, self.options.reconnect_min_s * 2 ** max(0, self._failures - 1))
        delay *= 0.5 + 0.5 * random.random()
        self._client.reconnect_delay_set(min_delay=delay, max_delay=delay)  # type: ignore[arg-type]
        self.next_delay_s = delay

    @property
    def repaired(self) -> int:
        """Messages received without properties paho refuses (edgenode/link/tolerant.py)."""
        return self._client.repaired

    @property
    def broker(self) -> str:
        return f"{self._host}:{self._port}"

    # -- connection --------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; paho's loop thread reconnects for ever after."""
        kwargs = {"clean_start": self.options.clean_start} if self.v5 else {}
        self._client.connect_async(self._host, self._port, self.options.keepalive_s, **kwargs)
        self._client.loop_start()

    def stop(self) -> None:
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()
        self.connected.clear()

    def _handle_connect(self, client: paho.Client, userdata: object, flags: object,
                        reason: paho.ReasonCode, properties: object) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection: {reason}"
            log.error("mqtt: %s:%d %s", self._host, self._port, self.last_error)
            self._schedule_next_attempt(failed=True)
            return
        self.last_error = ""
        self._schedule_next_attempt(failed=False)
        if self._refused_mid is not None:
            self._give_up(self._refused_mid)
            self._refused_mid = None
        self._connected_at = time.monotonic()
        self.subscribed.clear()
        with self._lock:
            subs = list(self._subs.items())
            self._pending_subs.clear()
            for topic, (qos, _, as_published) in subs:
                self._pending_subs[self._subscribe(topic, qos, as_published)] = topic
            if not self._pending_subs:
                self.subscribed.set()
        self.connected.set()
        log.info("mqtt: connected to %s:%d", self._host, self._port)
        if self._on_connect_cb:
            self._on_connect_cb()

    def _handle_connect_fail(self, client: paho.Client, userdata: object) -> None:
        # paho calls this inside its `except OSError`: the exception is still the current one.
        exc = sys.exc_info()[1]
        if isinstance(exc, ssl.SSLCertVerificationError):
            reason = (f"TLS server certificate refused: {exc.verify_message or exc} "
                      f"(is {self.options.ca_file or 'the system CA store'} the CA that signed "
                      "the broker's certificate, and does it name this host?)")
        elif isinstance(exc, ssl.SSLError):
            reason = f"TLS handshake failed: {exc.reason or exc}"
        elif exc is not None:
            reason = f"cannot connect: {exc}"
        else:
            reason = "cannot connect"
        if reason != self.last_error:
            log.error("mqtt: %s:%d %s", self._host, self._port, reason)
        self.last_error = reason
        self._schedule_next_attempt(failed=True)

    def _handle_disconnect(self, client: paho.Client, userdata: object, flags: object,
                           reason: paho.ReasonCode, properties: object) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        self.subscribed.clear()
        if was and reason.is_failure:  # not our own disconnect()
            self._refused_mid = self._refusals.closed(self._client.oldest_unacked(),
                                                      time.monotonic() - self._connected_at)
        if was:
            log.warning("mqtt: disconnected from %s:%d (%s)", self._host, self._port, reason)
        elif not self.last_error.startswith("broker refused"):
            # Closed before CONNACK: under mutual TLS this is how a refused client
            # certificate looks from here (TLS 1.3 finishes the client's handshake first).
            hint = (" (mutual TLS: is the client certificate missing, expired or signed by "
                    "another CA?)") if self._tls else ""
            error = f"connection closed before the broker accepted it ({reason}){hint}"
            if error != self.last_error:
                log.error("mqtt: %s:%d %s", self._host, self._port, error)
            self.last_error = error
            self._schedule_next_attempt(failed=True)
        if self._on_disconnect_cb:
            self._on_disconnect_cb(str(reason))

    # -- subscribe ---------------------------------------------------------------------
    def subscribe(self, topic: str, handler: MessageHandler, qos: int = 1, *,
                  retain_as_published: bool = False) -> None:
        """`handler(message)` for every message on `topic` (a filter). With
        `retain_as_published` (MQTT 5) a message published with the retain flag keeps it
        when delivered live too, so the handler can refuse it: otherwise only the copy sent
        on subscribing is marked retained."""
        with self._lock:
            self._subs[topic] = (qos, handler, retain_as_published)
            if self.connected.is_set():
                self._pending_subs[self._subscribe(topic, qos, retain_as_published)] = topic
                self.subscribed.clear()

    def _subscribe(self, topic: str, qos: int, as_published: bool) -> int:
        if self.v5:
            options = SubscribeOptions(qos=qos, retainAsPublished=as_published)
            return int(self._client.subscribe(topic, options=options)[1])
        return int(self._client.subscribe(topic, qos)[1])

    def _handle_subscribe(self, client: paho.Client, userdata: object, mid: int,
                          reasons: list[paho.ReasonCode], properties: object) -> None:
        with self._lock:
            topic = self._pending_subs.pop(mid, None)
            done = not self._pending_subs
        refused = [r for r in reasons if getattr(r, "is_failure", False)]
        if topic is not None and refused:
            # Counted as answered: waiting for ever would help no one; the log says why.
            log.error("mqtt: %s:%d refused the subscription to %s (%s)", self._host,
                      self._port, topic, refused[0])
        if done:
            self.subscribed.set()

    def _handle_message(self, client: paho.Client, userdata: object,
                        msg: paho.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        message = InboundMessage(
            topic=msg.topic, payload=bytes(msg.payload), retain=bool(msg.retain),
            response_topic=getattr(props, "ResponseTopic", None) if props else None,
            correlation_data=getattr(props, "CorrelationData", None) if props else None,
        )
        with self._lock:
            handlers = [h for pattern, (_, h, _) in self._subs.items()
                        if _matches(pattern, msg.topic)]
        for handler in handlers:
            try:
                handler(message)
            except Exception:
                log.exception("mqtt: handler for %s failed", msg.topic)

    # -- publish -----------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                response_topic: str | None = None,
                correlation_data: bytes | None = None) -> paho.MQTTMessageInfo:
        """Queue a publish; the returned info's `mid` is acknowledged via `on_published`."""
        properties = None
        if self.v5 and (response_topic or correlation_data):
            properties = Properties(PacketTypes.PUBLISH)
            if response_topic:
                properties.ResponseTopic = response_topic
            if correlation_data:
                properties.CorrelationData = correlation_data
        return self._client.publish(topic, payload, qos=qos, retain=retain,
                                    properties=properties)

    def on_published(self, listener: Callable[[int], None]) -> None:
        """Call `listener(mid)` when the broker acknowledged a publish (PUBACK for QoS 1)."""
        self._publish_listeners.append(listener)

    def on_publish_result(self, listener: Callable[[int, int], None]) -> None:
        """Call `listener(mid, reason_code)` on every PUBACK; a code >= 0x80 is the broker's
        refusal (MQTT 5 only, e.g. 0x87 not authorized; 3.1.1 brokers refuse silently)."""
        self._publish_result_listeners.append(listener)

    def forget_retained(self, topics: set[str]) -> int:
        """In on_connect only: see _TolerantClient.forget_retained."""
        return self._client.forget_retained(topics)

    def _give_up(self, mid: int) -> None:
        topic = self._client.give_up(mid)
        if topic is None:
            return
        log.error("mqtt: %s:%d closed the connection %d times in a row with the publish on %s "
                  "unacknowledged: given up on it as refused (does the broker's ACL let this "
                  "client write there? is it over the broker's size limit?)", self._host,
                  self._port, REFUSED_AFTER, topic)
        for listener in self._publish_result_listeners:
            listener(mid, GIVEN_UP_CODE)

    def _handle_publish(self, client: paho.Client, userdata: object, mid: int,
                        reason: paho.ReasonCode, properties: object) -> None:
        for listener in self._publish_listeners:
            listener(mid)
        code = int(getattr(reason, "value", 0) or 0)
        for result_listener in self._publish_result_listeners:
            result_listener(mid, code)


def _no_delay(client: paho.Client, userdata: object, sock: object) -> None:
    """Send each MQTT packet at once. With Nagle's algorithm on, a small publish (an `engage`)
    waits for the ACK of the previous segment, which the broker's delayed ACK holds ~40 ms."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
