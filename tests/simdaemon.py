"""The real daemon and the digital twin as subprocesses, for the end-to-end tests.

- `SimDaemon`: `edgenode run --sim` (the daemon starts its own twin), or `edgenode run
  --config` against a `SimTwin` the test owns (a twin that outlives daemon restarts, as a
  relay board outlives a crashed Pi process).
- `SimTwin`: `edgenode simulate` started through `prepare_sim_run`, with the node config
  derived from it, its run-time control socket and its truth file.
- `ctl`/`engage`: the operator's tool, `edgenode ctl`, as a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from edgenode.daemon.control_socket import request
from hal.sim import protocol
from tests.conftest import EDGENODE, ROOT, Mosquitto

SIM_SITE, SIM_NODE = "sim", "twin-01"  # what edgenode/cli/sim.py's sim_config names the node


def read_truth(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class SimDaemon:
    """The daemon as a real subprocess, with its control socket and the twin's truth file."""

    def __init__(self, scenario: str | Path | None, state: Path, broker: Mosquitto, *args: str,
                 config: Path | None = None, env: dict[str, str] | None = None,
                 log_path: Path | None = None, sim_dir: Path | None = None):
        self.state = state
        self.sim_dir = sim_dir or state / "sim"  # the twin's truth, endpoints and socket
        self.broker = broker
        environ = dict(os.environ, EDGENODE_ALLOW_FAULTS="1", **(env or {}))
        environ.pop("STATE_DIRECTORY", None)
        self.log_path = log_path or state.parent / f"{state.name}.log"
        self.log = self.log_path.open("a")
        if config is None:
            argv = ["run", "--sim", str(scenario), "--broker", broker.url]
        else:
            argv = ["run", "--config", str(config)]
        self.proc = subprocess.Popen([*EDGENODE, *argv, "--state-dir", str(state), *args],
                                     cwd=ROOT, env=environ, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def status(self, timeout_s: float = 30) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return request(self.state / "control.sock", {"cmd": "status"})
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise AssertionError(f"daemon not answering; log:\n{self.log_text()}") from None
                time.sleep(0.2)

    def control(self, message: dict[str, Any]) -> dict[str, Any]:
        return request(self.state / "control.sock", message)

    def log_text(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text()[-4000:]

    def truth(self) -> list[dict]:
        return read_truth(self.sim_dir / "truth.jsonl")

    def twin(self, op: str, **fields: Any) -> dict[str, Any]:
        """A run-time request to the twin (key switch, faults, board status)."""
        endpoints = json.loads((self.sim_dir / "endpoints.json").read_text())
        return protocol.control(endpoints["socket"], op, **fields)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


class SimTwin:
    """`edgenode simulate` owned by the test (it stops a few seconds after the test process),
    and the node config derived from it, as `edgenode run --sim` would write it."""

    def __init__(self, scenario: str, state: Path, broker: Mosquitto, *,
                 faults: tuple[str, ...] = (), extra: dict[str, dict[str, Any]] | None = None):
        """`extra`: config sections added to the node config (e.g. {"status_page": {...}})."""
        from edgenode.cli.sim import prepare_sim_run

        self.state = state
        self.broker = broker
        self.config, self.proc = prepare_sim_run(Path(scenario), state, broker.url, 1.0,
                                                 list(faults), extra_sections=extra)
        self.endpoints = json.loads((state / "sim" / "endpoints.json").read_text())

    def control(self, op: str, **fields: Any) -> dict[str, Any]:
        return protocol.control(self.endpoints["socket"], op, **fields)

    def truth(self) -> list[dict]:
        return read_truth(Path(self.endpoints["truth"]))

    def daemon(self, *args: str, config: Path | None = None, log_name: str = "daemon",
               state: Path | None = None) -> SimDaemon:
        """The daemon on this twin, in `state` (default: the twin's state directory; the same
        directory again is a restart). A new directory gets the demo operator key."""
        state = state or self.state
        if state != self.state and not (state / "operator.key").exists():
            state.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.state / "operator.key", state / "operator.key")
        return SimDaemon(None, state, self.broker, *args, config=config or self.config,
                         log_path=self.state.parent / f"{log_name}.log",
                         sim_dir=self.state / "sim")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def radiating_changes(source: SimDaemon | SimTwin) -> list[tuple[float, bool]]:
    return [(r["t"], r["radiating"]) for r in source.truth() if "radiating" in r]


def ctl(daemon: SimDaemon, broker: Mosquitto, *args: str, key: str = "operator.key",
        discover: bool = True) -> subprocess.CompletedProcess[str]:
    """`edgenode ctl` with a demo key from the daemon's state directory. discover=False names
    the sim node (--site/--node) instead of finding the one node online (saves ~1.5 s)."""
    target = [] if discover else ["--site", SIM_SITE, "--node", SIM_NODE]
    return subprocess.run([*EDGENODE, "ctl", "--broker", broker.url, "--key",
                           str(daemon.state / key), *target, *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)


def wait_radiating(source: SimDaemon | SimTwin, after: float, timeout_s: float = 5) -> float:
    """The wall time the twin's jammer started radiating (after `after`)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        on = [t for t, radiating in radiating_changes(source) if radiating and t > after]
        if on:
            return on[-1]
        time.sleep(0.02)
    log = source.log_text() if isinstance(source, SimDaemon) else ""
    raise AssertionError(f"the twin's jammer never radiated; log:\n{log}")


def engage(daemon: SimDaemon, broker: Mosquitto, duration_s: float = 30, *,
           arm: bool = True, discover: bool = True) -> float:
    """(Arm and) engage through the operator tool; return when the twin radiates."""
    daemon.status()
    started = time.time()
    steps = [("arm", ["arm", "--ttl", "60"])] if arm else []
    steps.append(("engage", ["engage", "--duration", f"{duration_s:g}", "--bearing", "90"]))
    for name, args in steps:
        proc = ctl(daemon, broker, *args, discover=discover)
        assert proc.returncode == 0, f"ctl {name}: {proc.stdout}{proc.stderr}"
    return wait_radiating(daemon, started)
