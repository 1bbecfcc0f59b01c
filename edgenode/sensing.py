"""Sensor stages: one reader thread per configured device, each a health-reporting loop.

A missing or unplugged device keeps its stage looping (and `failed`), so the watchdog keeps
the daemon alive while the health report says what is wrong.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from edgenode.config import Config, RadarSection
from edgenode.health import Health, LoopThread
from hal.ports.serial import PortUnavailable, SerialPort

log = logging.getLogger(__name__)


class RadarStage:
    name = "radar"

    def __init__(self, section: RadarSection, health: Health):
        self._section = section
        self._port = SerialPort(section.data_port, section.data_baud, name="radar-data")
        self._stage = health.register("radar", deadline_s=max(2.0, section.frame_timeout_s))
        self._stop = threading.Event()
        self._thread = LoopThread(self._stage, self._step, self._stop)

    def _step(self) -> None:
        try:
            data = self._port.read()
        except PortUnavailable as exc:
            self._stage.set("failed", str(exc))
            self._stop.wait(0.5)
            return
        if data:
            self._stage.set("ok")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._port.close()


def build_sensor_stages(config: Config, config_path: Path, health: Health) -> list[object]:
    stages: list[object] = []
    if config.radar is not None:
        stages.append(RadarStage(config.radar, health))
    return stages
