"""The TI mmWave radar: a point cloud per frame from the scenario, sent as SDK 3.x frames on a
pseudo-terminal, with the CLI port on a second one.

Each target inside the field of view returns a few points with an SNR from the radar equation
(RCS, range^4); a point is missed with a probability that rises as the SNR nears the CFAR
threshold; range, angles and Doppler carry noise that grows as the SNR falls (angle error
follows the beamwidth over sqrt(2 SNR)).

False points are what the out-of-box demo's detection chain lets through with static clutter
removal on (as it ships and as field units run it): the range-Doppler CFAR's false alarms.
Its false-alarm probability is the same in every range-Doppler cell, so they fall uniformly
over the range bins and the non-zero Doppler bins (the removal subtracts each range bin's mean
over the chirps, so the zero-Doppler bin holds no energy to cross the threshold), at an angle
wherever the noise's angle spectrum peaks (uniform in sine across the field of view), and just
over the threshold. They do not come back to the same place frame after frame: the mast, the
ground near it and buildings are static, and the removal takes them out.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import threading
import tty
from collections import deque
from pathlib import Path

import numpy as np

from hal.sim.scenario import Radar, Scenario
from hal.sim.world import World

log = logging.getLogger(__name__)

# IWR6843 ISK: 3 TX x 4 RX in TDM-MIMO: 8 virtual elements at half a wavelength across
# (beamwidth about 0.886 * 2/8 rad = 12.7 deg, TI quotes ~15 deg resolution), two rows high
# (about 57 deg).
AZ_BEAMWIDTH_DEG = 14.5
EL_BEAMWIDTH_DEG = 57.0
RANGE_SIGMA_M = 0.045
DOPPLER_SIGMA_MPS = 0.06
NOISE_FLOOR_DB = 62.0
# The chirp profile's unambiguous radial speed and Doppler bin width (a 64-chirp frame at
# 60 GHz); false alarms fall in the bins outside the zero bin.
DOPPLER_MAX_MPS = 10.0
DOPPLER_BIN_MPS = 2 * DOPPLER_MAX_MPS / 64
# CFAR threshold crossings by noise: the excess over the threshold is exponential (noise power
# is), about a dB.
FALSE_EXCESS_DB = 1.0
# The demo's detection range starts past the antenna's TX-RX leakage.
MIN_RANGE_M = 0.5
POINTS_PER_KIND = {"quad": 2.0, "fixed-wing": 2.5, "bird": 1.2, "car": 6.0}


class RadarModel:
    def __init__(self, scenario: Scenario, world: World, boresight_azimuth_deg: float,
                 time_scale: float = 1.0):
        """`time_scale`: the twin's --speed. The world runs that much faster than the wall
        clock the daemon stamps frames with, so the Doppler it measures is that much larger:
        radial speeds are reported on the daemon's clock, consistent with the positions."""
        self.cfg: Radar = scenario.radar
        self.world = world
        self.boresight = math.radians(boresight_azimuth_deg)
        self.time_scale = time_scale

    def to_radar(self, node: np.ndarray) -> np.ndarray:
        """Node frame (x ahead, y left) -> radar frame (x right of boresight, y along it)."""
        s, c = math.sin(self.boresight), math.cos(self.boresight)
        x, y, z = node[..., 0], node[..., 1], node[..., 2]
        return np.stack([-x * s - y * c, x * c - y * s, z], axis=-1)

    def frame(self, t: float, rng: np.random.Generator) -> np.ndarray:
        """float32 (N, 6) points in POINT_COLUMNS order for scenario time t."""
        cfg = self.cfg
        rows: list[list[float]] = []
        fov_az, fov_el = math.radians(cfg.fov_azimuth_deg), math.radians(cfg.fov_elevation_deg)
        for body, pos, vel in self.world.bodies_at(t):
            rel = self.to_radar(self.world.enu_to_node(pos))
            rvel = self.to_radar(self.world.enu_to_node(pos + vel) - self.world.enu_to_node(pos))
            r = float(np.linalg.norm(rel))
            if r < 0.5 or r > cfg.max_range_m:
                continue
            az = math.atan2(rel[0], rel[1])
            el = math.asin(rel[2] / r)
            if abs(az) > fov_az or abs(el) > fov_el:
                continue
            rcs = body.target.rcs
            if body.target.kind == "bird":
                # Wing beats modulate a bird's cross-section by several dB.
                rcs *= 10 ** (0.3 * math.sin(2 * math.pi * body.target.wingbeat_hz * t
                                             + body.seed))
            pattern_db = -3.0 * ((az / fov_az) ** 2 + (el / fov_el) ** 2)
            snr = (cfg.snr_db_1m2_at_10m + 10 * math.log10(rcs) - 40 * math.log10(r / 10)
                   + pattern_db)
            radial = float(np.dot(rvel, rel) / r) * self.time_scale
            expected = POINTS_PER_KIND[body.target.kind] * (1 + max(snr - 20, 0) / 20)
            for _ in range(max(1, rng.poisson(expected))):
                p_snr = snr + rng.normal(0, 2.0)
                # Probability of detection: a soft step at the CFAR threshold.
                if rng.random() > 1 / (1 + math.exp(-(p_snr - cfg.detection_threshold_db) / 1.5)):
                    continue
                rows.append(self._point(r, az, el, radial, p_snr, rng))
        for _ in range(rng.poisson(cfg.clutter_points_per_frame)):
            rows.append(self._false_alarm(rng))
        if not rows:
            return np.zeros((0, 6), dtype=np.float32)
        pts = np.array(rows, dtype=np.float32)
        # snr and noise travel as tenths of a dB: emit what the wire can carry.
        pts[:, 4:] = np.round(pts[:, 4:].astype(np.float64) * 10) / 10
        return pts

    def _false_alarm(self, rng: np.random.Generator) -> list[float]:
        """One CFAR false alarm: a uniformly drawn range-Doppler cell off the zero bin, its
        angle where the noise's angle spectrum peaked; the angle estimate carries no further
        noise (it is noise)."""
        cfg = self.cfg
        r = rng.uniform(MIN_RANGE_M, cfg.max_range_m)
        speed = rng.uniform(DOPPLER_BIN_MPS, DOPPLER_MAX_MPS) * rng.choice((-1.0, 1.0))
        az = math.asin(rng.uniform(-1, 1) * math.sin(math.radians(cfg.fov_azimuth_deg)))
        el = math.asin(rng.uniform(-1, 1) * math.sin(math.radians(cfg.fov_elevation_deg)))
        snr = cfg.detection_threshold_db + rng.exponential(FALSE_EXCESS_DB)
        return [r * math.cos(el) * math.sin(az), r * math.cos(el) * math.cos(az),
                r * math.sin(el), speed, snr, NOISE_FLOOR_DB + rng.normal(0, 1.5)]

    @staticmethod
    def _point(r: float, az: float, el: float, radial: float, snr_db: float,
               rng: np.random.Generator) -> list[float]:
        lin = 10 ** (max(snr_db, 0.0) / 10)
        s_az = math.radians(AZ_BEAMWIDTH_DEG) / (1.6 * math.sqrt(2 * lin))
        s_el = math.radians(EL_BEAMWIDTH_DEG) / (1.6 * math.sqrt(2 * lin))
        rr = r + rng.normal(0, RANGE_SIGMA_M)
        a = az + rng.normal(0, s_az)
        e = el + rng.normal(0, s_el)
        return [rr * math.cos(e) * math.sin(a), rr * math.cos(e) * math.cos(a),
                rr * math.sin(e), radial + rng.normal(0, DOPPLER_SIGMA_MPS),
                snr_db, NOISE_FLOOR_DB + rng.normal(0, 1.5)]


def _open_pty(link: Path) -> tuple[int, int, str]:
    master, slave = os.openpty()
    # Raw at once: no echo or line editing may touch the binary stream before a reader opens.
    tty.setraw(slave)
    os.set_blocking(master, False)
    path = os.ttyname(slave)
    tmp = link.with_name(link.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(path, tmp)
    os.replace(tmp, link)
    return master, slave, path


def misread_at_baud(data: bytes, ratio: float) -> bytes:
    """What a UART reading `ratio` times faster than the sender (the `radar-wrong-baud` fault:
    the daemon at 921600, the module at 115200) receives for `data`: it samples each bit
    mid-way, resyncs on every start bit, and a byte whose stop bit reads 0 (a framing error)
    arrives as NUL, as Linux delivers it without IGNPAR/PARMRK. Mostly NUL and 0xF0-ish bytes,
    many more of them than were sent, and no frame among them."""
    if not data:
        return b""
    tx = np.unpackbits(np.frombuffer(data, np.uint8)[:, None], axis=1, bitorder="little")
    n = tx.shape[0]
    sent = np.hstack([np.zeros((n, 1), np.uint8), tx, np.ones((n, 1), np.uint8)]).ravel()
    n_rx = int(len(sent) * ratio)
    line = sent[np.minimum(((np.arange(n_rx) + 0.5) / ratio).astype(int), len(sent) - 1)]
    starts = np.flatnonzero(line == 0)
    out = bytearray()
    i = 0
    while True:
        k = int(np.searchsorted(starts, i))
        if k == len(starts) or starts[k] + 10 > n_rx:
            return bytes(out)
        i = int(starts[k])
        byte = int(np.packbits(line[i + 1:i + 9], bitorder="little")[0])
        out.append(byte if line[i + 9] else 0)
        i += 10


class RadarPorts:
    """The radar's two USB serial ports (data and CLI) as ptys behind stable symlinks."""

    MAX_BACKLOG = 64 * 1024

    def __init__(self, out_dir: Path, log_path: Path | None):
        self.data_link = out_dir / "radar-data"
        self.cli_link = out_dir / "radar-cli"
        self.data_master = self.data_slave = self.cli_master = self.cli_slave = -1
        self.data_pty = self.cli_pty = ""
        self._cli_stop = threading.Event()
        self._cli_thread: threading.Thread | None = None
        self._pending: deque[tuple[int, bytearray]] = deque()
        self._lock = threading.Lock()
        self.frames_written = 0
        self.frames_dropped = 0
        self._log = log_path.open("a", buffering=1) if log_path else None

    @property
    def plugged(self) -> bool:
        return self.data_master >= 0

    def plug(self) -> None:
        with self._lock:
            if self.plugged:
                return
            self.data_master, self.data_slave, self.data_pty = _open_pty(self.data_link)
            self.cli_master, self.cli_slave, self.cli_pty = _open_pty(self.cli_link)
            self._cli_stop = threading.Event()
            self._cli_thread = threading.Thread(target=self._serve_cli, name="sim-radar-cli",
                                                args=(self.cli_master, self._cli_stop),
                                                daemon=True)
            self._cli_thread.start()
        log.info("sim radar: plugged in (data %s, cli %s)", self.data_pty, self.cli_pty)

    def _serve_cli(self, fd: int, stop: threading.Event) -> None:
        from hal.sim.radar_cli import serve_ti_cli

        os.set_blocking(fd, True)
        try:
            serve_ti_cli(fd, stop)
        except OSError as exc:
            if not stop.is_set():
                log.warning("sim radar: cli port ended: %s", exc)

    def unplug(self) -> None:
        with self._lock:
            if not self.plugged:
                return
            self._cli_stop.set()
            thread = self._cli_thread
        if thread is not None:
            thread.join(timeout=1)
        with self._lock:
            for fd in (self.data_master, self.data_slave, self.cli_master, self.cli_slave):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self.data_master = self.data_slave = self.cli_master = self.cli_slave = -1
            for link in (self.data_link, self.cli_link):
                with contextlib.suppress(FileNotFoundError):
                    link.unlink()
            self._drop_pending()
        log.info("sim radar: unplugged")

    def _drop_pending(self) -> None:
        for number, _ in self._pending:
            self.frames_dropped += 1
            self._record({"frame": number, "dropped": True})
        self._pending.clear()

    def send(self, number: int, packet: bytes, record: dict) -> None:
        """Queue one frame (or garbage, number -1) and write what the pty takes now."""
        with self._lock:
            if not self.plugged:
                return
            if number >= 0:
                self._record(record)
            self._pending.append((number, bytearray(packet)))
            self._flush()
            if sum(len(b) for _, b in self._pending) > self.MAX_BACKLOG:
                # Nobody reads the port: the radar's UART does not wait either.
                self._drop_pending()

    def _flush(self) -> None:
        while self._pending:
            number, buf = self._pending[0]
            try:
                n = os.write(self.data_master, buf)
            except BlockingIOError:
                return
            except OSError as exc:
                log.debug("sim radar: data write: %s", exc)
                return
            del buf[:n]
            if buf:
                return
            self._pending.popleft()
            if number >= 0:
                self.frames_written += 1

    def _record(self, record: dict) -> None:
        if self._log is not None:
            self._log.write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> None:
        self.unplug()
        if self._log is not None:
            self._log.close()
            self._log = None
