"""Detection: radar frames and microphone blocks in, tracks and events out. Pure numpy/scipy,
no I/O: it runs the same on live data, recordings and the simulator. Imports numpy, scipy and
edgenode.ulid only: no paho, no hal.ports, no files or sockets."""
