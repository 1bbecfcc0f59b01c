"""Sensor stages: one reader thread per configured device, each a health-reporting loop.

Readers only read and decode, then hand readings to the detection stage through one bounded
queue. A missing or unplugged device keeps its stage looping (and `failed`), so the watchdog
keeps the daemon alive while the health report says what is wrong.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from edgenode.config import AcousticSection, Config, RadarSection
from edgenode.config.models import I2CDevice, SensorsSection
from edgenode.health import ErrorLog, Health, LoopThread
from hal.ports.serial import PortUnavailable, SerialPort
from hal.radar import make_parser
from hal.radar.clock import FrameClock, chirp_frame_period_s
from hal.sensors import SensorError

log = logging.getLogger(__name__)


class ReadingQueue:
    """Bounded queue from the readers to detection, by count and by bytes: when either is
    full the oldest reading goes (counted). The byte bound keeps a detector that falls behind
    (a loaded board) from holding seconds of 16-channel audio: 256 such blocks are 67 MB."""

    def __init__(self, maxsize: int = 256, max_bytes: int = 8 * 1024 * 1024):
        self._queue: queue.Queue[tuple[str, Any, int]] = queue.Queue(maxsize)
        self.max_bytes = max_bytes
        self.bytes = 0
        self.dropped = 0
        self._lock = threading.Lock()

    @staticmethod
    def _size(reading: Any) -> int:
        """Bytes of the arrays a reading holds (audio: the block's samples)."""
        parts = reading if isinstance(reading, tuple) else (reading,)
        return sum(int(getattr(part, "nbytes", 0)) for part in parts)

    def put(self, kind: str, reading: Any) -> None:
        size = self._size(reading)
        with self._lock:
            while self.bytes + size > self.max_bytes and self._drop_oldest():
                pass
            while True:
                try:
                    self._queue.put_nowait((kind, reading, size))
                    self.bytes += size
                    return
                except queue.Full:
                    self._drop_oldest()

    def _drop_oldest(self) -> bool:
        try:
            _, _, size = self._queue.get_nowait()
        except queue.Empty:
            return False
        self.bytes -= size
        self.dropped += 1
        return True

    def get(self, timeout_s: float) -> tuple[str, Any] | None:
        try:
            kind, reading, size = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None
        with self._lock:
            self.bytes -= size
        return kind, reading

    def depth(self) -> int:
        return self._queue.qsize()


class _Stage:
    """A reader thread with its health entry; subclasses define `step`."""

    name = "stage"
    STOP_TIMEOUT_S = 3.0

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
        if not join_or_report(self._thread, self.STOP_TIMEOUT_S, self.name):
            return  # its device stays open: the thread may still be using it
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
        self.frame_period_s: float | None = None
        self.clock = self._frame_clock()
        # For the self-test (selftest_facts): why the data port or the upload last failed.
        self.port_error: str | None = None
        self.config_error: str | None = None
        self.recent_numbers: deque[int] = deque(maxlen=64)

    def _frame_clock(self) -> FrameClock | None:
        if self.section.model != "ti-mmwave":
            return None  # the OPS243 reports when it has something; its numbers are ours
        period_s = None
        if self.section.frame_period_ms is not None:
            period_s = self.section.frame_period_ms / 1000.0
        elif self.section.chirp_config is not None:
            with contextlib.suppress(OSError):  # the upload names a missing file
                period_s = chirp_frame_period_s(self._chirp_path())
        if period_s is None:
            log.warning("radar: no frame period (radar.frame_period_ms or a frameCfg in "
                        "radar.chirp_config): frames are stamped on arrival")
            return None
        self.frame_period_s = period_s
        return FrameClock(period_s)

    def _chirp_path(self) -> Path:
        path = self.section.chirp_config
        if path is None:  # not an assert: those are gone under python -O
            raise ValueError("radar: radar.chirp_config is not set")
        return path if path.is_absolute() else self.config_dir / path

    def _configure(self) -> None:
        """Upload the chirp config over the CLI port (TI), once per (re)connection."""
        from hal.radar.ti_cli import upload_config

        if self.section.cli_port is None:
            raise ValueError("radar: radar.cli_port is not set; cannot upload the chirp config")
        path = self._chirp_path()
        cli = SerialPort(self.section.cli_port, self.section.cli_baud, name="radar-cli")
        try:
            upload_config(cli, path.read_text().splitlines(), source=str(path))
        except Exception as exc:
            self.config_error = str(exc)
            raise
        finally:
            cli.close()
        self._configured = True
        self.config_error = None
        log.info("radar: chirp config %s uploaded", path)

    def step(self) -> None:
        try:
            if not self._configured:
                self._configure()
            data = self.port.read()
        except PortUnavailable as exc:
            self.port_error = str(exc)
            self.health.set("failed", str(exc))
            self._configured = self.section.cli_port is None or self.section.chirp_config is None
            self._stop.wait(0.5)
            return
        self.port_error = None
        now = time.time()
        for frame in self.parser.feed(data, now):
            if self.clock is not None:
                frame.t_capture = self.clock.stamp(frame.frame_number, now)
            self.out.put("radar", frame)
            self.recent_numbers.append(frame.frame_number)
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

    def selftest_facts(self) -> dict[str, Any]:
        """What the self-test reads (read-only, cheap): the ports' state and the parser's
        counters, stamped with the monotonic clock so two reads give rates."""
        s, p = self.section, self.parser
        return {"t": time.monotonic(), "model": s.model, "data_port": str(s.data_port),
                "data_baud": s.data_baud, "port_error": self.port_error,
                "cli_port": None if s.cli_port is None else str(s.cli_port),
                "config_required": not (s.cli_port is None or s.chirp_config is None),
                "configured": self._configured, "config_error": self.config_error,
                "frame_period_s": self.frame_period_s, **self.counters(),
                "frame_gaps": getattr(p, "frame_gaps", 0),
                "frames_missing": getattr(p, "frames_missing", 0),
                "recent_frame_numbers": list(self.recent_numbers)}

    def close(self) -> None:
        self.port.close()


class AcousticStage(_Stage):
    name = "acoustic"
    RECENT_S = 2.0  # at least the self-test window (edgenode.selftest.checks.WINDOW_S)

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
        # The self-test's view: the last RECENT_S of arranged samples (references to blocks
        # the detector gets anyway, no copies) and why the device last failed to open.
        self.blocks = 0
        self.open_error: str | None = None
        self._recent: deque[Any] = deque(
            maxlen=max(2, int(self.RECENT_S * section.sample_rate_hz / section.block_frames)))

    def step(self) -> None:
        s = self.section
        if self.source is None:
            try:
                self.source = self._open_audio(
                    s.backend, device=s.device, channels=s.channels,
                    sample_rate_hz=s.sample_rate_hz, block_frames=s.block_frames,
                    stall_timeout_s=s.stall_timeout_s)
            except OSError as exc:
                self.open_error = str(exc)
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
        self.open_error = None
        arranged = self.array.arrange(block)
        self.blocks += 1
        self._recent.append((self._last_block, arranged))
        self.out.put("audio", (block, arranged))
        self.health.set("ok")

    def counters(self) -> dict[str, int]:
        src = self.source
        return {name: getattr(src, name, 0) for name in ("overruns", "stalls", "restarts")}

    def selftest_facts(self) -> dict[str, Any]:
        s = self.section
        return {"t": time.monotonic(), "device": s.device, "channels": s.channels,
                "sample_rate_hz": s.sample_rate_hz, "block_frames": s.block_frames,
                "open_error": self.open_error, "blocks": self.blocks,
                "since_block_s": time.monotonic() - self._last_block,
                "channel_map": list(self.array.channel_map), **self.counters()}

    def recent_samples(self, since: float | None = None) -> Any:
        """The last ~RECENT_S of samples, (frames, mics) in geometry order, or None; with
        `since` (monotonic) only blocks that arrived after it (a slow stream's last blocks
        may be older than the self-test's window)."""
        import numpy as np

        blocks = [b for t, b in list(self._recent) if since is None or t >= since]
        return np.concatenate(blocks) if blocks else None

    def close(self) -> None:
        if self.source is not None:
            self.source.close()


class I2CStage(_Stage):
    """Reads every configured I2C part once a second; a part that fails is retried, named."""

    name = "i2c"
    PERIOD_S = 1.0
    COMPASS_KINDS = ("qmc5883l", "lis3mdl")

    def __init__(self, sensors: SensorsSection, mast_heading_deg: float, health: Health, *,
                 buses: dict[int, Any] | None = None):
        """`buses`: buses already open, by number (a test's fake bus with its parts on it);
        the others are opened with `sensors.i2c_backend`. The stage closes them all."""
        super().__init__(health, deadline_s=10.0)
        self.section, self.mast_heading_deg = sensors, mast_heading_deg
        self._buses: dict[int, Any] = dict(buses or {})
        self._parts: dict[str, Any] = {}
        self.readings: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, str] = {}
        self.reads = 0
        self.failures = 0
        self._error_log = ErrorLog(log)

    def _part(self, device: I2CDevice) -> Any:
        from hal.ports.i2c import open_i2c
        from hal.sensors import open_sensor

        if device.name not in self._parts:
            if device.bus not in self._buses:
                self._buses[device.bus] = open_i2c(self.section.i2c_backend, bus=device.bus,
                                                   device=self.section.i2c_device)
            self._parts[device.name] = open_sensor(device.kind, self._buses[device.bus],
                                                   device.address, shunt_ohm=device.shunt_ohm)
        return self._parts[device.name]

    def step(self) -> None:
        for device in self.section.i2c:
            try:
                reading = self._part(device).read()
            except Exception as exc:  # one part's boundary: the others are still read
                # Absent, wrong chip, bus error: expected in the field, a warning. Anything
                # else is a bug in a driver: an error. Either way with its traceback.
                expected = isinstance(exc, OSError | SensorError | ValueError)
                self._error_log.report(logging.WARNING if expected else logging.ERROR,
                                       f"i2c: {device.kind} '{device.name}'", exc)
                self.failures += 1
                self._parts.pop(device.name, None)
                self.errors[device.name] = f"{device.kind} '{device.name}': {exc}"
                self.readings.pop(device.name, None)
                continue
            self.reads += 1
            self.errors.pop(device.name, None)
            self.readings[device.name] = _as_dict(reading)
        problems = list(self.errors.values()) + self._compass_problems()
        self.health.set("ok" if not problems else "degraded", "; ".join(problems))
        self._stop.wait(self.PERIOD_S)

    def _compass_problems(self) -> list[str]:
        """The config is authoritative for the mast heading; the compass only checks it."""
        out = []
        for device in self.section.i2c:
            reading = self.readings.get(device.name)
            if device.kind not in self.COMPASS_KINDS or not reading:
                continue
            true_heading = (reading["heading_deg"] + self.section.magnetic_declination_deg) % 360
            off = (true_heading - self.mast_heading_deg + 180) % 360 - 180
            if abs(off) > self.section.compass_tolerance_deg:
                out.append(f"compass '{device.name}' reads {true_heading:.0f} deg true but "
                           f"node.mast_heading_deg is {self.mast_heading_deg:.0f}: check the "
                           "mast heading or the compass mounting")
        return out

    def counters(self) -> dict[str, int]:
        return {"reads": self.reads, "failures": self.failures}

    def selftest_facts(self) -> dict[str, Any]:
        s = self.section
        return {"t": time.monotonic(), "devices": [d.model_dump(mode="json") for d in s.i2c],
                "readings": {k: dict(v) for k, v in list(self.readings.items())},
                "errors": dict(self.errors), "mast_heading_deg": self.mast_heading_deg,
                "magnetic_declination_deg": s.magnetic_declination_deg,
                "compass_tolerance_deg": s.compass_tolerance_deg, "reads": self.reads}

    def flat_readings(self) -> dict[str, Any]:
        """`part.quantity_unit` -> value, for the health report (`jammer-power.current_a`)."""
        out: dict[str, Any] = {}
        for part, reading in list(self.readings.items()):
            for key, value in reading.items():
                if isinstance(value, tuple | list):
                    out.update({f"{part}.{key}.{i}": v for i, v in enumerate(value)})
                else:
                    out[f"{part}.{key}"] = value
        return out

    def close(self) -> None:
        for bus in self._buses.values():
            bus.close()


def join_or_report(thread: threading.Thread, timeout_s: float, name: str) -> bool:
    """Join `thread`; False (and an ERROR naming the stage) when it is still running, so the
    caller leaves alone what the thread uses (a port, a database) instead of closing it
    under it."""
    thread.join(timeout=timeout_s)
    if not thread.is_alive():
        return True
    log.error("%s: the stage's thread did not stop within %.1f s; leaving what it uses open "
              "(the process exit closes it)", name, timeout_s)
    return False


def _as_dict(reading: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(reading) and not isinstance(reading, type):
        return dataclasses.asdict(reading)
    return {"value": reading}


def build_sensor_stages(config: Config, config_path: Path, health: Health,
                        out: ReadingQueue) -> list[_Stage]:
    stages: list[_Stage] = []
    if config.radar is not None:
        stages.append(RadarStage(config.radar, config_path.parent, health, out))
    if config.acoustic is not None:
        stages.append(AcousticStage(config.acoustic, config_path.parent, health, out))
    if config.sensors.i2c:
        stages.append(I2CStage(config.sensors, config.node.mast_heading_deg, health))
    return stages
