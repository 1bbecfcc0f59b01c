"""`edgenode selftest` as a technician runs it (exit codes, --json, --part), and the signed
`selftest` command from the control room over a real broker with the retained report."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from edgenode.daemon.control_socket import request
from tests.conftest import EDGENODE, ROOT, Mosquitto
from tests.link.helpers import Recorder
from tests.selftest.conftest import wait_first_selftest
from tests.simdaemon import SIM_NODE, SIM_SITE, SimDaemon, ctl


def _selftest(state: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*EDGENODE, "selftest", "--state-dir", str(state), *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _done(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


@pytest.mark.long  # make test budget: three self-test runs on the twin
def test_exit_codes_json_and_one_part(twin_daemon: SimDaemon, tmp_path: Path) -> None:
    wait_first_selftest(twin_daemon)
    # Started together: each command pays the interpreter's start-up, not the others'.
    procs = {"text": _selftest(twin_daemon.state, "--part", "radar", "--part", "relay"),
             "nodaemon": _selftest(tmp_path)}
    results = {name: _done(proc) for name, proc in procs.items()}
    code, out, err = results["text"]
    assert code == 0, out + err
    assert "PASS  radar.port" in out and "PASS  relay.key" in out and "acoustic" not in out
    assert "SKIP  radar.config" in out and "-> no chirp upload configured" in out
    code, out, err = results["nodaemon"]
    assert code == 2 and "no daemon answers" in err, err
    # A part the node does not have: the daemon says which it has (the command exits 2).
    answer = request(twin_daemon.state / "control.sock",
                     {"cmd": "selftest", "parts": ["flux-capacitor"]})
    assert not answer["ok"] and "flux-capacitor" in answer["error"], answer
    assert "i2c:compass" in answer["error"]

    twin_daemon.twin("fault.start", name="i2c-missing")
    try:
        time.sleep(1.5)
        code, out, err = _done(_selftest(twin_daemon.state, "--json", "--part", "i2c:compass"))
    finally:
        twin_daemon.twin("fault.stop", name="i2c-missing")
    assert code == 1, out + err
    report = json.loads(out)
    assert report["report_version"] == 2 and report["parts"] == ["i2c:compass"]
    assert not report["ok"] and report["result"] == "FAIL"
    answer_check = next(c for c in report["checks"] if c["name"] == "i2c:compass.answer")
    assert answer_check["result"] == "FAIL"
    assert "qmc5883l 'compass' does not answer at bus 1 0x0d" in answer_check["hint"]
    assert {c["part"] for c in report["checks"]} == {"i2c:compass"}


def test_remote_selftest_answers_with_the_summary_and_publishes_the_report(
        twin_daemon: SimDaemon, shared_broker: Mosquitto) -> None:
    wait_first_selftest(twin_daemon)
    recorder = Recorder(shared_broker.port, topic=f"edgenode/{SIM_SITE}/{SIM_NODE}/selftest")
    recorder.start()
    try:
        assert recorder.wait_for(lambda: recorder.messages)  # retained: the start-up report
        before = len(recorder.messages)
        remote = ctl(twin_daemon, shared_broker, "selftest", discover=False)
        assert remote.returncode == 0, remote.stdout + remote.stderr
        assert "passed, 0 warned, 0 failed" in remote.stdout, remote.stdout
        assert recorder.wait_for(lambda: len(recorder.messages) > before)
    finally:
        recorder.stop()
    assert recorder.problems == []  # every report matched the selftest schema
    report = recorder.messages[-1].payload
    assert report["ok"] and report["report_version"] == 2 and report["mode"] == "daemon"
    assert {c["part"] for c in report["checks"]} >= {"radar", "acoustic", "relay", "broker"}
