"""Cursor-on-Target output: the node's tracks and its own marker on ATAK/WinTAK/iTAK maps, to a
TAK server (TCP, TLS with a client certificate) or plain UDP (multicast or unicast).
docs/cot.md says what each field carries and where the convention comes from."""

from edgenode.interop.cot.output import CotOutput

__all__ = ["CotOutput"]
