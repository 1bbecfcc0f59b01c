"""The daemon's Remote ID stage in-process: real socket receivers (a UNIX datagram socket, as
the twin and a capture helper use), the bounded frame queue and the guard's identity store."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from edgenode.config.models import RemoteIdSection
from edgenode.daemon.remoteid import FrameQueue, RemoteIdStage
from edgenode.health import Health
from edgenode.identify.identity_guard import RemoteIdGuard
from hal.remoteid import RemoteIdFrame
from hal.sim.remoteid import Broadcast, Broadcaster, basic_id


def wait(predicate: object, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_frames_sent_to_the_socket_receiver_reach_the_queue(tmp_path: Path) -> None:
    path = tmp_path / "rid.sock"
    section = RemoteIdSection.model_validate(
        {"receivers": [{"backend": "socket", "device": str(path), "linktype": 251}]})
    health = Health()
    stage = RemoteIdStage(section, health)
    stage.start()
    try:
        assert wait(lambda: path.exists())
        tx = Broadcaster(Broadcast("SOCK-0001"), 57.0, 11.9)
        out = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        for k in range(3):
            for _, data in tx.frames(float(k), 10.0, 40.0, 15.0):
                out.sendto(data, str(path))
        out.close()
        assert wait(lambda: stage.queue.depth() == 3)
        guard = RemoteIdGuard(section, 57.0, 11.9)
        for frame in stage.queue.drain():
            guard.feed(frame)
        assert guard.store.get("SOCK-0001") is not None
        assert health.snapshot()["remoteid-0"]["state"] == "ok"
        assert stage.counters()["remoteid-0_frames"] == 3
    finally:
        stage.stop()


def test_a_receiver_that_cannot_open_is_reported_and_the_stage_keeps_looping(
        tmp_path: Path) -> None:
    not_a_socket = tmp_path / "file"
    not_a_socket.write_text("x")
    section = RemoteIdSection.model_validate(
        {"receivers": [{"backend": "socket", "device": str(not_a_socket), "linktype": 127}]})
    health = Health()
    stage = RemoteIdStage(section, health)
    stage.start()
    try:
        assert wait(lambda: health.snapshot()["remoteid-0"]["state"] == "failed")
        reason = str(health.snapshot()["remoteid-0"]["reason"])
        assert reason.startswith("remoteid.receivers[0] socket")
        assert "is not a socket" in reason and "retry in" in reason
        time.sleep(1.2)
        assert not health.late_stages()  # backing off is not hanging
    finally:
        stage.stop()


def test_a_flood_of_distinct_ids_keeps_queue_and_store_bounded() -> None:
    section = RemoteIdSection.model_validate({"max_identities": 100, "queue_frames": 1000})
    queue, guard = FrameQueue(section.queue_frames), RemoteIdGuard(section, 57.0, 11.9)
    frames = [RemoteIdFrame(t=1000.0 + i * 1e-4, transport="bluetooth",
                            payload=basic_id(f"FAKE{i:06d}"), src=None)
              for i in range(10_000)]
    queue.put_many(frames)
    assert queue.depth() == 1000 and queue.dropped == 9000
    while batch := queue.drain():
        for frame in batch:
            guard.feed(frame)
    assert len(guard.store) == 100 and guard.store.evicted == 900
    # the newest survive: the oldest went first
    assert guard.store.get("FAKE009999") is not None and guard.store.get("FAKE009000") is None
