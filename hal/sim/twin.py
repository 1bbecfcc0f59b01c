"""The digital twin: one process that owns the scenario clock and every simulated part.

Exposes the radar on ptys, and the relay board, microphone array, I2C parts and board facts on
one Unix socket (hal.sim.protocol); writes ground truth to truth.jsonl and where everything is
to endpoints.json. Scenario and sensors run `speed` times faster than the wall clock; the
relay board keeps wall-clock (monotonic) time.

Two or more twins share one sky when each plays one of the scenario's `[[masts]]` (`mast`)
and all are given the same `sky_epoch`: the wall-clock time scenario time 0 maps to, so every
twin puts a target at the same place at the same wall time, whenever it started.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hal.sim.protocol import LineSocket
from hal.sim.relay_board import KeyPosition, RelayBoard, Transition
from hal.sim.remoteid_air import RemoteIdAir, broadcasting, socket_paths
from hal.sim.scenario import FAULT_NAMES, Scenario, load_hardware
from hal.sim.world import World, bearing_of

log = logging.getLogger(__name__)

# mic-clipping: the preamp gain jumps by 80 dB and the converter saturates.
CLIPPING_GAIN = 1e4
# radar-wrong-baud: the module's data port runs at its CLI's rate, not the configured one.
WRONG_BAUD = 115200
# mic-channel-dead: this microphone (0-based device channel) gives nothing but zeros.
DEAD_CHANNEL = 5
# mic-swapped: these two microphones' cables are swapped (device channels, 0-based).
SWAPPED_CHANNELS = (2, 9)
# compass-off-heading: the compass (or the mast) is turned by this much.
COMPASS_OFF_DEG = 40.0


@dataclass
class Line:
    name: str
    direction: str
    level: bool = False
    owner: int | None = None  # connection id holding the line


@dataclass
class ActiveFault:
    name: str
    until_sim_t: float | None = None


@dataclass
class Conn:
    id: int
    kind: str = ""
    name: str = ""
    lines: set[int] = field(default_factory=set)


class Truth:
    """truth.jsonl: one JSON object per line, written as things happen."""

    def __init__(self, path: Path):
        self._fh = path.open("a", buffering=1)
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> None:
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


class Twin:
    def __init__(self, scenario: Scenario, out_dir: Path, *, speed: float = 1.0,
                 faults: list[str] | tuple[str, ...] = (), scenario_path: Path | None = None,
                 mast: str | None = None, sky_epoch: float | None = None):
        """`mast`: which of the scenario's `[[masts]]` this twin is (None: `[node]`);
        `sky_epoch`: the wall-clock time (Unix seconds, not in the future) of scenario time 0
        (None: now)."""
        unknown = [f for f in faults if f not in FAULT_NAMES]
        if unknown:
            raise ValueError(f"fault(s) {unknown} unknown; choose from {list(FAULT_NAMES)}")
        if speed <= 0:
            raise ValueError(f"speed {speed} must be positive")
        now_wall, now_mono = time.time(), time.monotonic()
        if sky_epoch is not None and sky_epoch > now_wall:
            raise ValueError(f"sky epoch {sky_epoch:.3f} is {sky_epoch - now_wall:.1f} s in the "
                             "future; give a time already past (e.g. when the first twin "
                             "was started)")
        self.scenario = scenario
        self.scenario_path = scenario_path
        self.out_dir = out_dir
        self.speed = speed
        self.hardware = load_hardware(scenario.hardware)
        relay = self.hardware["relay"]
        self.relay_lines = {relay["drive_line"]: "drive", relay["heartbeat_line"]: "heartbeat",
                            relay["aux_line"]: "aux", relay["key_test_line"]: "key_test",
                            relay["key_operate_line"]: "key_operate"}
        self.dropout_s = relay.get("board_dropout_ms", 200) / 1000.0
        self.mast = mast
        self.world = World(scenario, mast)  # raises ValueError for a mast not in the scenario
        self.pose = self.world.pose
        self.lock = threading.RLock()
        self.board = RelayBoard(dropout_s=self.dropout_s, key=self.pose.key_switch)
        self.lines: dict[int, Line] = {}
        self.faults: dict[str, ActiveFault] = {}
        self._cli_faults = list(faults)
        self._schedule = sorted(scenario.faults, key=lambda f: f.at_s)
        self._next_fault = 0
        self.stop_event = threading.Event()
        self._conn_ids = 0
        self._threads: list[threading.Thread] = []
        out_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path = out_dir / "twin.sock"
        self.truth = Truth(out_dir / "truth.jsonl")
        self.radar_log_path = out_dir / "radar.jsonl"
        self.endpoints_path = out_dir / "endpoints.json"
        # Scenario time 0: now, or the shared sky's epoch (then the scenario is under way).
        self.sky_epoch = sky_epoch
        self.wall0 = now_wall if sky_epoch is None else sky_epoch
        self.mono0 = now_mono - (now_wall - self.wall0)
        self.radar = None
        self.sky: Any = None
        self.air: RemoteIdAir | None = None
        self.parts = None
        self._server: socketserver.ThreadingUnixStreamServer | None = None

    # -- clocks ---------------------------------------------------------------------------
    def sim_time(self, mono: float | None = None) -> float:
        return ((time.monotonic() if mono is None else mono) - self.mono0) * self.speed

    def wall_of(self, mono: float) -> float:
        return self.wall0 + (mono - self.mono0)

    def mono_of_sim(self, sim_t: float) -> float:
        return self.mono0 + sim_t / self.speed

    # -- start/stop -----------------------------------------------------------------------
    def start(self) -> None:
        from hal.sim.devices import BoardParts

        self.parts = BoardParts(self.pose.mast_heading_deg,
                                self.scenario.ambient.temperature_c, self.scenario.seed)
        radar_cfg = self.hardware.get("radar", {})
        if radar_cfg.get("model") == "ti-mmwave":
            from hal.sim.radar import RadarModel, RadarPorts

            # Radial speeds follow the daemon's clock when the scenario runs X times faster.
            self.radar_model = RadarModel(self.scenario, self.world,
                                          radar_cfg.get("boresight_azimuth_deg", 0.0),
                                          time_scale=self.speed)
            self.radar = RadarPorts(self.out_dir, self.radar_log_path)
            self.radar.plug()
            self._spawn(self._radar_loop, "sim-radar")
        elif radar_cfg:
            log.warning("sim: radar model '%s' is not simulated yet; no radar port",
                        radar_cfg.get("model"))
        if self.scenario.aircraft:
            from hal.sim.adsb import BeastSky, flights_of

            node = self.scenario.node  # the site origin, which aircraft positions are from
            self.sky = BeastSky(node.latitude_deg, node.longitude_deg,
                                flights_of(self.scenario.aircraft, node.altitude_m),
                                speed=self.speed,
                                period_s=self.scenario.duration_s if self.scenario.repeat
                                else None, mono0=self.mono0).start()
        if broadcasting(self.scenario):
            self.air = RemoteIdAir(self.scenario, self.world, self.out_dir, self.sim_time,
                                   self.stop_event)
            self._spawn(self.air.run, "sim-remoteid")
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = _Server(str(self.socket_path), _Handler)
        self._server.twin = self  # type: ignore[attr-defined]
        server = self._server
        self._spawn(lambda: server.serve_forever(poll_interval=0.05), "sim-server")
        for name in self._cli_faults:
            self.start_fault(name, None)
        self._spawn(self._tick_loop, "sim-tick")
        self._write_endpoints()
        log.info("sim: scenario '%s' on %s at %gx%s%s; socket %s", self.scenario.name,
                 self.scenario.hardware, self.speed,
                 f", mast '{self.mast}'" if self.mast else "",
                 f", sky at t={self.sim_time():.1f} s" if self.sky_epoch is not None else "",
                 self.socket_path)

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self.stop_event.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self.radar is not None:
            self.radar.close()
        if self.sky is not None:
            self.sky.stop()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self.truth.write({"t": time.time(), "sim_t": self.sim_time(), "event": "stop"})
        self.truth.close()

    def _write_endpoints(self) -> None:
        acoustic = self.hardware.get("acoustic", {})
        relay = self.hardware["relay"]
        from hal.sim.devices import PARTS

        data = {
            "pid": os.getpid(),
            "scenario": str(self.scenario_path or self.scenario.name),
            "hardware": self.scenario.hardware,
            "speed": self.speed,
            "socket": str(self.socket_path),
            "truth": str(self.out_dir / "truth.jsonl"),
            "radar_log": str(self.radar_log_path),
            "radar_data": str(self.radar.data_link) if self.radar else None,
            "radar_cli": str(self.radar.cli_link) if self.radar else None,
            "radar_frame_period_ms": self.scenario.radar.frame_period_ms / self.speed,
            "acoustic": {"geometry": acoustic.get("geometry"),
                         "channels": acoustic.get("channels"),
                         "sample_rate_hz": acoustic.get("sample_rate_hz", 48000)},
            "relay": {k: relay[k] for k in ("drive_line", "heartbeat_line", "aux_line",
                                            "key_test_line", "key_operate_line")}
            | {"board_dropout_ms": round(self.dropout_s * 1000)},
            "i2c": [p.as_config() for p in PARTS],
            # The pose of the mast this twin plays (with [[masts]]: its own place and name).
            "node": self.pose.model_dump(),
            "mast": self.mast,
            "sky_epoch": self.sky_epoch,
            # The manned aircraft's ADS-B, as a receiver's Beast port (none without aircraft).
            "adsb": f"beast://127.0.0.1:{self.sky.port}" if self.sky is not None else None,
            # The drones' Remote ID: sockets the node binds ({linktype: path}; none if none).
            "remoteid": {str(lt): str(p) for lt, p in socket_paths(self.out_dir).items()}
            if self.air is not None else None,
        }
        tmp = self.endpoints_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.endpoints_path)

    # -- relay board ----------------------------------------------------------------------
    def _record(self, transitions: list[Transition]) -> None:
        for tr in transitions:
            self.truth.write({"t": round(self.wall_of(tr.t), 6), "radiating": tr.radiating})
            log.info("sim: jammer %s", "RADIATING" if tr.radiating else "not radiating")

    def board_event(self, role: str, level: bool) -> None:
        now = time.monotonic()
        with self.lock:
            if role == "drive":
                self._record(self.board.set_drive(level, now))
            elif role == "heartbeat":
                self._record(self.board.set_heartbeat(level, now))

    def input_level(self, line: int) -> bool:
        role = self.relay_lines.get(line)
        with self.lock:
            self._record(self.board.advance(time.monotonic()))
            if role == "aux":
                return self.board.aux_closed()
            if role == "key_test":
                return self.board.key_inputs()[0]
            if role == "key_operate":
                return self.board.key_inputs()[1]
            rec = self.lines.get(line)
            return bool(rec and rec.level)

    def set_key(self, key: KeyPosition) -> None:
        with self.lock:
            self._record(self.board.set_key(key, time.monotonic()))

    # -- faults ---------------------------------------------------------------------------
    def start_fault(self, name: str, duration_s: float | None) -> None:
        if name not in FAULT_NAMES:
            raise ValueError(f"fault '{name}' unknown; choose from {list(FAULT_NAMES)}")
        now = self.sim_time()
        with self.lock:
            self.faults[name] = ActiveFault(name, None if duration_s is None else now + duration_s)
            if name == "relay-stuck":
                self._record(self.board.set_stuck(True, time.monotonic()))
            elif name == "interlock-open":
                self._record(self.board.set_key("off", time.monotonic()))
        if name == "radar-unplugged" and self.radar is not None:
            self.radar.unplug()
        self.truth.write({"t": time.time(), "sim_t": round(now, 3), "fault": name,
                          "active": True})
        log.warning("sim: fault %s started", name)

    def stop_fault(self, name: str) -> None:
        with self.lock:
            if self.faults.pop(name, None) is None:
                return
            if name == "relay-stuck":
                self._record(self.board.set_stuck(False, time.monotonic()))
            elif name == "interlock-open":
                self._record(self.board.set_key(self.pose.key_switch,
                                                time.monotonic()))
        if name == "radar-unplugged" and self.radar is not None:
            self.radar.plug()
            self._write_endpoints()
        self.truth.write({"t": time.time(), "sim_t": round(self.sim_time(), 3), "fault": name,
                          "active": False})
        log.warning("sim: fault %s ended", name)

    def fault_active(self, name: str) -> bool:
        return name in self.faults

    # -- loops ----------------------------------------------------------------------------
    def _tick_loop(self) -> None:
        next_truth = 0.0
        while not self.stop_event.is_set():
            now = time.monotonic()
            sim_t = self.sim_time(now)
            with self.lock:
                self._record(self.board.advance(now))
                due = self.board.next_change_t()
            while (self._next_fault < len(self._schedule)
                   and self._schedule[self._next_fault].at_s <= sim_t):
                fault = self._schedule[self._next_fault]
                self._next_fault += 1
                self.start_fault(fault.name, fault.duration_s)
            for name, fault in list(self.faults.items()):
                if fault.until_sim_t is not None and sim_t >= fault.until_sim_t:
                    self.stop_fault(name)
            if sim_t >= next_truth:
                self._write_positions(sim_t)
                next_truth = sim_t + self.scenario.truth_period_s
            wait = 0.01 if due is None else min(0.01, max(0.0, due - time.monotonic()))
            self.stop_event.wait(wait)

    def _write_positions(self, sim_t: float) -> None:
        wall = time.time()
        for body, pos, vel in self.world.bodies_at(sim_t):
            rng, bearing, elev = bearing_of(pos - self.world.array_enu)
            self.truth.write({
                "t": round(wall, 3), "sim_t": round(sim_t, 3), "id": body.id,
                "kind": body.target.kind, "enu_m": [round(float(v), 2) for v in pos],
                "velocity_enu_mps": [round(float(v), 2) for v in vel],
                "range_m": round(rng, 2), "bearing_deg": round(bearing, 2),
                "elevation_deg": round(elev, 2)})

    def _radar_loop(self) -> None:
        from hal.radar.ti_mmwave import encode_frame

        assert self.radar is not None
        period_sim = self.scenario.radar.frame_period_ms / 1000.0
        rng = np.random.default_rng([self.scenario.seed, 3])
        garbage = np.random.default_rng([self.scenario.seed, 4])
        # The slot the sky is in now (0, unless a shared sky's epoch is past): frames start
        # there, numbered from 1 as the module numbers them from its start.
        k0 = max(0, int(self.sim_time() // period_sim))
        k = k0
        while not self.stop_event.is_set():
            k += 1
            deadline = self.mono_of_sim(k * period_sim)
            delay = deadline - time.monotonic()
            if delay > 0 and self.stop_event.wait(delay):
                return
            if not self.radar.plugged:
                continue
            # Like the module, capture on schedule and number frames by their slot; only the
            # bytes are late when this thread is (what the daemon's FrameClock undoes).
            sim_t = k * period_sim
            points = self.radar_model.frame(sim_t, rng)
            number = k - k0
            packet = encode_frame(number, points, t_cpu_cycles=int(sim_t * 200e6))
            intact = True
            if self.fault_active("radar-wrong-baud"):
                from hal.sim.radar import misread_at_baud

                baud = self.hardware["radar"].get("data_baud", 921600)
                packet, intact = misread_at_baud(packet, baud / WRONG_BAUD), False
            elif self.fault_active("radar-garbage"):
                # Noise on the line: junk between frames, and some frames with flipped bits.
                junk = garbage.integers(0, 256, int(garbage.integers(1, 200)), dtype=np.uint8)
                self.radar.send(-1, junk.tobytes(), {})
                if garbage.random() < 0.3:
                    buf = bytearray(packet)
                    for _ in range(3):
                        buf[int(garbage.integers(0, len(buf)))] ^= 1 << int(
                            garbage.integers(0, 8))
                    packet, intact = bytes(buf), False
            record = {"frame": number, "t": round(time.time(), 6), "sim_t": round(sim_t, 4),
                      "intact": intact, "points": points.astype(float).tolist()}
            self.radar.send(number, packet, record)

    # -- audio ----------------------------------------------------------------------------
    def mic_geometry(self) -> np.ndarray:
        from hal.acoustic import load_geometry

        return load_geometry(self.hardware["acoustic"]["geometry"]).positions_m

    def stream_audio(self, conn: LineSocket, channels: int, fs: int, block: int,
                     conn_id: int) -> None:
        from hal.sim.audio import ArrayRenderer

        renderer = ArrayRenderer(self.scenario, self.world, self.mic_geometry(), fs,
                                 seed=conn_id)
        t_start = self.sim_time()
        block_s = block / fs
        k = 0
        index = 0
        while not self.stop_event.is_set():
            t0 = t_start + k * block_s
            deadline = self.mono_of_sim(t0 + block_s)
            delay = deadline - time.monotonic()
            if delay > 0 and self.stop_event.wait(delay):
                return
            behind = int((self.sim_time() - (t0 + block_s)) / block_s)
            if behind > 4:
                # Rendering cannot keep up (a high --speed): skip ahead, as an overrun would.
                k += behind
                index += behind
                continue
            pcm = renderer.render(t0, block)
            if self.fault_active("mic-clipping"):
                pcm = np.clip(pcm * CLIPPING_GAIN, -1.0, 1.0).astype(np.float32)
            if self.fault_active("mic-swapped"):
                a, b = SWAPPED_CHANNELS
                pcm[:, [a, b]] = pcm[:, [b, a]]
            if self.fault_active("mic-channel-dead"):
                pcm[:, DEAD_CHANNEL] = 0.0
            k += 1
            if self.fault_active("mic-dead"):
                index += 1
                continue
            header = {"index": index, "t": round(self.wall0 + t0 / self.speed, 6),
                      "frames": block, "channels": channels,
                      "bytes": block * channels * 4}
            conn.send(header, np.ascontiguousarray(pcm, dtype="<f4").tobytes())
            index += 1

    # -- requests -------------------------------------------------------------------------
    def new_conn(self) -> Conn:
        with self.lock:
            self._conn_ids += 1
            return Conn(self._conn_ids)

    def disconnected(self, conn: Conn) -> None:
        with self.lock:
            for line in conn.lines:
                rec = self.lines.get(line)
                if rec is not None and rec.owner == conn.id:
                    # A Pi's GPIO output keeps its level when the process dies.
                    rec.owner = None
        if conn.kind in ("gpio", "audio", "i2c", "system"):
            self.truth.write({"t": time.time(), "sim_t": round(self.sim_time(), 3),
                              "client": conn.kind, "name": conn.name, "connected": False})
            log.info("sim: %s client '%s' disconnected", conn.kind, conn.name)

    def handle(self, conn: Conn, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        if op == "hello":
            conn.kind, conn.name = str(req.get("kind", "")), str(req.get("name", ""))
            if conn.kind in ("gpio", "audio", "i2c", "system"):
                self.truth.write({"t": time.time(), "sim_t": round(self.sim_time(), 3),
                                  "client": conn.kind, "name": conn.name, "connected": True})
            return {"ok": True, "scenario": self.scenario.name, "speed": self.speed}
        if isinstance(op, str) and op.startswith("gpio."):
            return self._gpio(conn, op, req)
        if isinstance(op, str) and op.startswith("i2c."):
            return self._i2c(req)
        if op == "system.read":
            assert self.parts is not None
            return {"ok": True, "cpu_temp_c": self.parts.cpu_temp_c(self.sim_time()),
                    "throttled": 0, "clock_synced": True}
        if op == "fault.start":
            self.start_fault(str(req.get("name")), req.get("duration_s"))
            return {"ok": True}
        if op == "fault.stop":
            self.stop_fault(str(req.get("name")))
            return {"ok": True}
        if op == "key":
            position = req.get("position")
            if position not in ("off", "test", "operate"):
                return {"ok": False, "error": f"key position {position!r}: off|test|operate"}
            self.set_key(position)  # type: ignore[arg-type]
            return {"ok": True}
        if op == "status":
            now = time.monotonic()
            with self.lock:
                self._record(self.board.advance(now))
                b = self.board
                return {"ok": True, "sim_t": self.sim_time(now), "radiating": b.radiating(now),
                        "drive": b.drive, "relay_closed": b.relay_closed(),
                        "contactor_closed": b.contactor_closed(now), "key": b.key,
                        "faults": sorted(self.faults)}
        if op == "stop":
            threading.Thread(target=self.stop_event.set, daemon=True).start()
            return {"ok": True}
        return {"ok": False, "error": f"unknown op {op!r}"}

    def _gpio(self, conn: Conn, op: str, req: dict[str, Any]) -> dict[str, Any]:
        try:
            line = int(req["line"])
        except (KeyError, TypeError, ValueError):
            return {"ok": False, "error": f"{op}: needs an integer 'line'"}
        role = self.relay_lines.get(line)
        with self.lock:
            rec = self.lines.get(line)
            if op in ("gpio.output", "gpio.input"):
                if rec is not None and rec.owner is not None and rec.owner != conn.id:
                    return {"ok": False, "error": f"line {line} is already held by '{rec.name}'"}
                direction = "out" if op == "gpio.output" else "in"
                if (role in ("drive", "heartbeat") and direction != "out") or \
                        (role in ("aux", "key_test", "key_operate") and direction != "in"):
                    return {"ok": False, "error": f"line {line} is the board's {role} "
                            f"line; it cannot be an {direction}put"}
                level = bool(req.get("initial", False)) if direction == "out" else False
                self.lines[line] = Line(str(req.get("name", "")), direction, level, conn.id)
                conn.lines.add(line)
                if direction == "out" and role:
                    self.board_event(role, level)
                return {"ok": True}
            if rec is None or rec.owner != conn.id:
                return {"ok": False, "error": f"line {line} is not reserved by this client"}
            if op == "gpio.set":
                if rec.direction != "out":
                    return {"ok": False, "error": f"line {line} is an input"}
                rec.level = bool(req.get("level"))
                if role:
                    self.board_event(role, rec.level)
                return {"ok": True}
            if op == "gpio.get":
                level = rec.level if rec.direction == "out" else self.input_level(line)
                return {"ok": True, "level": level}
            if op == "gpio.release":
                rec.owner = None
                conn.lines.discard(line)
                if rec.direction == "out" and rec.level:
                    # A released output goes back to input; the board's pull-down wins.
                    rec.level = False
                    if role:
                        self.board_event(role, False)
                return {"ok": True}
        return {"ok": False, "error": f"unknown op {op!r}"}

    def _i2c(self, req: dict[str, Any]) -> dict[str, Any]:
        from hal.ports.i2c.fake import Nack

        assert self.parts is not None
        bus, address = int(req.get("bus", -1)), int(req.get("address", -1))
        if self.fault_active("i2c-missing"):
            return {"ok": False, "error": "nack: nothing answers (i2c-missing)"}
        device = self.parts.devices.get((bus, address))
        if device is None:
            return {"ok": False, "error": "nack: nothing answers at this address"}
        now = time.monotonic()
        with self.lock:
            self._record(self.board.advance(now))
            powered = self.board.relay_closed(now) and self.board.contactor_closed(now)
            try:
                self.parts.heading_error_deg = (COMPASS_OFF_DEG
                                                if self.fault_active("compass-off-heading")
                                                else 0.0)
                self.parts.update(powered=powered, key=self.board.key, sim_t=self.sim_time(now))
                op = req["op"]
                if op == "i2c.read":
                    return {"ok": True, "data": list(device.read(int(req["register"]),
                                                                 int(req["length"])))}
                if op == "i2c.write":
                    device.write(int(req["register"]), bytes(req["data"]))
                    return {"ok": True}
                if op == "i2c.transfer":
                    return {"ok": True, "data": list(device.transfer(bytes(req["data"]),
                                                                     int(req["length"])))}
            except Nack as exc:
                return {"ok": False, "error": f"nack: {exc}"}
            except (KeyError, TypeError, ValueError) as exc:
                return {"ok": False, "error": f"{req.get('op')}: bad request ({exc})"}
        return {"ok": False, "error": f"unknown op {req.get('op')!r}"}


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        twin: Twin = self.server.twin  # type: ignore[attr-defined]
        sock: socket.socket = self.request
        conn = LineSocket(sock)
        state = twin.new_conn()
        try:
            while not twin.stop_event.is_set():
                req = conn.recv_line()
                if req is None:
                    return
                if req.get("op") == "audio.open":
                    self._audio(twin, conn, state, req)
                    return
                try:
                    answer = twin.handle(state, req)
                except ValueError as exc:
                    answer = {"ok": False, "error": str(exc)}
                conn.send(answer)
        except (OSError, ValueError) as exc:
            log.debug("sim: connection %d ended: %s", state.id, exc)
        finally:
            twin.disconnected(state)

    @staticmethod
    def _audio(twin: Twin, conn: LineSocket, state: Conn, req: dict[str, Any]) -> None:
        acoustic = twin.hardware.get("acoustic")
        if not acoustic:
            conn.send({"ok": False, "error": f"hardware '{twin.scenario.hardware}' has no "
                       "microphone array"})
            return
        mics = len(twin.mic_geometry())
        channels, fs = int(req.get("channels", 0)), int(req.get("sample_rate_hz", 0))
        block = int(req.get("block_frames", 0))
        if channels != mics or fs < 8000 or block < 16:
            conn.send({"ok": False, "error": f"array '{acoustic['geometry']}' has {mics} "
                       f"microphones; asked for {channels} channels at {fs} Hz in blocks of "
                       f"{block}"})
            return
        conn.send({"ok": True})
        twin.stream_audio(conn, channels, fs, block, state.id)
