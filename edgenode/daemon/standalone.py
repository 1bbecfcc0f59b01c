"""The parts without the daemon, for `edgenode selftest --local` while the daemon is stopped.

Opens the configured sensors through the daemon's own stages (radar, microphones, I2C: they
only read) for a few seconds, reads the relay's inputs once with the drive held OFF (the
relay's safe state, as `edgenode relay-safe` leaves it), and runs the same checks as the
daemon. The broker is not contacted: a second client with the node's identity would fight
the daemon's when it comes back.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from edgenode.config import Config
from edgenode.control import open_relay
from edgenode.daemon.sensing import ReadingQueue, build_sensor_stages
from edgenode.health import Health
from edgenode.selftest import run_selftest
from hal.sensors.system import open_system_facts

log = logging.getLogger(__name__)
SETTLE_S = 1.5  # the stages' first steps: ports open, the chirp upload, an I2C read


class StandaloneParts:
    """A `NodeView` (edgenode/selftest/checks.py) of parts this process opened itself."""

    link = None
    effector = None

    def __init__(self, config: Config, config_path: Path, state_dir: Path):
        self.config, self.state_dir = config, state_dir
        self.health = Health()
        self.sensors: list[Any] = build_sensor_stages(config, config_path, self.health,
                                                      ReadingQueue())
        self.system = open_system_facts(config.sensors.system_backend,
                                        device=config.sensors.system_device)
        self.effector_state: dict[str, Any] | None = None

    def run(self, parts: list[str] | None = None) -> dict[str, Any]:
        started: list[Any] = []
        try:
            for stage in self.sensors:
                stage.start()
                started.append(stage)
            self._read_relay()
            time.sleep(SETTLE_S)
            return run_selftest(self, parts, mode="local")
        finally:
            for stage in reversed(started):
                stage.stop()

    def _read_relay(self) -> None:
        try:
            relay = open_relay(self.config.relay)  # reserves the drive OFF
        except Exception as exc:  # reported by relay.inputs, named
            log.warning("selftest: relay: %s", exc)
            self.effector_state = {"error": str(exc)}
            return
        try:
            inputs = relay.read()
        finally:
            relay.close()
        self.effector_state = {"state": "SAFE", "key_switch": inputs.key.value,
                               "aux_closed": inputs.aux_closed, "fault": None}
