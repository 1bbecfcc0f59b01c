"""The status page under a flood while the daemon is wedged (its control socket accepts and
never answers): live streams and requests in flight are capped, the rest answered 503 at once,
so nothing queues without bound for the daemon."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from aiohttp import web

from edgenode.config.models import StatusPageSection
from edgenode.web.server import MAX_REQUESTS, MAX_STREAMS, StatusPage
from tests.conftest import free_port

REQUESTS = 6


@pytest.fixture
def serve(tmp_path: Path) -> Iterator:
    """serve(max_requests) -> port: the status page in-process on a free port, before a
    daemon that never answers."""
    sock_path = tmp_path / "control.sock"
    wedged = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    wedged.bind(str(sock_path))
    wedged.listen(512)
    loop = asyncio.new_event_loop()
    runners: list[web.AppRunner] = []
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def start(max_requests: int) -> int:
        port = free_port()
        runner = web.AppRunner(StatusPage(StatusPageSection(port=port), sock_path,
                                          max_requests=max_requests).app(),
                               shutdown_timeout=1)
        runners.append(runner)

        async def up() -> None:
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()

        asyncio.run_coroutine_threadsafe(up(), loop).result(10)
        return port

    yield start
    wedged.close()
    for runner in runners:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def get(port: int, path: str, timeout_s: float = 10) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    conn.request("GET", path)
    return conn.getresponse()


def test_live_streams_beyond_the_cap_are_answered_503(serve) -> None:
    port = serve(MAX_REQUESTS)
    streams = [get(port, "/api/stream") for _ in range(MAX_STREAMS)]
    assert [s.status for s in streams] == [200] * MAX_STREAMS
    extra = get(port, "/api/stream")
    assert extra.status == 503 and b"live views are open" in extra.read()
    for stream in streams:
        stream.close()


def test_requests_beyond_the_cap_are_answered_503_while_the_daemon_is_wedged(serve) -> None:
    page = serve(REQUESTS)  # small: each request held by the wedged daemon costs its 3 s ask
    # Each /api/logs waits (3 s) for the wedged daemon; a flood past the cap is refused at once.
    with ThreadPoolExecutor(REQUESTS + 16) as pool:
        answers = list(pool.map(lambda _: get(page, "/api/logs").status, range(REQUESTS + 16)))
    assert answers.count(503) >= 16, answers
    assert answers.count(503) + answers.count(200) == len(answers), answers
    assert get(page, "/").status == 200  # and it serves again once the flood is over
