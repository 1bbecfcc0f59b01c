"""The lifecycle owner: starts the parts in order, stops them in reverse, relay safe first.

Start order: effector (relay reserved OFF before anything else), sensors, detection, link,
control socket. Stop: the effector makes the relay safe, then the parts stop in reverse and
the effector releases the relay last. Handlers on the stop path never raise.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from edgenode import __version__
from edgenode.config import Config
from edgenode.control import Effector, open_relay
from edgenode.control_socket import ControlSocket
from edgenode.health import Health
from edgenode.notify import notify, watchdog_interval_s
from edgenode.sensing import ReadingQueue, build_sensor_stages

log = logging.getLogger(__name__)


class Component(Protocol):
    name: str

    def start(self) -> None: ...
    def stop(self) -> None: ...


class Node:
    def __init__(self, config: Config, config_path: Path, state_dir: Path):
        self.config = config
        self.config_path = config_path
        self.state_dir = state_dir
        self.health = Health()
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._started: list[Component] = []
        self.effector: Effector | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        relay = open_relay(self.config.relay)
        # Until the link and system facts are wired: audit/state go nowhere but the audit
        # log, and the clock counts as unsynchronised (arm/engage refused).
        self.effector = Effector(relay, self.config, self.health, self.state_dir,
                                 publish_audit=lambda record: None,
                                 publish_state=lambda state: None,
                                 clock_synced=lambda: False)
        self.effector.start()
        self.readings = ReadingQueue()
        for component in build_sensor_stages(self.config, self.config_path, self.health,
                                             self.readings):
            self._start(component)
        self._start(_SocketComponent(ControlSocket(self.state_dir / "control.sock",
                                                   self._handle_local)))
        notify("READY=1")
        self._status()

    def _start(self, component: Component) -> None:
        component.start()
        self._started.append(component)
        log.info("node: %s started", component.name)

    def stop(self) -> None:
        notify("STOPPING=1")
        log.info("node: stopping")
        if self.effector is not None:
            _never_raise("effector.make_safe", self.effector.make_safe, "daemon stopping")
        while self._started:
            component = self._started.pop()
            _never_raise(f"{component.name}.stop", component.stop)
        if self.effector is not None:
            _never_raise("effector.stop", self.effector.stop)
        log.info("node: stopped")

    def request_stop(self, *_: object) -> None:
        self._stop.set()

    def request_reload(self, *_: object) -> None:
        self._reload.set()
        self._stop.set()  # wake the main loop; cleared again if this was only a reload

    def run(self) -> int:
        """Start, feed the watchdog while every stage loops, stop on SIGTERM/SIGINT."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)
        try:
            self.start()
            self._main_loop()
        finally:
            self.stop()
        return 0

    def _main_loop(self) -> None:
        interval = watchdog_interval_s()
        tick = min(interval, 1.0) if interval else 1.0
        reported_late: list[str] = []
        last_status = time.monotonic()
        while True:
            self._stop.wait(tick)
            if self._reload.is_set():
                self._reload.clear()
                self._stop.clear()
                self._handle_reload()
            if self._stop.is_set():
                return
            late = self.health.late_stages()
            if not late:
                if interval:
                    notify("WATCHDOG=1")
            elif late != reported_late:
                log.error("node: stage(s) %s stopped looping; withholding watchdog pings",
                          ", ".join(late))
            reported_late = late
            if time.monotonic() - last_status > 10:
                self._status()
                last_status = time.monotonic()

    def _handle_reload(self) -> None:
        if self.effector is not None:
            self.effector.make_safe("config reload requested")
        log.warning("node: SIGHUP: live reload is not supported yet; the effector is SAFE; "
                    "restart the service to apply a changed config")

    def _status(self) -> None:
        snap = self.health.snapshot()
        bad = [f"{name} {s['state']}" for name, s in snap.items() if s["state"] != "ok"]
        notify("STATUS=" + ("all parts ok" if not bad else "; ".join(bad)))

    # -- local control socket ----------------------------------------------------------
    def _handle_local(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd == "status":
            return {"ok": True, "version": __version__, "pid": os.getpid(),
                    "effector": self.effector.state if self.effector else None,
                    "stages": self.health.snapshot()}
        if cmd == "stall":
            # Fault injection for the watchdog and dead-man tests; off unless asked for.
            if os.environ.get("EDGENODE_ALLOW_FAULTS") != "1":
                return {"ok": False, "error": "fault injection is disabled"}
            self.health.stall(str(request["stage"]), float(request["seconds"]))
            return {"ok": True}
        return {"ok": False, "error": f"unknown cmd {cmd!r}"}


class _SocketComponent:
    name = "control-socket"

    def __init__(self, sock: ControlSocket):
        self._sock = sock

    def start(self) -> None:
        self._sock.start()

    def stop(self) -> None:
        self._sock.stop()


def _never_raise(what: str, fn: Any, *args: object) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("node: %s failed during stop", what)
