"""Issue 18: the journal's rotation (edgenode/central/journal.py). Its files stay within two
de-dup windows however long the service runs; a restart still holds the last window; a
reader holding a retired segment (a restarted instance waiting for its stand-in) reads
every id once and never gets a lock while the holder still writes; a SIGKILL at any step
of a rotation leaves the last window. Real files, real flock, real SIGKILLed processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from edgenode.central.journal import Journal
from edgenode.central.service import Central
from edgenode.link.mqtt import BrokerOptions, MqttClient
from edgenode.link.payloads import Envelope, encode
from edgenode.link.topics import Topics
from tests.conftest import Mosquitto
from tests.link.helpers import track_event, wait_until

CAP = 100  # ids a segment holds: the de-dup window of these tests
ROOT = Path(__file__).resolve().parents[2]


def _ids(first: int, last: int) -> list[str]:
    """The ids first..last (inclusive), as the tests write them."""
    return [f"{i:08d}" for i in range(first, last + 1)]


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def _holder(path: Path, capacity: int = CAP) -> Journal:
    journal = Journal(path, capacity)
    assert journal.try_lock()
    journal.read_new()
    return journal


def test_the_journal_stays_within_two_windows_over_fifty_times_its_window(tmp_path: Path):
    path = tmp_path / "c-a.journal"
    journal = _holder(path)
    most = 0
    for i in range(50 * CAP):
        journal.append(f"{i:08d}")
        if i % 7 == 0:
            most = max(most, len(_lines(path)) + len(_lines(journal.previous)))
    journal.close()
    assert most <= 2 * CAP
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c-a.journal", "c-a.journal.1"]
    # a restart reads the last window, oldest first, and no more
    assert Journal(path, CAP).read_new() == _ids(49 * CAP, 50 * CAP - 1)


def test_a_journal_from_before_rotation_is_read_from_its_end_and_rotated_away(
        tmp_path: Path):
    path = tmp_path / "old.journal"
    path.write_text("\n".join(_ids(0, 30 * CAP - 1)) + "\n")
    journal = Journal(path, CAP)
    assert journal.try_lock()
    assert journal.read_new() == _ids(29 * CAP, 30 * CAP - 1)  # not 30 windows at a restart
    for i in range(30 * CAP, 32 * CAP):
        journal.append(f"{i:08d}")
    journal.close()
    assert len(_lines(path)) + len(_lines(journal.previous)) <= 2 * CAP


def _node(url: str) -> MqttClient:
    client = MqttClient(BrokerOptions(url=url, client_id="test-journal-node"))
    client.start()
    assert client.connected.wait(10)
    return client


def test_a_restart_after_rotations_still_takes_the_last_window_of_events_as_duplicates(
        mosquitto: Mosquitto, tmp_path: Path):
    """The broker redelivers what an instance had taken (a crash before its acknowledgement):
    after five rotations the restarted instance must still know the last window."""
    journal = tmp_path / "c-rot.journal"
    node, env = _node(mosquitto.url), Envelope("s1", "n1", 5)
    topic = Topics("s1", "n1").events
    events = [env.event(track_event("new"), seq, time.time()) for seq in range(5 * 20)]
    first = Central(mosquitto.url, instance="c-rot", events_log=journal, dedup_capacity=20)
    first.start()
    assert first.wait_ready()
    for event in events:
        node.publish(topic, encode(event))
    assert wait_until(lambda: first.events == len(events))
    first.stop()
    assert len(_lines(journal)) + len(_lines(journal.with_name("c-rot.journal.1"))) <= 40
    again = Central(mosquitto.url, instance="c-rot", events_log=journal, dedup_capacity=20)
    again.start()
    assert again.wait_ready()
    for event in events[-20:]:
        node.publish(topic, encode(event))
    assert wait_until(lambda: again.duplicates == 20)
    assert again.events == 0
    node.stop()
    again.stop()


def test_an_instance_waiting_for_its_stand_in_reads_every_id_once_across_rotations(
        tmp_path: Path):
    """The stand-in holds the dead instance's journal and rotates it while the restarted
    instance, holding the segment it opened, waits for the lock (as in Central._on_connect)."""
    path = tmp_path / "c-b.journal"
    stand_in = _holder(path)
    for i in range(50):
        stand_in.append(f"{i:08d}")
    restarted = Journal(path, CAP)
    assert not restarted.try_lock()
    assert restarted.read_new() == _ids(0, 49)
    for i in range(50, 120):  # one rotation: the segment the restarted instance holds retires
        stand_in.append(f"{i:08d}")
    # the retired segment's lock went with its close: not the journal's
    assert not restarted.try_lock()
    assert restarted.read_new() == _ids(50, 119)
    for i in range(120, 300):  # two: the segment it holds is dropped (FILE.1 is a newer one)
        stand_in.append(f"{i:08d}")
    assert restarted.read_new() == _ids(120, 299)
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(restarted.lock(5.0)))
    waiter.start()
    for i in range(300, 450):  # one more while it waits
        stand_in.append(f"{i:08d}")
    time.sleep(0.1)
    assert waiter.is_alive(), "got the lock while the stand-in still held the journal"
    stand_in.close()  # its connection closed: it lets go
    waiter.join()
    assert got == [True]
    assert restarted.read_new() == _ids(300, 449)
    # it now writes where the next reader looks, and rotates in its turn
    for i in range(450, 600):
        restarted.append(f"{i:08d}")
    assert not Journal(path, CAP).try_lock()
    restarted.close()
    assert Journal(path, CAP).read_new() == _ids(500, 599)


def test_a_line_a_killed_writer_left_half_written_does_not_swallow_the_next_id(
        tmp_path: Path):
    path = tmp_path / "c-a.journal"
    path.write_text("00000000\n000000")
    journal = _holder(path)
    journal.append("00000001")
    journal.close()
    assert Journal(path, CAP).read_new()[-1] == "00000001"


# Appends one id, the one that fills its segment, and SIGKILLs itself at the `kill_at`th
# call into the os (posix) or fcntl module: every step of the rotation in turn.
CHILD = """
import os, signal, sys
from pathlib import Path
from edgenode.central.journal import Journal
journal = Journal(Path(sys.argv[1]), int(sys.argv[2]))
assert journal.try_lock()
journal.read_new()
kill_at, calls = int(sys.argv[4]), 0
def count(frame, event, arg):
    global calls
    if event == "c_call" and getattr(arg, "__module__", None) in ("posix", "fcntl"):
        calls += 1
        if calls == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
sys.setprofile(count)
journal.append(sys.argv[3])
sys.setprofile(None)
print(calls)
"""


def _child(path: Path, new_id: str, kill_at: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CHILD, str(path), str(CAP), new_id,
                           str(kill_at)], capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def _one_short_of_a_rotation(directory: Path) -> Path:
    """A journal of two segments: FILE.1 full, FILE one id short of full."""
    directory.mkdir()
    journal = _holder(directory / "j.journal")
    for i in range(3 * CAP - 1):
        journal.append(f"{i:08d}")
    journal.close()
    return journal.path


def test_a_kill_at_any_step_of_a_rotation_leaves_the_last_window(tmp_path: Path):
    new_id = f"{3 * CAP - 1:08d}"
    whole = _child(_one_short_of_a_rotation(tmp_path / "whole"), new_id, 0)
    assert whole.returncode == 0, whole.stderr
    steps = int(whole.stdout)
    assert steps >= 6  # the write, and the rotation's own steps
    for kill_at in range(1, steps + 1):
        path = _one_short_of_a_rotation(tmp_path / f"kill-{kill_at}")
        died = _child(path, new_id, kill_at)
        assert died.returncode == -signal.SIGKILL, (kill_at, died.stderr)
        journal = Journal(path, CAP)
        assert journal.try_lock(), kill_at
        recovered = journal.read_new()
        # the id being written when it died may be there or not; nothing before it lost
        last = 3 * CAP - 1 if recovered[-1:] == [new_id] else 3 * CAP - 2
        assert recovered == _ids(last - CAP + 1, last), kill_at
        # and usable: it rotates on (a killed rotation's leftovers gone) and keeps the window
        for i in range(last + 1, last + 1 + 2 * CAP):
            journal.append(f"{i:08d}")
        journal.close()
        assert sorted(p.name for p in path.parent.iterdir()) == ["j.journal", "j.journal.1"]
        assert Journal(path, CAP).read_new() == _ids(last + 1 + CAP, last + 2 * CAP), kill_at
