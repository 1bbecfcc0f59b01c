"""The lifecycle owner: starts the parts in order, stops them in reverse, relay safe first.

Start order: effector (relay reserved OFF before anything else), sensors, detection, link,
control socket. Stop: the effector makes the relay safe, then the parts stop in reverse and
the effector releases the relay last. Handlers on the stop path never raise.
"""

from __future__ import annotations

import hashlib
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
from edgenode.daemon.control_socket import ControlSocket
from edgenode.daemon.notify import notify, watchdog_interval_s
from edgenode.daemon.sensing import AcousticStage, I2CStage, ReadingQueue, build_sensor_stages
from edgenode.daemon.tracking import DetectionStage
from edgenode.health import Health
from edgenode.link import Link
from edgenode.selftest import run_selftest
from edgenode.selftest import summary as selftest_summary
from hal.sensors.system import open_system_facts

log = logging.getLogger(__name__)
CLOCK_FRESH_S = 1.0
STOP_FLUSH_S = 5.0


class Component(Protocol):
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
        self.effector_state: dict[str, Any] | None = None
        self.sensors: list[Any] = []
        self._clock_ok, self._clock_read_at = False, -1e9
        self._status_states: dict[str, str] = {}

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        config = self.config
        self.system = open_system_facts(config.sensors.system_backend,
                                        device=config.sensors.system_device)
        self.link = Link(config, self.state_dir, self.health, version=__version__,
                         capabilities=self._capabilities(), config_digest=self._config_digest())
        # The relay is reserved (OFF) before any other part starts.
        relay = open_relay(config.relay)
        self.effector = Effector(relay, config, self.health, self.state_dir,
                                 publish_audit=self.link.publish_audit,
                                 publish_state=self._effector_changed,
                                 clock_synced=self._clock_synced)
        self.effector.set_action_handler("selftest", self._remote_selftest)
        self.effector.start()
        self.readings = ReadingQueue()
        self.sensors = build_sensor_stages(config, self.config_path, self.health, self.readings)
        for component in self.sensors:
            self._start(component)
        acoustic = next((s for s in self.sensors if isinstance(s, AcousticStage)), None)
        self.detection = DetectionStage(
            config, self.health, self.readings, self.link.publish_event,
            geometry_m=acoustic.geometry.positions_m if acoustic else None)
        self._start(self.detection)
        self.link.on_command(self.effector.handle_command, slow=self.effector.may_be_slow)
        self.link.on_link_change(self.effector.link_changed)
        self._start(self.link)
        self._start(_SocketComponent(ControlSocket(self.state_dir / "control.sock",
                                                   self._handle_local)))
        notify("READY=1")
        self._status()

    def _effector_changed(self, state: dict[str, Any]) -> None:
        self.effector_state = state
        self.link.set_state("effector", state)

    def selftest(self) -> dict[str, Any]:
        report = run_selftest(self)
        self.link.set_state("selftest", report)
        return report

    def _remote_selftest(self, params: dict[str, Any]) -> str:
        return selftest_summary(self.selftest())

    def _capabilities(self) -> list[str]:
        caps = ["effector"] if self.config.effector.enabled else []
        if self.config.radar is not None:
            caps.append(f"radar:{self.config.radar.model}")
        if self.config.acoustic is not None:
            caps.append(f"acoustic:{self.config.acoustic.geometry}")
        return caps

    def _config_digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.config_path.read_bytes()).hexdigest()[:16]

    def _clock_synced(self) -> bool:
        """Clock sync for command admission, read at most once per CLOCK_FRESH_S: it changes
        on NTP's time scale, and a read can be a round trip (the twin) on the engage path."""
        now = time.monotonic()
        if now - self._clock_read_at > CLOCK_FRESH_S:
            try:
                self._clock_ok = bool(self.system.read().clock_synced)
            except Exception as exc:  # unknown means not synchronised: arm/engage refused
                log.warning("node: cannot read clock sync state: %s", exc)
                self._clock_ok = False
            self._clock_read_at = now
        return self._clock_ok

    def health_extra(self) -> dict[str, Any]:
        """What the daemon adds to the link's health report (docs/mqtt.md, schema `health`):
        system facts, queue depths, per-part counters and the effector state."""
        counters: dict[str, dict[str, int]] = {"readings": {"dropped": self.readings.dropped}}
        extra: dict[str, Any] = {"queues": {"readings": self.readings.depth()},
                                 "counters": counters}
        try:
            facts = self.system.read()
            extra["system"] = {"cpu_temp_c": facts.cpu_temp_c, "throttled": facts.throttled,
                               "clock_synced": facts.clock_synced}
        except Exception as exc:  # unknown means not synchronised, as for arm/engage
            extra["system"] = {"cpu_temp_c": None, "throttled": None, "clock_synced": False,
                               "error": str(exc)}
        if self.effector is not None:
            extra["effector"] = self.effector.state
            counters["effector"] = dict(self.effector.counters)
        for stage in self.sensors:
            counters[stage.name] = stage.counters()
            if isinstance(stage, I2CStage):
                extra["readings"] = stage.flat_readings()
        return extra

    def _start(self, component: Component) -> None:
        component.start()
        self._started.append(component)
        log.info("node: %s started", _name(component))

    def stop(self) -> None:
        notify("STOPPING=1")
        log.info("node: stopping")
        if self.effector is not None:
            _never_raise("effector.make_safe", self.effector.make_safe, "daemon stopping")
            # The SAFE state and its audit record go to the link's outbox before the link
            # stops, so the last word on the relay is stored and sent, not lost in a queue.
            _never_raise("effector.flush", self._flush_effector)
        while self._started:
            component = self._started.pop()
            _never_raise(f"{_name(component)}.stop", component.stop)
        if self.effector is not None:
            _never_raise("effector.stop", self.effector.stop)
        log.info("node: stopped")

    def _flush_effector(self) -> None:
        if self.effector is not None and not self.effector.flush(STOP_FLUSH_S):
            log.error("node: the effector's last state and audit records were not handed to "
                      "the link within %.0f s of stopping", STOP_FLUSH_S)

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
                self.link.set_state("health", self.health_extra())
                last_status = time.monotonic()
            elif self._part_states() != self._status_states:
                self._status()  # systemctl status names a part as soon as it changes

    def _handle_reload(self) -> None:
        if self.effector is not None:
            self.effector.make_safe("config reload requested")
        log.warning("node: SIGHUP: live reload is not supported yet; the effector is SAFE; "
                    "restart the service to apply a changed config")

    def _part_states(self) -> dict[str, str]:
        return {name: str(s["state"]) for name, s in self.health.snapshot().items()}

    def _status(self) -> None:
        """The systemd STATUS line: every part that is not ok, with its state."""
        self._status_states = states = self._part_states()
        bad = [f"{name} {state}" for name, state in states.items() if state != "ok"]
        notify("STATUS=" + ("all parts ok" if not bad else "; ".join(bad)))

    # -- local control socket ----------------------------------------------------------
    def _handle_local(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd == "status":
            acoustic = self.detection.last_acoustic
            return {"ok": True, "version": __version__, "pid": os.getpid(),
                    "effector": self.effector.state if self.effector else None,
                    "stages": self.health.snapshot(), "health": self.health_extra(),
                    "link": self.link.counters(), "session": self.link.session,
                    "tracks": self.detection.tracker.tracks(),
                    "radar_frames": list(self.detection.frame_digests),
                    "acoustic": None if acoustic is None else {
                        "t": acoustic.t, "drone": acoustic.drone, "score": acoustic.score,
                        "f0_hz": acoustic.f0_hz,
                        "bearings_deg": [b.azimuth_deg for b in acoustic.bearings]},
                    "recent_bearings": list(self.detection.recent_bearings)}
        if cmd == "selftest":
            return {"ok": True, "report": self.selftest()}
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


def _name(component: object) -> str:
    return str(getattr(component, "name", type(component).__name__.lower()))


def _never_raise(what: str, fn: Any, *args: object) -> None:
    try:
        fn(*args)
    except Exception:
        log.exception("node: %s failed during stop", what)
