"""What the daemon tells the world about itself, on a real broker and a real NOTIFY_SOCKET:
a part's state change goes out in `health` at once (not at the next period) and into the
systemd STATUS line; on stop, the effector's last state is published before the link goes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import tty
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EDGENODE, ROOT, Mosquitto
from tests.test_daemon_lifecycle import NotifyListener
from tests.test_daemon_mqtt import Watcher, running_daemon, wait_connected
from tests.test_daemon_mqtt import write_config as write_mqtt_config

FRAME_TIMEOUT_S = 1.0


class RadarPty:
    """An OPS243 on a pty: sends speed reports at 10 Hz while `talking` is set."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.talking = threading.Event()
        self._closed = threading.Event()
        threading.Thread(target=self._talk, daemon=True).start()

    def _talk(self) -> None:
        while not self._closed.wait(0.1):
            if self.talking.is_set():
                os.write(self.master, b'{"unit":"mps","speed":-1.2}\n')

    def close(self) -> None:
        self._closed.set()
        time.sleep(0.15)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def radar() -> Iterator[RadarPty]:
    port = RadarPty()
    yield port
    port.close()


def test_a_part_changing_state_is_reported_at_once_in_health_and_to_systemd(
        tmp_path: Path, mosquitto: Mosquitto, radar: RadarPty) -> None:
    config, _keys, _relay = write_mqtt_config(tmp_path, mosquitto)
    text = config.read_text().replace("health_period_s = 2\n", "health_period_s = 3600\n")
    text += (f'\n[radar]\nmodel = "ops243"\ndata_port = "{radar.path}"\n'
             f"frame_timeout_s = {FRAME_TIMEOUT_S}\n")
    config.write_text(text)
    notify = NotifyListener(tmp_path / "notify.sock")
    watcher = Watcher(mosquitto.url)
    health: list[tuple[float, str]] = []
    watcher.client.subscribe("edgenode/dev/fake-01/health", lambda m: health.append(
        (time.monotonic(), _decode_radar(m.payload))))
    env = dict(os.environ, NOTIFY_SOCKET=str(notify.path))
    env.pop("STATE_DIRECTORY", None)
    proc = subprocess.Popen([*EDGENODE, "run", "--config", str(config), "--state-dir",
                             str(tmp_path / "state")], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "log").open("w"))
    try:
        notify.wait_for("READY=1")
        assert watcher.wait_for(lambda: any(s == "failed" for _, s in health), 15), health
        # systemd is told which part is not ok, without waiting for the 10 s refresh
        notify.wait_for("STATUS=radar failed", timeout_s=3)

        for want, action in (("ok", radar.talking.set), ("failed", radar.talking.clear)):
            time.sleep(1.5)
            before = len(health)
            action()
            changed = time.monotonic()
            expected_s = FRAME_TIMEOUT_S if want == "failed" else 0.0
            assert watcher.wait_for(lambda want=want, before=before: any(
                s == want for _, s in health[before:]), 10), health
            arrival = next(t for t, s in health[before:] if s == want)
            # The link checks the parts every 0.25 s; the period (3600 s) is not waited for.
            assert arrival - changed < expected_s + 1.5, f"radar {want} after " \
                f"{arrival - changed:.1f} s"
            status = "STATUS=all parts ok" if want == "ok" else "STATUS=radar failed"
            notify.wait_for(status, timeout_s=expected_s + 2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        watcher.stop()
        notify.sock.close()
    assert watcher.problems == []


def _decode_radar(payload: bytes) -> str:
    return json.loads(payload)["parts"].get("radar", {}).get("state", "absent")


def test_stopping_publishes_the_effectors_last_state_before_the_link_goes(
        tmp_path: Path, mosquitto: Mosquitto) -> None:
    watcher = Watcher(mosquitto.url)
    with running_daemon(tmp_path, mosquitto) as daemon:
        wait_connected(daemon, watcher)
        arm = daemon.ctl("alice", "arm", "--ttl", "60")
        assert arm.returncode == 0, arm.stdout + arm.stderr
        assert watcher.wait_for(lambda: watcher.on("effector")[-1]["state"] == "ARMED")
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(15) == 0, daemon.log()
        assert watcher.wait_for(lambda: watcher.on("status")[-1]["state"] == "offline")
    watcher.stop()
    with watcher._lock:
        order = [(m.suffix, m.payload) for m in watcher.messages]
    offline = max(i for i, (suffix, p) in enumerate(order)
                  if suffix == "status" and p["state"] == "offline")
    last_state = [p for suffix, p in order[:offline] if suffix == "effector"][-1]
    assert (last_state["state"], last_state["reason"]) == ("SAFE", "daemon stopping")
    audit = [p["record"] for suffix, p in order[:offline] if suffix == "audit"]
    assert any(r["kind"] == "state" and r["data"].get("to") == "SAFE"
               and "daemon stopping" in str(r["data"]) for r in audit), audit[-3:]
