"""The only package that imports paho: the node's MQTT link (docs/mqtt.md)."""

from edgenode.link.credentials import LinkConfigError
from edgenode.link.link import Link
from edgenode.link.mqtt import BrokerOptions, InboundMessage, MqttClient
from edgenode.link.topics import Topics, schema_for_topic

__all__ = ["BrokerOptions", "InboundMessage", "Link", "LinkConfigError", "MqttClient",
           "Topics", "schema_for_topic"]
