"""Central fusion for a fleet: runs in the control room, not on a node.

Consumes every node's events over MQTT (shared subscriptions, so instances split the load),
de-duplicates them, counts losses per (node, session, seq), fuses the bearings of a site's
nodes into positions and publishes fused tracks on `edgenode/<site>/central/tracks`.

May import: edgenode.link (its MQTT client wrapper, topics and payload helpers), edgenode.ulid,
numpy, paho (through edgenode.link.mqtt). Never imports edgenode.daemon, control or hal: it is a
client of the broker, not of a node. `geometry` and `fusion` are pure (no I/O).
"""
