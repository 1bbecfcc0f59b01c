"""SAPIENT (BSI Flex 335 v2.0): the node as a sensor and effector module of a C-UAS command
system (docs/sapient.md). Off unless `[sapient]` is configured.

`messages` encodes (config, health, track events -> protobuf), `tasks` decides what a Task
changes, `effector_tasks` reads the effector tasks, `framing` cuts the TCP stream into
messages, `client` owns the socket and the lifecycle on its own thread, fed by the daemon
through a bounded queue. Imports config, health, ulid, edgenode.detect.regions (pure data),
the standard library and the `sapient-msg` bindings; never paho, control, hal, the daemon or a
command. Effector tasks are refused unless `[sapient] effector_tasks = true`; then the daemon
hands the client the effector's entry for an authenticated issuer (a callable), and task
regions go back to the daemon's detection stage the same way.
"""

from edgenode.interop.sapient.client import SapientClient

__all__ = ["SapientClient"]
