"""edgenode: the daemon and tools of a counter-drone field unit."""

__version__ = "0.1.0"
