"""Hardware abstraction: wires in, typed readings out. Knows nothing of the daemon."""
