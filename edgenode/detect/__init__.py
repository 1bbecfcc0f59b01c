"""Detection: radar frames and microphone blocks in, tracks and events out. Pure numpy/scipy,
no I/O: it runs the same on live data, recordings and the simulator."""
