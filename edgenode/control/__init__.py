"""Engage control: the only code that moves the jammer relay. Command verification, admission,
the effector state machine and its deadline loop, the audit log. A library: imports config,
hal.relay and the link's message type; never the daemon or a command."""

from edgenode.control.effector import Effector
from edgenode.control.relay import open_relay, relay_safe

__all__ = ["Effector", "open_relay", "relay_safe"]
