"""`edgenode eval --truth/--run`: the daemon scored against the digital twin's ground truth.

The scoring is edgenode.detect.score (pure); this module does the I/O around it:
- `--truth FILE --events FILE`: a truth.jsonl the twin wrote and the daemon's track events as
  JSON lines (the MQTT payloads of `edgenode/<site>/<node>/events`, as `--run` saves them).
- `--run SCENARIO`: runs `edgenode run --sim SCENARIO` for the scenario's duration (or
  `--seconds`) at `--speed`, against `--broker` or a private Mosquitto on a free loopback port,
  collects the events from MQTT, and scores them; truth, events and the daemon's log stay in
  `--out` for a second look.
Times in the table are scenario seconds (wall seconds times the speed), and false tracks are
counted per scenario hour, so runs at different speeds compare.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgenode.detect.score import (
    Score,
    format_table,
    reports_from_events,
    score_run,
    truth_samples,
)

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 60.0


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """Every JSON object of a JSON-lines file; a torn last line (a writer killed mid-line)
    is skipped, not an error."""
    out = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError:
                log.warning("eval: %s line %d is not JSON; skipped", path, number)
                continue
            if isinstance(item, dict):
                out.append(item)
    return out


def speed_of(truth_path: Path) -> float:
    """The twin's --speed from the endpoints.json beside a truth file (1 when absent)."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return float(json.loads((truth_path.parent / "endpoints.json").read_text())["speed"])
    return 1.0


def score_files(truth_path: Path, events_path: Path, *, speed: float | None = None,
                t_start: float | None = None, t_end: float | None = None,
                gate_deg: float = 10.0) -> Score:
    truth = read_json_lines(truth_path)
    events = read_json_lines(events_path)
    if t_start is None or t_end is None:
        # The run's span: every truth record carries the wall time it was written at.
        times = [float(r["t"]) for r in truth if isinstance(r.get("t"), int | float)]
        if times:
            t_start = min(times) if t_start is None else t_start
            t_end = max(times) if t_end is None else t_end
    return score_run(truth_samples(truth), reports_from_events(events), gate_deg=gate_deg,
                     t_start=t_start, t_end=t_end,
                     time_scale=speed if speed is not None else speed_of(truth_path))


# ---------------------------------------------------------------- --run

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def private_broker(workdir: Path) -> Iterator[str]:
    """A Mosquitto of our own on a free loopback port (Debian may run one on 1883)."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(binary):
        raise RuntimeError("eval: mosquitto is not installed; give --broker URL")
    port = _free_port()
    conf = workdir / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false"]
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    with (workdir / "mosquitto.log").open("ab") as out:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"eval: mosquitto did not start; see "
                                       f"{workdir / 'mosquitto.log'}") from None
                time.sleep(0.05)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class EventCollector:
    """Track events from MQTT, saved as JSON lines as they arrive."""

    def __init__(self, broker_url: str, path: Path):
        from edgenode.link.mqtt import BrokerOptions, MqttClient

        self.path = path
        self._fh = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self.count = 0
        self.client = MqttClient(BrokerOptions(url=broker_url,
                                               client_id=f"edgenode-eval-{os.getpid()}"))
        self.client.subscribe("edgenode/+/+/events", self._on_message)

    def _on_message(self, message: Any) -> None:
        try:
            payload = json.loads(message.payload)
        except ValueError:
            return
        with self._lock:
            if self._fh.closed:
                return
            self._fh.write(json.dumps(payload, separators=(",", ":")) + "\n")
            self._fh.flush()
            self.count += 1

    def start(self, timeout_s: float = 10.0) -> None:
        self.client.start()
        if not self.client.connected.wait(timeout_s):
            raise RuntimeError(f"eval: cannot reach the broker {self.client.broker}: "
                               f"{self.client.last_error or 'no answer'}")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.client.stop()
        with self._lock:
            self._fh.close()


def _daemon_ready(state: Path, proc: subprocess.Popen[bytes]) -> float:
    """Wall time when the daemon first answered on its control socket."""
    from edgenode.daemon.control_socket import request

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        with contextlib.suppress(OSError):
            if request(state / "control.sock", {"cmd": "status"}).get("ok"):
                return time.time()
        if proc.poll() is not None:
            raise RuntimeError(f"eval: the daemon exited with {proc.returncode}; see "
                               f"{state / 'daemon.log'}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"eval: the daemon did not answer within {STARTUP_TIMEOUT_S} s")
        time.sleep(0.2)


def run_twin(scenario: str, out: Path, *, speed: float, seconds: float | None,
             broker: str | None, gate_deg: float = 10.0, second_drone: bool = False) -> Score:
    """Run the daemon on the twin, collect its events and score them (`second_drone`: with
    the acoustic second-drone path on)."""
    from hal.sim.scenario import load_scenario

    duration = seconds if seconds is not None else load_scenario(scenario).duration_s
    out.mkdir(parents=True, exist_ok=True)
    state = out / "state"
    events_path = out / "events.jsonl"
    events_path.unlink(missing_ok=True)
    with contextlib.ExitStack() as stack:
        url = broker or stack.enter_context(private_broker(out))
        collector = EventCollector(url, events_path)
        collector.start()
        stack.callback(collector.stop)
        env = dict(os.environ)
        env.pop("STATE_DIRECTORY", None)
        with (out / "daemon.log").open("ab") as daemon_log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "edgenode", "run", "--sim", scenario, "--broker", url,
                 "--state-dir", str(state), "--speed", repr(speed)]
                + (["--second-drone"] if second_drone else []),
                stdout=daemon_log, stderr=subprocess.STDOUT, env=env)
        try:
            t_start = _daemon_ready(state, proc)
            log.info("eval: daemon on '%s' at %gx; scoring %.0f s of scenario (%.1f s)",
                     scenario, speed, duration, duration / speed)
            time.sleep(duration / speed)
            t_end = time.time()
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        time.sleep(0.3)  # the last events in flight
    truth_path = state / "sim" / "truth.jsonl"
    shutil.copy(truth_path, out / "truth.jsonl")
    log.info("eval: %d events in %s, truth in %s", collector.count, events_path,
             out / "truth.jsonl")
    return score_files(truth_path, events_path, speed=speed, t_start=t_start, t_end=t_end,
                       gate_deg=gate_deg)


def cmd_eval_twin(args: argparse.Namespace) -> int:
    try:
        if args.run is not None:
            out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="edgenode-eval-"))
            score = run_twin(args.run, out, speed=args.speed or 1.0, seconds=args.seconds,
                             broker=args.broker, gate_deg=args.gate_deg,
                             second_drone=args.second_drone)
        else:
            if args.events is None:
                log.error("eval: --truth needs --events FILE (the daemon's track events)")
                return 2
            score = score_files(Path(args.truth), Path(args.events), speed=args.speed,
                                gate_deg=args.gate_deg)
    except (OSError, RuntimeError) as exc:
        log.error("%s", exc)
        return 1
    if args.json:
        print(json.dumps(score.as_dict()))
    else:
        print(format_table(score))
    return 0
