"""Engage control: the only code that moves the jammer relay."""

from edgenode.control.effector import Effector
from edgenode.control.relay import open_relay, relay_safe

__all__ = ["Effector", "open_relay", "relay_safe"]
