"""The digital twin: simulated parts that speak the real wire formats."""
