"""edgenode.link's MQTT client, taught to route shared subscriptions.

`MqttClient` matches an incoming topic against the subscription string as written; a
`$share/<group>/<filter>` subscription never matches (the broker delivers the plain topic), so
its handler would never run. Here the `$share/<group>/` prefix is stripped before matching.
(The same three lines belong in edgenode/link/mqtt.py; until they land there, this subclass.)

It also asks for an MQTT 5 session that outlives the connection by `session_expiry_s`: a
central instance that crashes and comes back within that time gets the events the broker
had sent it but not seen acknowledged, and (on Mosquitto, which keeps queuing an offline
member's share of a shared subscription) the events queued meanwhile. With 0 the session ends
with the connection: the broker hands the share to the other instances at once, and the few
events in flight to the dead instance are lost. docs/fleet.md weighs the two.
"""

from __future__ import annotations

import logging

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgenode.link.mqtt import BrokerOptions, MqttClient

log = logging.getLogger(__name__)


class SharedAwareClient(MqttClient):
    def __init__(self, options: BrokerOptions, session_expiry_s: int = 0):
        super().__init__(options)
        self.session_expiry_s = session_expiry_s

    def start(self) -> None:
        if not self.v5 or self.session_expiry_s <= 0:
            super().start()
            return
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry_s
        # clean_start False: resume the session a crashed run of this instance left behind
        self._client.connect_async(self._host, self._port, self.options.keepalive_s,
                                   clean_start=False, properties=props)
        self._client.loop_start()

    def stop(self) -> None:
        """A deliberate stop ends the session too (DISCONNECT with expiry 0): a session left
        behind would keep taking its share of the events, queued for no one, until expiry."""
        if not self.v5 or self.session_expiry_s <= 0:
            super().stop()
            return
        props = Properties(PacketTypes.DISCONNECT)
        props.SessionExpiryInterval = 0
        try:
            self._client.disconnect(properties=props)
        finally:
            self._client.loop_stop()
        self.connected.clear()
