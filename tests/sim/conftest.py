"""A running twin (`edgenode simulate` as a real subprocess) for the sim tests."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EDGENODE, terminate


class TwinProcess:
    def __init__(self, out: Path, proc: subprocess.Popen[bytes], log_path: Path):
        self.out, self.proc, self.log_path = out, proc, log_path
        self.endpoints: dict[str, Any] = json.loads((out / "endpoints.json").read_text())
        self.socket = self.endpoints["socket"]

    def truth(self) -> list[dict[str, Any]]:
        path = self.out / "truth.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines if line.endswith("}")]

    def radiating_changes(self) -> list[dict[str, Any]]:
        return [r for r in self.truth() if "radiating" in r]

    def wait_truth(self, predicate: Callable[[dict[str, Any]], bool],
                   timeout_s: float = 5.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for record in self.truth():
                if predicate(record):
                    return record
            time.sleep(0.02)
        raise AssertionError(f"no truth record matched within {timeout_s} s; "
                             f"truth: {self.truth()[-10:]}")

    def stop(self) -> None:
        terminate(self.proc)


def start_twin(out: Path, scenario: str | Path, *extra: str) -> TwinProcess:
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "twin.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen([*EDGENODE, "simulate", "--scenario", str(scenario),
                                 "--out", str(out), *extra],
                                stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while not (out / "endpoints.json").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
            raise RuntimeError(f"twin did not start: {log_path.read_text()[-2000:]}")
        time.sleep(0.05)
    return TwinProcess(out, proc, log_path)


@pytest.fixture
def twin_factory(tmp_path: Path) -> Iterator[Callable[..., TwinProcess]]:
    started: list[TwinProcess] = []

    def factory(scenario: str | Path = "empty-sky", *extra: str,
                name: str = "sim") -> TwinProcess:
        twin = start_twin(tmp_path / name, scenario, *extra)
        started.append(twin)
        return twin

    yield factory
    for twin in started:
        twin.stop()


def write_scenario(path: Path, body: str, *, hardware: str = "pi5-iwr6843-uma16") -> Path:
    path.write_text(f'name = "{path.stem}"\nhardware = "{hardware}"\n{body}')
    return path
