"""The daemon on the twin, shared by the self-test tests (one start for the session)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Mosquitto
from tests.simdaemon import SimDaemon


def selftest(daemon: SimDaemon, *parts: str) -> dict[str, Any]:
    """The self-test over the daemon's control socket (what `edgenode selftest` asks)."""
    message: dict[str, Any] = {"cmd": "selftest"}
    if parts:
        message["parts"] = list(parts)
    from edgenode.daemon.control_socket import request

    answer = request(daemon.state / "control.sock", message, timeout_s=60)
    assert answer["ok"], answer
    return answer["report"]


def not_passing(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"] if c["result"] in ("WARN", "FAIL")}


def wait_first_selftest(daemon: SimDaemon, timeout_s: float = 30) -> dict[str, Any]:
    """The daemon's status once its start-up self-test has run."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = daemon.status()
        part = status["stages"].get("selftest", {})
        if "first self-test" not in part.get("reason", "first self-test"):
            return status
        assert time.monotonic() < deadline, f"no start-up self-test; log:\n{daemon.log_text()}"
        time.sleep(0.5)


# Package scope: the daemon and its twin (audio rendered in real time) stop after the last
# self-test file instead of running on, unused, to the end of the session.
@pytest.fixture(scope="package")
def twin_daemon(tmp_path_factory: pytest.TempPathFactory,
                shared_broker: Mosquitto) -> Iterator[SimDaemon]:
    """`edgenode run --sim one-drone-crossing`, faults injected at run time."""
    state: Path = tmp_path_factory.mktemp("selftest") / "state"
    daemon = SimDaemon("one-drone-crossing", state, shared_broker)
    try:
        daemon.status(timeout_s=60)  # a shared machine under load starts it slowly
        yield daemon
    finally:
        daemon.stop()
