"""The status page as a companion process: `edgenode status-page`, a child of the daemon (so in
the same systemd unit and cgroup), restarted with backoff when it dies, ended at stop. A
process of its own so that serving browsers never takes the detection loop's interpreter."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)
RESTART_MIN_S, RESTART_MAX_S = 1.0, 60.0


class StatusPageProcess:
    name = "status-page"

    def __init__(self, config_path: Path, state_dir: Path) -> None:
        self._argv = [sys.executable, "-m", "edgenode", "status-page", "--config",
                      str(config_path), "--state-dir", str(state_dir)]
        self._proc: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="status-page", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _supervise(self) -> None:
        backoff = RESTART_MIN_S
        while not self._stop.is_set():
            self._proc = subprocess.Popen(self._argv, stdin=subprocess.DEVNULL)
            code = self._proc.wait()
            if self._stop.is_set():
                return
            log.error("status page: exited with %s; restarting in %.0f s", code, backoff)
            self._stop.wait(backoff)
            backoff = min(backoff * 2, RESTART_MAX_S)

    def stop(self) -> None:
        self._stop.set()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._thread.join(timeout=2)
