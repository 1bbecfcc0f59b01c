"""The daemon as systemd runs it: a real subprocess, a real NOTIFY_SOCKET, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgenode.daemon.control_socket import request
from tests.conftest import EDGENODE, ROOT


class NotifyListener:
    """What systemd would receive from the daemon on $NOTIFY_SOCKET."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[tuple[float, str]] = []

    def collect(self, seconds: float) -> list[str]:
        """Receive for `seconds`; return the messages that arrived meanwhile."""
        end = time.monotonic() + seconds
        got = []
        while (left := end - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096).decode()
            except TimeoutError:
                break
            for line in data.splitlines():
                self.messages.append((time.monotonic(), line))
                got.append(line)
        return got

    def wait_for(self, message: str, timeout_s: float = 20) -> None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if message in self.collect(0.2):
                return
        seen = [m for _, m in self.messages][-10:]
        raise AssertionError(f"{message} not received within {timeout_s} s; last: {seen}")


def write_config(tmp_path: Path, extra: str = "", relay_device: Path | None = None) -> Path:
    text = (ROOT / "hardware/dev-fake.toml").read_text()
    record = relay_device or tmp_path / "relay.jsonl"
    text = text.replace('backend = "fake"\n', f'backend = "fake"\ndevice = "{record}"\n', 1)
    path = tmp_path / "edgenode.toml"
    path.write_text(text + extra)
    return path


def drive_levels(record: Path) -> list[bool]:
    lines = [json.loads(x) for x in record.read_text().splitlines()]
    return [x["level"] for x in lines if x["name"] == "relay-drive"]


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifyListener]:
    listener = NotifyListener(tmp_path / "notify.sock")
    yield listener
    listener.sock.close()


def start_daemon(config: Path, state: Path, notify: NotifyListener,
                 watchdog_usec: int | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ, NOTIFY_SOCKET=str(notify.path), EDGENODE_ALLOW_FAULTS="1")
    env.pop("STATE_DIRECTORY", None)
    if watchdog_usec:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    return subprocess.Popen([*EDGENODE, "run", "--config", str(config), "--state-dir",
                             str(state)], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_sigterm_sends_stopping_and_exits_0_with_the_relay_off(tmp_path: Path,
                                                               notify: NotifyListener) -> None:
    config = write_config(tmp_path)
    proc = start_daemon(config, tmp_path / "state", notify)
    try:
        notify.wait_for("READY=1")
        proc.send_signal(signal.SIGTERM)
        notify.wait_for("STOPPING=1", timeout_s=10)
        assert proc.wait(10) == 0
    finally:
        stop(proc)
    levels = drive_levels(tmp_path / "relay.jsonl")
    assert levels[0] is False and levels[-1] is False
    assert True not in levels


def test_control_socket_is_for_the_daemons_group_only(tmp_path: Path,
                                                      notify: NotifyListener) -> None:
    state = tmp_path / "state"
    proc = start_daemon(write_config(tmp_path), state, notify)
    try:
        notify.wait_for("READY=1")
        sock = state / "control.sock"
        assert stat.S_IMODE(sock.stat().st_mode) == 0o660
        answer = request(sock, {"cmd": "status"})
        assert answer["ok"] is True and answer["effector"] == "SAFE"
        assert answer["stages"]["effector"]["state"] == "ok"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def test_hung_stage_stops_watchdog_pings_but_unplugged_device_does_not(
        tmp_path: Path, notify: NotifyListener) -> None:
    radar = (
        '\n[radar]\nmodel = "ti-mmwave"\n'
        f'data_port = "{tmp_path}/no-such-radar"\nframe_timeout_s = 1.0\n'
    )
    state = tmp_path / "state"
    proc = start_daemon(write_config(tmp_path, radar), state, notify, watchdog_usec=1_000_000)
    try:
        notify.wait_for("READY=1")
        # The radar is unplugged from the start: its stage reports failed but keeps looping.
        pings = notify.collect(3.0).count("WATCHDOG=1")
        assert pings >= 4
        status = request(state / "control.sock", {"cmd": "status"})
        assert status["stages"]["radar"]["state"] == "failed"
        assert "no-such-radar" in status["stages"]["radar"]["reason"]
        # Now the radar thread hangs: after its deadline (2 s) the pings stop.
        assert request(state / "control.sock",
                       {"cmd": "stall", "stage": "radar", "seconds": 30})["ok"]
        notify.collect(2.5)
        assert notify.collect(3.0).count("WATCHDOG=1") == 0
        assert proc.poll() is None
    finally:
        stop(proc)


def test_run_refuses_an_invalid_config_with_78(tmp_path: Path, notify: NotifyListener) -> None:
    config = write_config(tmp_path)
    text = config.read_text().replace("mast_heading_deg = 0.0", "mast_heading_deg = 400")
    config.write_text(text)
    proc = start_daemon(config, tmp_path / "state", notify)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 78
    assert "node.mast_heading_deg = 400" in err and "Traceback" not in err
    assert not notify.collect(0.1)


def test_relay_safe_works_with_an_otherwise_broken_config(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    config.write_text(config.read_text().replace("[node]", "[node\n") + "\n[[[garbage\n")
    proc = subprocess.run([*EDGENODE, "relay-safe", "--config", str(config)], cwd=ROOT,
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 0, proc.stderr
    assert "drive OFF" in proc.stderr
    assert drive_levels(tmp_path / "relay.jsonl") == [False]
