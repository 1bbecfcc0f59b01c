"""Pieces of the self-test without a daemon: the periodic runner into health, the wrong-baud
line of the twin, the report's exit code and summary."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edgenode.health import Health
from edgenode.selftest import FAIL, PASS, WARN, Periodic, check, exit_code, summary
from edgenode.selftest.result import make_report
from hal.radar.ti_mmwave import TiMmwaveParser, encode_frame
from hal.sim.radar import misread_at_baud


def _report(*results: str) -> dict[str, Any]:
    checks = [check("radar", f"radar.c{i}", r, hint="" if r == PASS else f"fix {i}")
              for i, r in enumerate(results)]
    return make_report(checks, mode="daemon", window_s=2.0, duration_s=2.1)


def test_periodic_runs_at_start_up_and_again_and_a_fail_degrades_health() -> None:
    reports = [_report(PASS, WARN), _report(FAIL), _report(PASS)]
    health = Health()
    runner = Periodic(lambda: reports[min(runner.runs, 2)], health, first_after_s=0.05,
                      period_s=0.2)
    seen: list[tuple[str, str]] = []
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while runner.runs < 3 and time.monotonic() < deadline:
            state = health.snapshot()["selftest"]
            seen.append((str(state["state"]), str(state["reason"])))
            time.sleep(0.01)
    finally:
        runner.stop()
    assert ("ok", "WARN radar.c1") in seen
    assert ("degraded", "FAIL radar.c0") in seen
    assert health.snapshot()["selftest"]["state"] == "ok"
    assert health.late_stages() == []  # never holds back the watchdog


def test_a_self_test_that_cannot_run_degrades_health_and_the_runner_goes_on() -> None:
    health = Health()

    def broken() -> dict[str, Any]:
        raise RuntimeError("no stages")

    runner = Periodic(broken, health, first_after_s=0.01, period_s=0.05)
    runner.start()
    time.sleep(0.3)
    runner.stop()
    state = health.snapshot()["selftest"]
    assert state["state"] == "degraded" and "could not run: no stages" in str(state["reason"])


def test_exit_code_and_summary() -> None:
    assert exit_code(_report(PASS, WARN)) == 0
    assert exit_code(_report(PASS, FAIL)) == 1
    assert summary(_report(PASS, WARN, FAIL)) == \
        "1 passed, 1 warned, 1 failed, 0 skipped | WARN radar.c1: fix 1 | FAIL radar.c2: fix 2"


def test_a_uart_eight_times_too_fast_reads_no_frame() -> None:
    packet = encode_frame(7, np.zeros((4, 6), np.float32), t_cpu_cycles=0)
    assert misread_at_baud(packet, 1.0) == packet  # the right rate reads what was sent
    wrong = misread_at_baud(packet * 20, 921600 / 115200)
    parser = TiMmwaveParser()
    assert parser.feed(wrong) == [] and parser.frames == 0
    assert len(wrong) > 5 * len(packet) * 20  # many more bytes than were sent
    assert parser.bytes_skipped > 0.99 * len(wrong)
