"""Hardware abstraction: wires in, typed readings out. Knows nothing of the daemon: never
imports edgenode (tests/test_architecture.py checks)."""
