"""edgenode.link's MQTT client, taught to route shared subscriptions.

`MqttClient` matches an incoming topic against the subscription string as written; a
`$share/<group>/<filter>` subscription never matches (the broker delivers the plain topic), so
its handler would never run. Here the `$share/<group>/` prefix is stripped before matching.
(The same three lines belong in edgenode/link/mqtt.py; until they land there, this subclass.)

Its paho client writes every packet queued since its last write in one send() (`_Coalescing`):
an instance acknowledges each event, observation and health record it receives (QoS 1) and
paho sends each PUBACK with its own system call; on loopback every send also runs the
broker's side of TCP on our CPU time (~0.1 ms each on the 2-core bench machine), which made
the sends about half of an instance's cost at 500 events/s.

It also asks for an MQTT 5 session that outlives the connection by `session_expiry_s`: a
central instance that crashes and comes back within that time gets the events the broker
had sent it but not seen acknowledged, and (on Mosquitto, which keeps queuing an offline
member's share of a shared subscription) the events queued meanwhile. With 0 the session ends
with the connection: the broker hands the share to the other instances at once, and the few
events in flight to the dead instance are lost. docs/fleet.md weighs the two.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from paho.mqtt.client import DISCONNECT, MQTT_ERR_SUCCESS, PUBLISH
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edgenode.link.mqtt import BrokerOptions, MqttClient, _TolerantClient

log = logging.getLogger(__name__)


COALESCE_MAX_BYTES = 64 * 1024


def _plain(packet: dict[str, Any]) -> bool:
    """A packet paho does nothing with once written (everything but a QoS 0 PUBLISH, whose
    on_publish fires on writing, and DISCONNECT, after which it closes the socket)."""
    command = packet["command"] & 0xF0
    return command != DISCONNECT and not (command == PUBLISH and packet["qos"] == 0)


class _Coalescing(_TolerantClient):
    def _packet_queue(self, command: int, packet: bytes | bytearray, mid: int, qos: int,
                      info: Any = None) -> Any:
        """From paho's own thread (a PUBACK while reading, a publish from a handler), only
        queue: paho's loop selects for writing whenever something is queued, so the byte it
        would send itself through its socket pair to wake up is one system call per packet
        for nothing."""
        if threading.current_thread() is not self._thread:
            return super()._packet_queue(command, packet, mid, qos, info)
        self._out_packet.append({"command": command, "mid": mid, "qos": qos, "pos": 0,
                                 "to_process": len(packet), "packet": packet, "info": info})
        return MQTT_ERR_SUCCESS

    def _packet_write(self) -> Any:
        queue = self._out_packet
        if len(queue) > 1 and _plain(queue[0]) and _plain(queue[1]):
            parts: list[bytes] = []
            size = 0
            while queue and _plain(queue[0]) and size < COALESCE_MAX_BYTES:
                packet = queue.popleft()
                parts.append(bytes(packet["packet"][packet["pos"]:]))
                size += len(parts[-1])
            data = b"".join(parts)
            # One "packet" of many: paho keeps QoS 1 state in _out_messages, not here.
            queue.appendleft({"command": packet["command"], "mid": 0, "qos": 1, "pos": 0,
                              "to_process": len(data), "packet": data, "info": None})
        return super()._packet_write()


class SharedAwareClient(MqttClient):
    paho_class = _Coalescing

    def __init__(self, options: BrokerOptions, session_expiry_s: int = 0,
                 on_connect: Callable[[], None] | None = None,
                 on_disconnect: Callable[[str], None] | None = None):
        super().__init__(options, on_connect=on_connect, on_disconnect=on_disconnect)
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
