"""`edgenode eval --run SCENARIO --second-drone` starts the daemon with the acoustic
second-drone path on (run --sim --second-drone), and without the flag, off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edgenode.cli import eval_twin


class _Started(Exception):
    pass


@pytest.mark.parametrize("second_drone", [False, True])
def test_eval_run_passes_the_second_drone_switch_to_the_daemon(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, second_drone: bool) -> None:
    started: list[list[str]] = []

    class Collector:
        def __init__(self, *_: Any) -> None:
            pass

        def start(self) -> None:
            pass

        def stop(self) -> None:
            pass

    def popen(args: list[str], **_: Any) -> None:
        started.append(args)
        raise _Started

    monkeypatch.setattr(eval_twin, "EventCollector", Collector)
    monkeypatch.setattr(eval_twin.subprocess, "Popen", popen)
    with pytest.raises(_Started):
        eval_twin.run_twin("two-drones-near-far", tmp_path, speed=1.0, seconds=1.0,
                           broker="mqtt://127.0.0.1:1", second_drone=second_drone)
    assert ("--second-drone" in started[0]) is second_drone
