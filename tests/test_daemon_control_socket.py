"""The daemon's local control socket on a real unix socket: slow clients hold up no one."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgenode.daemon.control_socket import ControlSocket, request


def _status(message: dict[str, Any]) -> dict[str, Any]:
    if message.get("cmd") == "slow":
        time.sleep(1.5)
    return {"ok": True, "echo": message.get("cmd")}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Path]:
    server = ControlSocket(tmp_path / "control.sock", _status, request_timeout_s=1.0,
                           max_clients=3)
    server.start()
    yield server.path
    server.stop()


def _connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(str(path))
    return sock


def test_a_silent_client_does_not_hold_up_another(served: Path) -> None:
    silent = _connect(served)  # connects and sends nothing
    try:
        time.sleep(0.2)  # the server has accepted it and is waiting for its line
        started = time.monotonic()
        assert request(served, {"cmd": "status"}, timeout_s=0.8) == {"ok": True,
                                                                      "echo": "status"}
        assert time.monotonic() - started < 0.5
        # ...and the silent one is told why it is cut off, at its deadline.
        answer = json.loads(silent.makefile("rb").readline())
        assert answer["ok"] is False and answer["error"].startswith("timeout")
    finally:
        silent.close()


def test_a_trickling_client_is_cut_off_at_the_request_deadline(served: Path) -> None:
    trickle = _connect(served)
    started = time.monotonic()
    stop = threading.Event()

    def drip() -> None:
        while not stop.wait(0.2):
            try:
                trickle.sendall(b" ")
            except OSError:
                return

    threading.Thread(target=drip, daemon=True).start()
    try:
        answer = json.loads(trickle.makefile("rb").readline())
        assert answer["error"].startswith("timeout")
        assert time.monotonic() - started < 2.0
    finally:
        stop.set()
        trickle.close()


def test_a_slow_request_does_not_hold_up_a_quick_one(served: Path) -> None:
    slow: list[dict[str, Any]] = []
    thread = threading.Thread(target=lambda: slow.append(request(served, {"cmd": "slow"})))
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    assert request(served, {"cmd": "status"}, timeout_s=1.0)["ok"]
    assert time.monotonic() - started < 0.5
    thread.join(5)
    assert slow == [{"ok": True, "echo": "slow"}]


def test_clients_beyond_the_limit_are_told_busy(served: Path) -> None:
    silent = [_connect(served) for _ in range(3)]
    try:
        time.sleep(0.2)
        assert request(served, {"cmd": "status"}) == {
            "ok": False, "error": "busy: too many local clients"}
    finally:
        for sock in silent:
            sock.close()
    time.sleep(0.2)  # their threads end and give their places back
    assert request(served, {"cmd": "status"})["ok"]


def test_bad_requests_get_an_error_answer(served: Path) -> None:
    sock = _connect(served)
    sock.sendall(b"[1, 2]\n")
    answer = json.loads(sock.makefile("rb").readline())
    sock.close()
    assert answer == {"ok": False, "error": "ValueError: request must be a JSON object"}
