"""SAPIENT (BSI Flex 335 v2.0): the node as a sensor and effector module of a C-UAS command
system (docs/sapient.md). Off unless `[sapient]` is configured.

`messages` encodes (config, health, track events -> protobuf), `tasks` decides what a Task
changes, `framing` cuts the TCP stream into messages, `client` owns the socket and the
lifecycle on its own thread, fed by the daemon through a bounded queue. Imports config, health,
ulid, the standard library and the `sapient-msg` bindings; never paho, control, hal, the daemon
or a command. Effector tasks are refused: engaging needs an operator-signed command.
"""

from edgenode.interop.sapient.client import SapientClient

__all__ = ["SapientClient"]
