"""The only package that imports paho: the node's MQTT link (docs/mqtt.md): topics, schemas,
the durable outbox, command intake. A library: imports config and health; never control (it
hands commands to a callback), the daemon or a command."""

from edgenode.link.credentials import LinkConfigError
from edgenode.link.link import Link
from edgenode.link.mqtt import BrokerOptions, InboundMessage, MqttClient
from edgenode.link.topics import Topics, schema_for_topic

__all__ = ["BrokerOptions", "InboundMessage", "Link", "LinkConfigError", "MqttClient",
           "Topics", "schema_for_topic"]
