"""Sensor stages: one reader thread per configured device, each a health-reporting loop.

Readers only read and decode, then hand readings to the detection stage through one bounded
queue. A missing or unplugged device keeps its stage looping (and `failed`), so the watchdog
keeps the daemon alive while the health report says what is wrong.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

from edgenode.config import AcousticSection, Config, RadarSection
from edgenode.health import Health, LoopThread
from hal.ports.serial import PortUnavailable, SerialPort
from hal.radar import make_parser

log = logging.getLogger(__name__)


class ReadingQueue:
    """Bounded queue from the readers to detection; when full the oldest reading goes."""

    def __init__(self, maxsize: int = 256):
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize)
        self.dropped = 0

    def put(self, kind: str, reading: Any) -> None:
        while True:
            try:
                self._queue.put_nowait((kind, reading))
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def get(self, timeout_s: float) -> tuple[str, Any] | None:
        try:
            return self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def depth(self) -> int:
        return self._queue.qsize()


class _Stage:
    """A reader thread with its health entry; subclasses define `step`."""

    name = "stage"

    def __init__(self, health: Health, deadline_s: float):
        self.health = health.register(self.name, deadline_s=deadline_s)
        self._stop = threading.Event()
        self._thread = LoopThread(self.health, self.step, self._stop)

    def step(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)
        self.close()

    def close(self) -> None:
        pass


class RadarStage(_Stage):
    name = "radar"

    def __init__(self, section: RadarSection, config_dir: Path, health: Health,
                 out: ReadingQueue):
        super().__init__(health, deadline_s=max(2.0, section.frame_timeout_s))
        self.section, self.config_dir, self.out = section, config_dir, out
        self.port = SerialPort(section.data_port, section.data_baud, name="radar-data")
        self.parser: Any = make_parser(section.model)
        self._configured = section.cli_port is None or section.chirp_config is None
        self._last_frame = time.monotonic()

    def _configure(self) -> None:
        """Upload the chirp config over the CLI port (TI), once per (re)connection."""
        from hal.radar.ti_cli import upload_config

        assert self.section.cli_port and self.section.chirp_config
        path = self.section.chirp_config
        path = path if path.is_absolute() else self.config_dir / path
        cli = SerialPort(self.section.cli_port, self.section.cli_baud, name="radar-cli")
        try:
            upload_config(cli, path.read_text().splitlines(), source=str(path))
        finally:
            cli.close()
        self._configured = True
        log.info("radar: chirp config %s uploaded", path)

    def step(self) -> None:
        try:
            if not self._configured:
                self._configure()
            data = self.port.read()
        except PortUnavailable as exc:
            self.health.set("failed", str(exc))
            self._configured = self.section.cli_port is None or self.section.chirp_config is None
            self._stop.wait(0.5)
            return
        now = time.time()
        for frame in self.parser.feed(data, now):
            self.out.put("radar", frame)
            self._last_frame = time.monotonic()
        silent = time.monotonic() - self._last_frame
        if silent > self.section.frame_timeout_s:
            self.health.set("failed", f"radar '{self.section.data_port}': no frame for "
                            f"{silent:.1f} s (frame_timeout_s); check the data-port cable and baud")
        else:
            self.health.set("ok")

    def counters(self) -> dict[str, int]:
        p = self.parser
        return {"bytes_in": self.port.bytes_in, "frames": getattr(p, "frames", 0),
                "bytes_skipped": getattr(p, "bytes_skipped", 0),
                "frames_rejected": getattr(p, "frames_rejected", 0)}

    def close(self) -> None:
        self.port.close()


class AcousticStage(_Stage):
    name = "acoustic"

    def __init__(self, section: AcousticSection, config_dir: Path, health: Health,
                 out: ReadingQueue):
        super().__init__(health, deadline_s=max(2.0, 2 * section.stall_timeout_s))
        from hal.acoustic import MicArray, load_geometry
        from hal.ports.audio import open_audio

        self.section, self.out = section, out
        geometry = section.geometry
        if ("/" in geometry or geometry.endswith(".toml")) and not Path(geometry).is_absolute():
            geometry = str(config_dir / geometry)
        self.geometry = load_geometry(geometry)
        self.array = MicArray(self.geometry, section.channel_map, channels=section.channels)
        self._open_audio = open_audio
        self.source: Any = None
        self._last_block = time.monotonic()

    def step(self) -> None:
        s = self.section
        if self.source is None:
            try:
                self.source = self._open_audio(
                    s.backend, device=s.device, channels=s.channels,
                    sample_rate_hz=s.sample_rate_hz, block_frames=s.block_frames,
                    stall_timeout_s=s.stall_timeout_s)
            except OSError as exc:
                self.health.set("failed", f"audio '{s.device}': {exc}")
                self._stop.wait(1.0)
                return
        block = self.source.read_block(timeout_s=0.5)
        if block is None:
            silent = time.monotonic() - self._last_block
            if silent > s.stall_timeout_s:
                self.health.set("failed", f"audio '{s.device}': no samples for {silent:.1f} s")
            return
        self._last_block = time.monotonic()
        self.out.put("audio", (block, self.array.arrange(block)))
        self.health.set("ok")

    def counters(self) -> dict[str, int]:
        src = self.source
        return {name: getattr(src, name, 0) for name in ("overruns", "stalls", "restarts")}

    def close(self) -> None:
        if self.source is not None:
            self.source.close()


def build_sensor_stages(config: Config, config_path: Path, health: Health,
                        out: ReadingQueue) -> list[_Stage]:
    stages: list[_Stage] = []
    if config.radar is not None:
        stages.append(RadarStage(config.radar, config_path.parent, health, out))
    if config.acoustic is not None:
        stages.append(AcousticStage(config.acoustic, config_path.parent, health, out))
    return stages
