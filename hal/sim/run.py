"""Run the twin in the foreground until told to stop, its parent dies, or a signal comes."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

from hal.sim.scenario import load_scenario, resolve_scenario
from hal.sim.twin import Twin

log = logging.getLogger(__name__)


def run_twin(scenario: str | Path, out_dir: Path, *, speed: float = 1.0,
             faults: list[str] | tuple[str, ...] = (), with_parent: bool = False,
             linger_s: float = 3.0, mast: str | None = None,
             sky_epoch: float | None = None) -> int:
    """Serve until SIGTERM, a `stop` request, or (with_parent) the parent process dying.

    With `with_parent` the twin belongs to the daemon that started it: SIGINT (a Ctrl-C to
    the whole process group) is left to the daemon, and when the daemon is gone the twin
    lingers `linger_s` so the truth records what the relay board does after it.
    """
    # Read before the slow set-up: a parent that dies meanwhile must still be noticed (an
    # orphan's parent is 1, never the parent it was started by).
    parent = os.getppid()
    path = resolve_scenario(scenario)
    twin = Twin(load_scenario(path), out_dir, speed=speed, faults=list(faults),
                scenario_path=path, mast=mast, sky_epoch=sky_epoch)
    signal.signal(signal.SIGTERM, lambda *_: twin.stop_event.set())
    if with_parent:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    else:
        signal.signal(signal.SIGINT, lambda *_: twin.stop_event.set())
    twin.start()
    try:
        while not twin.stop_event.wait(0.1):
            if with_parent and (os.getppid() != parent or parent == 1):
                log.info("sim: parent %d is gone; recording the board for %.1f s more",
                         parent, linger_s)
                deadline = time.monotonic() + linger_s
                while time.monotonic() < deadline and not twin.stop_event.wait(0.05):
                    pass
                break
    finally:
        twin.stop()
    return 0
