"""The effector: owns the relay, runs its deadline loop (the only heartbeat source).

Foundation version: SAFE only. The engage issue adds the state machine (ARMED, ENGAGED,
FAULT), command handling and the audit trail.
"""

from __future__ import annotations

import logging
import threading
import time

from edgenode.config import Config
from edgenode.health import Health, LoopThread
from hal.relay import JammerRelay

log = logging.getLogger(__name__)


class Effector:
    def __init__(self, relay: JammerRelay, config: Config, health: Health):
        self._relay = relay
        self._config = config
        self._period_s = config.relay.heartbeat_period_ms / 1000
        self._stop = threading.Event()
        self._stage = health.register("effector", deadline_s=max(1.0, 10 * self._period_s))
        self._thread = LoopThread(self._stage, self._step, self._stop)
        self.state = "SAFE"

    def start(self) -> None:
        inputs = self._relay.read()
        if inputs.aux_closed:
            log.error("effector: aux contact closed at start-up with the drive off")
        self._stage.set("ok")
        self._thread.start()

    def _step(self) -> None:
        # The heartbeat toggles only while this loop runs: a hung loop lets the board drop.
        self._relay.toggle_heartbeat()
        time.sleep(self._period_s / 2)

    def make_safe(self, reason: str) -> None:
        self._relay.drive(False)
        if self.state != "SAFE":
            log.warning("effector: SAFE (%s)", reason)
        self.state = "SAFE"

    def stop(self) -> None:
        """Safe first, then stop the loop and release the relay. Never raises."""
        try:
            self.make_safe("stopping")
        finally:
            self._stop.set()
            if self._thread.is_alive():
                self._thread.join(timeout=2)
            self._relay.close()
