"""Power-on never restores ENGAGED; the duty budget, the replay cache and a latched FAULT
survive a restart (the first node is killed with SIGKILL mid-engagement)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from edgenode.control.keys import write_key_file
from tests.conftest import ROOT
from tests.control.conftest import OPERATORS, RigFactory, make_config, wait_for


def kill_mid_engagement(tmp_path: Path, state: Path, duration_s: float, **effector: object
                        ) -> list[dict[str, object]]:
    config = tmp_path / "config.json"
    config.write_text(make_config(**effector).model_dump_json())
    key = tmp_path / "alice.key"
    if not key.exists():
        write_key_file(key, OPERATORS["alice"])
    commands = tmp_path / "commands.jsonl"
    commands.write_text("\n".join(json.dumps({"key": str(key), "action": action,
                                              "params": params}) for action, params in (
        ("arm", {"ttl_s": 60}),
        ("engage", {"duration_s": duration_s, "bearing_deg": 45}),
    )) + "\n")
    gpio_log = tmp_path / "gpio.jsonl"
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests/control/engaged_node.py"),
                             str(config), str(state), str(commands), str(gpio_log)],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ENGAGED"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return [json.loads(line) for line in gpio_log.read_text().splitlines()]


def test_restart_after_a_kill_never_restores_engaged(make_rig: RigFactory,
                                                     tmp_path: Path) -> None:
    state = tmp_path / "state"
    lines = kill_mid_engagement(tmp_path, state, duration_s=20)
    assert any(e["name"] == "relay-drive" and e["level"] for e in lines), "never engaged"
    rig = make_rig(state_dir=state)
    assert rig.effector.state == "SAFE"
    assert not rig.drive_went_high()
    rig.effector.flush()
    assert rig.states[-1]["state"] == "SAFE"


def test_duty_budget_survives_a_kill(make_rig: RigFactory, tmp_path: Path) -> None:
    state = tmp_path / "state"
    # The killed engagement was planned for 2 s of a 2 s budget: all of it counts.
    kill_mid_engagement(tmp_path, state, duration_s=2, duty_max_on_s=2, duty_window_s=600)
    rig = make_rig(state_dir=state, duty_max_on_s=2, duty_window_s=600)
    assert rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    result = rig.send("alice", "engage", {"duration_s": 1, "bearing_deg": 1})
    assert result["reason"].startswith("duty_budget_spent"), result
    assert not rig.drive_went_high()


def test_duty_budget_survives_a_clean_restart(make_rig: RigFactory, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = make_rig(state_dir=state, duty_max_on_s=1, duty_window_s=600)
    first.arm_and_engage(duration_s=0.6)
    assert wait_for(lambda: first.effector.state == "ARMED", 2)
    first.effector.stop()
    second = make_rig(state_dir=state, duty_max_on_s=1, duty_window_s=600)
    second.arm_and_engage(duration_s=1)
    result_note = [r for r in second.audit if r["kind"] == "result"]
    second.effector.flush()
    result_note = [r["data"] for r in second.audit if r["kind"] == "result"][-1]
    assert result_note["reason"].startswith("duration capped"), result_note
    assert wait_for(lambda: second.effector.state == "ARMED", 2)
    assert second.gpio.high_time(17) < 0.5


def test_fault_stays_latched_across_a_restart(make_rig: RigFactory, tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = make_rig(state_dir=state)
    first.coil.dead = True
    first.arm_and_engage()
    assert wait_for(lambda: first.effector.state == "FAULT", 3)
    first.effector.stop()
    second = make_rig(state_dir=state)
    assert second.effector.state == "FAULT"
    assert second.send("alice", "arm", {"ttl_s": 10})["reason"].startswith("fault")
    assert second.send("root", "reset")["state"] == "SAFE"
    assert second.send("alice", "arm", {"ttl_s": 10})["status"] == "ok"
