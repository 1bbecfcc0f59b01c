"""Every way the jammer must stop radiating, on the twin's relay board, through the real daemon.

Each test engages through `edgenode ctl` (operator-signed arm and engage) and proves from the
twin's ground truth (`truth.jsonl`: `{"t": wall, "radiating": bool}` on every change) that the
jammer stopped radiating within the stated bound. The relay board model (hal/sim/relay_board.py,
hardware/relay-board.md): radiating = K1 closed AND K2 (heartbeat monostable) closed AND key at
OPERATE; K1 operates in 15 ms and releases in 10 ms, the monostable drops 200 ms after the last
rising heartbeat edge (+20 % tolerance) and K2 releases 20 ms later.

While the daemon runs and toggles its heartbeat, radiating can only stop because the drive
fell (or the key left OPERATE), so "radiating ended" proves the software dropped the relay.

Two sets of daemons: one `edgenode run --sim` daemon shared by the commanded paths (each test
first brings it to SAFE/ARMED, key at OPERATE, no twin fault), and a twin the tests own
(`edgenode simulate`) for the paths that stop or restart the daemon: the board keeps its state
across the daemon's death as a real one does.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgenode.control.keys import load_key_file
from edgenode.control.operator import build_command, encode
from tests.brokers import bom_properties, connected_client
from tests.conftest import Mosquitto
from tests.simdaemon import (
    SIM_NODE,
    SIM_SITE,
    SimDaemon,
    SimTwin,
    ctl,
    radiating_changes,
    wait_radiating,
)

K1_RELEASE_S = 0.010
# Board dropout after the last rising heartbeat edge: 200 ms monostable +20 %, K2 release 20 ms.
DROPOUT_BOUND_S = 0.200 * 1.2 + 0.020
# The effector loop runs every half heartbeat period (10 ms); scheduling on a loaded 2-core
# machine adds tens of ms. A loop late by more than the dropout is caught by the board anyway.
LOOP_SLACK_S = 0.3
# A graceful stop is a software path (signal, main loop wake-up, make_safe): bounded by
# scheduling, not by the board. The crash paths below use the board's bound.
STOP_BOUND_S = 1.0
AUX_SETTLE_S = 0.100  # effector.aux_settle_ms default
LINK_LOSS_GRACE_S = 5.0  # hardware/configs/pi5-iwr6843-uma16.toml: effector.link_loss_grace_s


def off_after(source: SimDaemon | SimTwin, t: float, timeout_s: float = 3.0) -> float:
    """The first time after t the jammer stopped radiating (waits up to timeout_s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        off = [tr for tr, radiating in radiating_changes(source) if not radiating and tr > t]
        if off:
            return off[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"the jammer kept radiating for {timeout_s} s after {t}")
        time.sleep(0.02)


def radiated_after(source: SimDaemon | SimTwin, t: float) -> list[float]:
    return [tr for tr, radiating in radiating_changes(source) if radiating and tr > t]


def ok(proc) -> str:
    assert proc.returncode == 0, f"ctl refused: {proc.stdout}{proc.stderr}"
    return proc.stdout


def effector_state(daemon: SimDaemon) -> str:
    return daemon.status()["effector"]


def wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.02)


def engaged(daemon: SimDaemon, duration_s: float = 30) -> float:
    """Arm (when not armed) and engage through `edgenode ctl`; the wall time radiating began."""
    started = time.time()
    if effector_state(daemon) != "ARMED":
        ok(ctl(daemon, daemon.broker, "arm", "--ttl", "120", discover=False))
    ok(ctl(daemon, daemon.broker, "engage", "--duration", f"{duration_s:g}", "--bearing", "90",
           discover=False))
    return wait_radiating(daemon, started)


# -- the shared daemon (commanded paths) --------------------------------------------------
@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimDaemon]:
    tmp = tmp_path_factory.mktemp("effector-e2e")
    broker = Mosquitto(tmp / "broker").start()
    # EDGENODE_SIM_ADMIN_KEY: the sim also trusts STATE/admin.key (role admin) for `reset`.
    daemon = SimDaemon("empty-sky", tmp / "state", broker,
                       env={"EDGENODE_SIM_ADMIN_KEY": "1"})
    daemon.status()
    # The first command finds the demo node on its own, as `edgenode ctl` does for a newcomer.
    ok(ctl(daemon, broker, "arm", "--ttl", "120"))
    yield daemon
    daemon.stop()
    broker.stop()


@pytest.fixture
def daemon(node: SimDaemon) -> SimDaemon:
    """The shared daemon, not radiating, key at OPERATE, no twin fault, not in FAULT."""
    for fault in node.twin("status")["faults"]:
        node.twin("fault.stop", name=fault)
    if node.twin("status")["key"] != "operate":
        node.twin("key", position="operate")
    state = effector_state(node)
    if state == "ENGAGED":
        ok(ctl(node, node.broker, "safe", discover=False))
    elif state == "FAULT":
        ok(ctl(node, node.broker, "reset", key="admin.key", discover=False))
    assert not node.twin("status")["radiating"]
    return node


def test_jammer_stops_when_the_engagement_duration_ends(daemon: SimDaemon) -> None:
    on = engaged(daemon, duration_s=1)
    off = off_after(daemon, on)
    # The duration runs from the drive going on; radiating began K1's operate time later.
    assert 1.0 - 0.05 <= off - on <= 1.0 + LOOP_SLACK_S, off - on
    wait_for(lambda: effector_state(daemon) == "ARMED", 2, "ENGAGED -> ARMED at the end")
    assert not radiated_after(daemon, off)


@pytest.mark.parametrize("action", ["disengage", "safe"])
def test_jammer_stops_before_the_operator_sees_the_result_of(daemon: SimDaemon,
                                                             action: str) -> None:
    on = engaged(daemon)
    sent = time.time()
    ok(ctl(daemon, daemon.broker, action, discover=False))
    answered = time.time()
    off = off_after(daemon, on)
    # The relay drops before the result is published: radiating ends by the time `ctl` has
    # printed `ok`, give or take K1's release time.
    assert sent < off <= answered + K1_RELEASE_S, (sent, off, answered)
    expected = "ARMED" if action == "disengage" else "SAFE"
    assert effector_state(daemon) == expected
    assert not radiated_after(daemon, off)


def test_unsigned_junk_and_a_retained_bom_message_neither_stop_nor_silence_the_node(
        daemon: SimDaemon) -> None:
    """Issue 22 on the twin: an attacker who can only publish leaves a retained message with
    U+FEFF in its properties (paho once dropped the connection on it, again at each return)
    and unsigned `1e400` junk on `cmd`. The engagement runs on, and a signed `safe` is obeyed
    within a second."""
    cmd = f"edgenode/{SIM_SITE}/{SIM_NODE}/cmd"
    on = engaged(daemon)
    bad = connected_client(daemon.broker.port, "5", "attacker")
    try:
        bad.publish(cmd, b'{"v":1,"action":"safe","issued_at":1e400}', qos=1, retain=True,
                    properties=bom_properties(f"edgenode/{SIM_SITE}/{SIM_NODE}")
                    ).wait_for_publish(5)
        bad.publish(cmd, b'{"v":1e400}', qos=1).wait_for_publish(5)
        time.sleep(2.0)
        assert not [t for t, radiating in radiating_changes(daemon) if t > on and not radiating]
        assert effector_state(daemon) == "ENGAGED"
        operator = load_key_file(daemon.state / "operator.key")
        safe = encode(build_command(operator, SIM_SITE, SIM_NODE, "safe"))
        sent = time.time()
        bad.publish(cmd, safe, qos=1).wait_for_publish(5)  # signed: anyone may carry it
        assert off_after(daemon, on) - sent < 1.0
        wait_for(lambda: effector_state(daemon) == "SAFE", 2, "the signed safe obeyed")
    finally:
        bad.publish(cmd, b"", qos=1, retain=True).wait_for_publish(5)  # clear the retained
        bad.loop_stop()


@pytest.mark.parametrize("position", ["test", "off"])
def test_relay_drops_when_the_key_switch_leaves_operate(daemon: SimDaemon,
                                                        position: str) -> None:
    engaged(daemon)
    turned = time.time()
    daemon.twin("key", position=position)
    off = off_after(daemon, turned)
    assert off - turned <= LOOP_SLACK_S  # the board cuts the RF supply at once
    # The software must drop the drive too, or turning the key back would radiate again.
    wait_for(lambda: not daemon.twin("status")["drive"], LOOP_SLACK_S + 0.2,
             "the effector drops the drive after the key left OPERATE")
    wait_for(lambda: effector_state(daemon) == "SAFE", 1, "ENGAGED -> SAFE")
    # K1 takes its release time to open after the drive falls; no hand turns a key faster.
    wait_for(lambda: not daemon.twin("status")["relay_closed"], 0.5, "K1 released")
    daemon.twin("key", position="operate")
    time.sleep(0.3)
    assert not radiated_after(daemon, off), "radiating again with the key back at OPERATE"


def test_stuck_relay_latches_fault_and_the_heartbeat_stop_ends_radiating(
        daemon: SimDaemon) -> None:
    on = engaged(daemon, duration_s=1)
    daemon.twin("fault.start", name="relay-stuck")  # K1 welded: its aux contact stays closed
    off = off_after(daemon, on)
    # Drive off at the engagement's end; the aux contact disagrees for aux_settle_ms -> FAULT
    # (stuck_on) -> no more heartbeat -> the board drops the series contactor.
    bound = 1.0 + AUX_SETTLE_S + DROPOUT_BOUND_S + LOOP_SLACK_S
    assert off - on <= bound, (off - on, bound)
    assert off - on >= 1.0 + AUX_SETTLE_S  # K1 never released: only the contactor ended it
    wait_for(lambda: effector_state(daemon) == "FAULT", 1, "FAULT latched")
    status = daemon.twin("status")
    assert status["relay_closed"] and not status["contactor_closed"]

    refused = ctl(daemon, daemon.broker, "reset", key="admin.key", discover=False)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "aux_disagrees" in refused.stdout
    assert effector_state(daemon) == "FAULT"
    assert not radiated_after(daemon, off), "radiating again while FAULT is latched"

    daemon.twin("fault.stop", name="relay-stuck")  # the relay is repaired
    ok(ctl(daemon, daemon.broker, "reset", key="admin.key", discover=False))
    assert effector_state(daemon) == "SAFE"
    assert not radiated_after(daemon, off)


def test_config_reload_sighup_makes_the_effector_safe_first(daemon: SimDaemon) -> None:
    engaged(daemon)
    hup = time.time()
    daemon.proc.send_signal(signal.SIGHUP)
    off = off_after(daemon, hup)
    assert off - hup <= LOOP_SLACK_S + K1_RELEASE_S, off - hup
    wait_for(lambda: effector_state(daemon) == "SAFE", 1, "SAFE after SIGHUP")
    assert daemon.proc.poll() is None, "SIGHUP must not stop the daemon"
    time.sleep(0.3)
    assert not radiated_after(daemon, off)


def test_jammer_stops_within_the_board_dropout_when_the_effector_loop_hangs(
        daemon: SimDaemon) -> None:
    engaged(daemon)
    stalled = time.time()
    assert daemon.control({"cmd": "stall", "stage": "effector", "seconds": 1.5})["ok"]
    off = off_after(daemon, stalled)
    # The loop stalls at its next step (10 ms); its last rising heartbeat edge came before.
    assert off - stalled <= DROPOUT_BOUND_S + 0.02, off - stalled
    time.sleep(max(0.0, stalled + 1.4 - time.time()))
    assert not radiated_after(daemon, off), "radiating while the effector loop was stalled"
    ok(ctl(daemon, daemon.broker, "safe", discover=False))


# -- a twin the tests own (the daemon stops, crashes, restarts, loses its broker) -----------
@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimTwin]:
    tmp = tmp_path_factory.mktemp("effector-e2e-twin")
    broker = Mosquitto(tmp / "broker").start()
    twin = SimTwin("empty-sky", tmp / "state", broker)
    yield twin
    twin.stop()
    broker.stop()


@pytest.fixture
def twin_daemon(twin: SimTwin) -> Iterator[callable]:
    started: list[SimDaemon] = []

    def start(log_name: str, state: Path | None = None) -> SimDaemon:
        """A daemon on the shared twin, in its own state directory unless given one."""
        state = state or twin.state.parent / f"state-{log_name}"
        daemon = twin.daemon(log_name=log_name, state=state)
        started.append(daemon)
        # Commands need the daemon's subscription: wait for its broker connection.
        wait_for(lambda: daemon.status()["link"]["connected"], 10, f"{log_name}: link up")
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
    if twin.broker.proc is None:
        twin.broker.start()


def test_twins_jammer_never_radiates_with_an_invalid_config(twin: SimTwin) -> None:
    # The twin's key switch is at OPERATE; the config points the relay at the twin but breaks
    # the heartbeat rule (a 150 ms toggle would let the 200 ms monostable drop out).
    bad = twin.state / "invalid.toml"
    bad.write_text(twin.config.read_text().replace("heartbeat_period_ms = 20",
                                                   "heartbeat_period_ms = 150"))
    assert bad.read_text() != twin.config.read_text()
    begun = time.time()
    daemon = twin.daemon(config=bad, log_name="invalid")
    assert daemon.proc.wait(30) == 78, daemon.log_text()
    daemon.log.close()
    assert "heartbeat_period_ms" in daemon.log_text()
    time.sleep(0.3)
    window = [r for r in twin.truth() if r["t"] >= begun]
    assert not [r for r in window if r.get("radiating")]
    # It never even reserved the relay's lines.
    assert not [r for r in window if r.get("client") == "gpio"]
    assert not twin.control("status")["drive"]


def test_relay_released_and_jammer_off_when_the_daemon_stops_on_sigterm(
        twin: SimTwin, twin_daemon) -> None:
    daemon = twin_daemon("sigterm")
    engaged(daemon)
    sent = time.time()
    assert daemon.stop(signal.SIGTERM) == 0, daemon.log_text()
    off = off_after(twin, sent)
    assert off - sent <= STOP_BOUND_S, off - sent
    # Stopped, not died: the drive was dropped and released (a SIGKILL would leave it high).
    status = twin.control("status")
    assert not status["drive"] and not status["relay_closed"]


def test_power_on_after_a_crash_while_engaged_never_restores_the_relay(
        twin: SimTwin, twin_daemon) -> None:
    first = twin_daemon("crashed")
    engaged(first)
    killed = time.time()
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(5)
    off = off_after(twin, killed)
    assert off - killed <= DROPOUT_BOUND_S, off - killed
    # Like a Pi's pin, the dead process's drive line kept its level: only the heartbeat's
    # absence keeps the jammer off now.
    assert twin.control("status")["drive"]

    second = twin_daemon("restarted", state=first.state)  # power-on: same state directory
    assert not twin.control("status")["drive"]
    time.sleep(0.3)
    assert not radiated_after(twin, off), "the relay came back on after the restart"
    # The relay released as soon as the new daemon drove it off: nothing is stuck, and the
    # daemon comes up SAFE (neither ENGAGED nor ARMED is restored), its heartbeat running.
    status = second.status()
    assert status["effector"] == "SAFE", status["stages"]["effector"]
    status = twin.control("status")
    assert not status["drive"] and status["contactor_closed"]  # heartbeat back, drive off
    refused = ctl(second, twin.broker, "engage", "--duration", "5", "--bearing", "90",
                  discover=False)
    assert refused.returncode == 1 and "not_armed" in refused.stdout, refused.stdout
    assert not radiated_after(twin, off), "the relay came back on after the restart"


@pytest.mark.parametrize("broker", ["stopped", "frozen"])
def test_broker_link_lost_beyond_grace_drops_the_relay_and_the_arming(
        twin: SimTwin, twin_daemon, broker: str) -> None:
    """A frozen broker (SIGSTOP: the connection stays open, nothing answers) must cost no
    more than a stopped one: the link's own pings find it."""
    daemon = twin_daemon(f"link-loss-{broker}")
    on = engaged(daemon)
    lost = time.time()
    if broker == "stopped":
        twin.broker.stop()
    else:
        twin.broker.freeze()
    try:
        off = off_after(twin, on, timeout_s=LINK_LOSS_GRACE_S + 3)
    finally:
        twin.broker.thaw()
    assert LINK_LOSS_GRACE_S - 0.2 <= off - lost <= LINK_LOSS_GRACE_S + 1.0, off - lost
    # The arm (TTL 120 s) is gone too: SAFE, not ARMED.
    wait_for(lambda: effector_state(daemon) == "SAFE", 1, "SAFE after the link loss")
    assert not radiated_after(twin, off)
