"""`edgenode record --seconds N --out DIR`: the configured devices' raw streams to files, in
the formats `edgenode replay` reads, so field engineers can bring real data home.

- radar: the data port's bytes exactly as received (frames, partial frames, line noise) in
  `DIR/radar-<model>.dat`; `edgenode replay --radar FILE --radar-model MODEL` reads it. The
  chirp config is uploaded first where the config names one, as the daemon does.
- microphones: every channel the capture device delivers, in its own order, as 16-bit PCM in
  `DIR/audio.wav` (hal.ports.audio.wav.write_wav); `edgenode replay --audio FILE --geometry
  NAME` reads it (with a `channel_map`, the map in record.json says which channel feeds which
  microphone).
- `DIR/record.json`: what was recorded, from which devices, when, with the pose replay needs.
Each device is read on its own thread for N seconds; a device that fails is named in the
summary and the others are still recorded. Stop the daemon first: a serial port or a sound
card has one reader.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgenode.config import AcousticSection, ConfigError, RadarSection, config_path, load_config

log = logging.getLogger(__name__)


def register(add: Callable[..., argparse.ArgumentParser]) -> None:
    p = add("record", cmd_record, "record the configured radar's bytes and the microphone "
            "array's PCM to files that `edgenode replay` reads (stop the daemon first)")
    p.add_argument("--seconds", type=float, required=True, metavar="N",
                   help="how long to record")
    p.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="directory for radar-<model>.dat, audio.wav and record.json")


class RadarRecorder:
    """Data-port bytes as received, counted through the parser for the summary."""

    def __init__(self, section: RadarSection, config_dir: Path, out: Path):
        from hal.radar import make_parser

        self.section, self.config_dir = section, config_dir
        self.path = out / f"radar-{section.model}.dat"
        self.parser: Any = make_parser(section.model)
        self.bytes = 0
        self.error: str | None = None

    def _configure(self) -> None:
        from hal.ports.serial import SerialPort
        from hal.radar.ti_cli import upload_config

        s = self.section
        if s.cli_port is None or s.chirp_config is None:
            return
        path = s.chirp_config if s.chirp_config.is_absolute() else self.config_dir / s.chirp_config
        cli = SerialPort(s.cli_port, s.cli_baud, name="radar-cli")
        try:
            upload_config(cli, path.read_text().splitlines(), source=str(path))
        finally:
            cli.close()

    def run(self, seconds: float, stop: threading.Event) -> None:
        from hal.ports.serial import PortUnavailable, SerialPort

        s = self.section
        try:
            self._configure()
            port = SerialPort(s.data_port, s.data_baud, name="radar-data")
        except (OSError, RuntimeError) as exc:  # CliError is a RuntimeError
            self.error = f"radar '{s.data_port}': {exc}"
            return
        deadline = time.monotonic() + seconds
        try:
            with self.path.open("wb") as fh:
                while time.monotonic() < deadline and not stop.is_set():
                    try:
                        data = port.read()
                    except PortUnavailable as exc:
                        self.error = f"radar '{s.data_port}': {exc}"
                        return
                    if data:
                        fh.write(data)
                        self.bytes += len(data)
                        self.parser.feed(data)
        finally:
            port.close()

    def summary(self) -> dict[str, Any]:
        return {"file": self.path.name, "model": self.section.model, "bytes": self.bytes,
                "frames": getattr(self.parser, "frames", None),
                "bytes_skipped": getattr(self.parser, "bytes_skipped", None),
                "data_port": self.section.data_port, "error": self.error,
                "boresight_azimuth_deg": self.section.boresight_azimuth_deg,
                "mount_height_m": self.section.mount_height_m}


class AudioRecorder:
    """Blocks from the configured capture device, all channels, written at the end."""

    def __init__(self, section: AcousticSection, out: Path):
        self.section = section
        self.path = out / "audio.wav"
        self.blocks: list[np.ndarray] = []
        self.t_first: float | None = None
        self.error: str | None = None
        self.overruns = 0

    def run(self, seconds: float, stop: threading.Event) -> None:
        from hal.ports.audio import open_audio

        s = self.section
        try:
            source = open_audio(s.backend, device=s.device, channels=s.channels,
                                sample_rate_hz=s.sample_rate_hz, block_frames=s.block_frames,
                                stall_timeout_s=s.stall_timeout_s)
        except OSError as exc:
            self.error = f"audio '{s.device}': {exc}"
            return
        want = round(seconds * s.sample_rate_hz)
        got = 0
        deadline = time.monotonic() + seconds + max(5.0, 2 * s.stall_timeout_s)
        try:
            while got < want and not stop.is_set():
                if time.monotonic() > deadline:
                    self.error = f"audio '{s.device}': only {got} of {want} frames arrived"
                    break
                block = source.read_block(timeout_s=0.5)
                if block is None:
                    continue
                if self.t_first is None:
                    self.t_first = block.t_capture
                samples = np.asarray(block.samples, dtype=np.float32)
                self.blocks.append(samples[: want - got])
                got += len(self.blocks[-1])
            self.overruns = int(getattr(source, "overruns", 0))
        finally:
            source.close()
        if self.blocks:
            from hal.ports.audio.wav import write_wav

            write_wav(self.path, np.concatenate(self.blocks), s.sample_rate_hz)

    def summary(self) -> dict[str, Any]:
        s = self.section
        frames = sum(len(b) for b in self.blocks)
        return {"file": self.path.name if self.blocks else None, "device": s.device,
                "backend": s.backend, "channels": s.channels,
                "sample_rate_hz": s.sample_rate_hz, "frames": frames,
                "seconds": round(frames / s.sample_rate_hz, 3), "t_first": self.t_first,
                "geometry": s.geometry, "channel_map": s.channel_map,
                "overruns": self.overruns, "error": self.error}


def record(config_file: Path, out: Path, seconds: float) -> dict[str, Any]:
    """Record every configured stream for `seconds`; the summary written to record.json."""
    config = load_config(config_file)
    out.mkdir(parents=True, exist_ok=True)
    recorders: list[RadarRecorder | AudioRecorder] = []
    if config.radar is not None:
        recorders.append(RadarRecorder(config.radar, config_file.parent, out))
    if config.acoustic is not None:
        recorders.append(AudioRecorder(config.acoustic, out))
    stop = threading.Event()
    threads = [threading.Thread(target=r.run, args=(seconds, stop), name=f"record-{i}",
                                daemon=True) for i, r in enumerate(recorders)]
    started = time.time()
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:
        stop.set()  # keep what arrived so far
        for thread in threads:
            thread.join()
    summary: dict[str, Any] = {
        "started": round(started, 3), "seconds": seconds, "config": str(config_file),
        "node": {"site": config.node.site, "id": config.node.id,
                 "mast_heading_deg": config.node.mast_heading_deg,
                 "latitude_deg": config.node.latitude_deg,
                 "longitude_deg": config.node.longitude_deg,
                 "altitude_m": config.node.altitude_m}}
    for r in recorders:
        summary["radar" if isinstance(r, RadarRecorder) else "audio"] = r.summary()
    (out / "record.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def cmd_record(args: argparse.Namespace) -> int:
    if args.seconds <= 0:
        log.error("record: --seconds %s must be positive", args.seconds)
        return 2
    path = config_path(args.config)
    try:
        summary = record(path, args.out, args.seconds)
    except ConfigError as exc:
        print(f"config invalid: {len(exc.problems)} problem(s)")
        for problem in exc.problems:
            print(f"  {problem}")
        return 78
    failed = False
    for kind in ("radar", "audio"):
        part = summary.get(kind)
        if part is None:
            continue
        if part["error"]:
            log.error("record: %s", part["error"])
            failed = True
        if kind == "radar":
            print(f"radar: {part['bytes']} bytes, {part['frames']} frames -> "
                  f"{args.out / part['file']}")
        elif part["file"]:
            print(f"audio: {part['seconds']} s x {part['channels']} ch at "
                  f"{part['sample_rate_hz']} Hz -> {args.out / part['file']}")
    if "radar" not in summary and "audio" not in summary:
        log.error("record: %s configures neither a radar nor a microphone array", path)
        return 1
    return 1 if failed else 0
