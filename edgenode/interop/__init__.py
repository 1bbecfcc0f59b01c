"""Other systems' languages: Cursor-on-Target for TAK maps (`cot/`) and SAPIENT (BSI Flex 335
v2.0) for C-UAS command systems (`sapient/`).

Each room is fed the node's track events and state by the daemon, as `link/` is. Encoding lives
in one module, transport in another, with a bounded queue between them, so a slow or absent
peer never blocks the detection loop. Imports config, health and the standard library (and the
peer's own maintained library, e.g. takproto, sapient-msg); never paho, control, hal, the
daemon or a command.
"""
