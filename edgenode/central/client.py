"""edgenode.link's MQTT client, taught to route shared subscriptions.

`MqttClient` matches an incoming topic against the subscription string as written; a
`$share/<group>/<filter>` subscription never matches (the broker delivers the plain topic), so
its handler would never run. Here the `$share/<group>/` prefix is stripped before matching.
(The same three lines belong in edgenode/link/mqtt.py; until they land there, this subclass.)
"""

from __future__ import annotations

import logging

import paho.mqtt.client as paho

from edgenode.link.mqtt import InboundMessage, MqttClient

log = logging.getLogger(__name__)


def plain_filter(subscription: str) -> str:
    """`$share/g/edgenode/+/+/events` -> `edgenode/+/+/events`; others unchanged."""
    if subscription.startswith("$share/"):
        return subscription.split("/", 2)[2]
    return subscription


class SharedAwareClient(MqttClient):
    def _handle_message(self, client: paho.Client, userdata: object,
                        msg: paho.MQTTMessage) -> None:
        message = InboundMessage(topic=msg.topic, payload=bytes(msg.payload),
                                 retain=bool(msg.retain))
        with self._lock:
            handlers = [h for pattern, (_, h) in self._subs.items()
                        if paho.topic_matches_sub(plain_filter(pattern), msg.topic)]
        for handler in handlers:
            try:
                handler(message)
            except Exception:
                log.exception("central: handler for %s failed", msg.topic)
