"""The daemon: `Node` owns the lifecycle and wires the libraries (config, detect, link, control,
selftest, hal) into stages (sensing, detection, health, control socket, sd_notify). Imports the
libraries; no library imports the daemon."""
