"""Many MQTT clients on one thread: paho's external-loop API driven by one `selectors` loop.

The fleet simulator used to give each simulated node paho's own network thread
(`loop_start`): ~500 threads in a 500-node fleet, each woken through a socket pair for every
publish and then queued for the GIL, so an event could wait tens of milliseconds between its
time stamp and its send; and paho's select() cannot pass file descriptor 1024, which split
the fleet into processes. Here one thread owns every socket (epoll on Linux: no such limit):
a publish is written to the socket inside `publish()` itself (paho does that when no thread
and no write-registration callback is set), and the loop only takes over what the kernel did
not accept at once, the broker's acknowledgements, keepalive and reconnects.

Not thread-safe: every call, publishes included, comes from the loop's own thread.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import selectors
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho

from edgenode.link.mqtt import BrokerOptions, MqttClient, _no_delay

log = logging.getLogger(__name__)

MISC_PERIOD_S = 1.0  # paho's keepalive bookkeeping (loop_misc): seconds are plenty


class LoopClient(MqttClient):
    """edgenode.link's client (last will, callbacks, TCP_NODELAY) without its thread."""

    def __init__(self, options: BrokerOptions, loop: NetLoop,
                 on_connect: Callable[[], None] | None = None):
        super().__init__(options, on_connect=on_connect)
        self.loop = loop
        self.reconnect_at: float | None = None  # monotonic time of the next attempt
        self.stopping = False
        self._client.on_socket_open = self._opened
        self._client.on_socket_close = self._closed

    def start(self) -> None:
        """Connect now (a blocking TCP connect: loopback or LAN, milliseconds); CONNACK
        arrives through the loop. Raises OSError when the broker cannot be reached."""
        kwargs = {"clean_start": self.options.clean_start} if self.v5 else {}
        self._client.connect_async(self._host, self._port, self.options.keepalive_s, **kwargs)
        self.reconnect_at = None
        self._client.reconnect()

    def stop(self) -> None:
        """DISCONNECT (written at once); paho closes the socket after it, so no will."""
        self.stopping = True
        self._client.disconnect()
        self.connected.clear()

    def _handle_disconnect(self, *args: Any) -> None:
        if self.stopping:  # our own goodbye: nothing to log or retry
            self.connected.clear()
            return
        super()._handle_disconnect(*args)

    def publish(self, *args: Any, **kwargs: Any) -> paho.MQTTMessageInfo:
        info = super().publish(*args, **kwargs)
        self.loop.sync(self)  # what the kernel did not take at once waits for writability
        return info

    def _opened(self, client: paho.Client, userdata: object, sock: Any) -> None:
        _no_delay(client, userdata, sock)
        self.loop.register(self, sock)

    def _closed(self, client: paho.Client, userdata: object, sock: Any) -> None:
        self.loop.unregister(sock)
        if not self.stopping:  # lost, not stopped: try again after the link's backoff
            self.reconnect_at = time.monotonic() + self.next_delay_s

    # the loop's side
    def on_readable(self) -> None:
        self._client.loop_read()

    def on_writable(self) -> None:
        self._client.loop_write()

    def misc(self) -> None:
        self._client.loop_misc()

    def want_write(self) -> bool:
        return self._client.want_write()

    def socket(self) -> Any:
        """The open socket, or None while disconnected."""
        return self._client.socket()

    def retry(self) -> None:
        self.reconnect_at = None
        try:
            self._client.reconnect()
        except OSError as exc:
            self.last_error = f"cannot connect: {exc}"
            self._schedule_next_attempt(failed=True)
            self.reconnect_at = time.monotonic() + self.next_delay_s


class NetLoop:
    """One selector for many `LoopClient`s. Call `poll` from the one thread that owns them."""

    def __init__(self) -> None:
        self.selector = selectors.DefaultSelector()
        self.clients: list[LoopClient] = []
        self._writing: set[int] = set()  # fds registered for write as well
        self._next_misc = time.monotonic() + MISC_PERIOD_S

    def client(self, options: BrokerOptions,
               on_connect: Callable[[], None] | None = None) -> LoopClient:
        client = LoopClient(options, self, on_connect)
        self.clients.append(client)
        return client

    def register(self, client: LoopClient, sock: Any) -> None:
        self.selector.register(sock, selectors.EVENT_READ, client)
        self._writing.discard(sock.fileno())

    def unregister(self, sock: Any) -> None:
        # KeyError: never registered (the connect failed before the socket was opened)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(sock)

    def sync(self, client: LoopClient) -> None:
        """Ask for writability only while paho holds unsent bytes for this client."""
        sock = client.socket()
        if sock is None:
            return
        fd = sock.fileno()
        want = client.want_write()
        if want == (fd in self._writing):
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if want else 0)
        self.selector.modify(sock, events, client)
        if want:
            self._writing.add(fd)
        else:
            self._writing.discard(fd)

    def poll(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` for socket events and handle them; keepalive; reconnects."""
        for key, events in self.selector.select(max(0.0, timeout_s)):
            client: LoopClient = key.data
            if events & selectors.EVENT_READ:
                client.on_readable()
            if events & selectors.EVENT_WRITE and client.socket() is not None:
                client.on_writable()
            self.sync(client)
        now = time.monotonic()
        if now >= self._next_misc:
            self._next_misc = now + MISC_PERIOD_S
            for client in self.clients:
                if client.reconnect_at is not None and now >= client.reconnect_at:
                    client.retry()
                elif client.socket() is not None:
                    client.misc()
                    self.sync(client)

    def close(self) -> None:
        self.selector.close()


def raise_fd_limit(needed: int) -> None:
    """One socket per client: lift this process's soft limit on open files (often 1024) up
    to the hard limit when `needed` is more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        if target < needed:
            log.warning("fleet-sim: %d files open at most here (ulimit -Hn): %d clients will "
                        "not all connect", target, needed)
