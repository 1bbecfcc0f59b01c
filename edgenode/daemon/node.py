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
from typing import TYPE_CHECKING, Any, Protocol

from edgenode import __version__
from edgenode.config import Config
from edgenode.control import Effector, open_relay
from edgenode.daemon.airspace import AdsbStage
from edgenode.daemon.control_socket import ControlSocket
from edgenode.daemon.memory import MemoryProbe
from edgenode.daemon.notify import notify, watchdog_interval_s
from edgenode.daemon.recent_logs import RecentLogs
from edgenode.daemon.remoteid import AllowListKeeper, RemoteIdStage
from edgenode.daemon.sensing import AcousticStage, I2CStage, ReadingQueue, build_sensor_stages
from edgenode.daemon.status_page import StatusPageProcess
from edgenode.daemon.tracking import DetectionStage
from edgenode.health import Health
from edgenode.identify.airspace import Site
from edgenode.identify.identity_guard import RemoteIdGuard
from edgenode.identify.rules import AirspaceGuard
from edgenode.interop.cot import CotOutput
from edgenode.link import Link
from edgenode.selftest import Periodic, UnknownPart, run_selftest
from edgenode.selftest import summary as selftest_summary
from hal.sensors.system import open_system_facts

if TYPE_CHECKING:
    from edgenode.interop.sapient import SapientClient

log = logging.getLogger(__name__)
CLOCK_FRESH_S = 1.0
STOP_FLUSH_S = 5.0


class StateDirError(RuntimeError):
    """The state directory cannot be used (named with the fix in the message)."""


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
        self.cot: CotOutput | None = None
        self.sapient: SapientClient | None = None
        self.last_selftest: dict[str, Any] | None = None
        self.airspace: AirspaceGuard | None = None
        self.adsb: AdsbStage | None = None
        self.selftest_runner: Periodic | None = None
        self.remoteid: RemoteIdGuard | None = None
        self.remoteid_stage: RemoteIdStage | None = None
        self._clock_ok, self._clock_read_at = False, -1e9
        self.recent_logs = RecentLogs()
        self.memory = MemoryProbe()
        self._started_mono = time.monotonic()
        self._status_states: dict[str, str] = {}

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        logging.getLogger().addHandler(self.recent_logs)
        if self.state_dir.is_symlink() and not self.state_dir.exists():
            raise StateDirError(f"state directory {self.state_dir} is a link to "
                                f"{os.readlink(self.state_dir)}, which does not exist: create "
                                "it or fix the link (--state-dir, $STATE_DIRECTORY)")
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        config = self.config
        self.system = open_system_facts(config.sensors.system_backend,
                                        device=config.sensors.system_device)
        self.link = Link(config, self.state_dir, self.health, version=__version__,
                         capabilities=self._capabilities(), config_digest=self._config_digest())
        if config.airspace is not None:
            node = config.node
            self.airspace = AirspaceGuard(config.airspace, Site(
                node.latitude_deg, node.longitude_deg, node.altitude_m))
        allow_keeper = None
        if config.remoteid is not None:
            self.remoteid = RemoteIdGuard(config.remoteid, config.node.latitude_deg,
                                          config.node.longitude_deg)
            allow_keeper = AllowListKeeper(self.remoteid, self.state_dir / "remoteid-allow.json")
        # The relay is reserved (OFF) before any other part starts.
        relay = open_relay(config.relay)
        self.effector = Effector(relay, config, self.health, self.state_dir,
                                 publish_audit=self.link.publish_audit,
                                 publish_state=self._effector_changed,
                                 clock_synced=self._clock_synced,
                                 airspace=self.airspace.check if self.airspace else None,
                                 identity=self.remoteid.check if self.remoteid else None,
                                 allow_list=allow_keeper.change if allow_keeper else None)
        self.effector.set_action_handler("selftest", self._remote_selftest)
        self.effector.set_action_handler("rebirth", self._rebirth)
        self.effector.start()
        if self.remoteid is not None:
            self._audit_allow_list()
        self.readings = ReadingQueue()
        if config.cot is not None:
            self.cot = CotOutput(config, self.health, self._node_summary)
            self._start(self.cot)
        self.sensors = build_sensor_stages(config, self.config_path, self.health, self.readings)
        for component in self.sensors:
            self._start(component)
        if config.sapient is not None:
            # Imported only when configured: protobuf and the bindings cost ~0.5 s to import.
            from edgenode.interop.sapient import SapientClient

            # Effector tasks reach the effector only where the config allows them (which
            # requires mutual TLS); the task regions gate where the tracker starts tracks.
            self.sapient = SapientClient(
                config, self.state_dir, self.health, version=__version__,
                clock_synced=self._clock_synced, selftest=lambda: self.last_selftest,
                effector=self.effector.handle_trusted if config.sapient.effector_tasks
                else None,
                regions=lambda regions: self.detection.set_regions(regions))
        acoustic = next((s for s in self.sensors if isinstance(s, AcousticStage)), None)
        if self.remoteid is not None:
            self.remoteid_stage = RemoteIdStage(self.remoteid.section, self.health)
        self.detection = DetectionStage(
            config, self.health, self.readings, self._publish_events,
            geometry_m=acoustic.geometry.positions_m if acoustic else None,
            remoteid=None if self.remoteid_stage is None or self.remoteid is None
            else (self.remoteid_stage.queue, self.remoteid))
        self._start(self.detection)
        if self.remoteid_stage is not None:
            self._start(self.remoteid_stage)
        if self.airspace is not None:
            self.airspace.set_track_resolver(self._track_bearing)
            if self.airspace.section.adsb_source is not None:
                self.adsb = AdsbStage(self.airspace.section, self.airspace, self.health,
                                      publish_events=self._publish_events)
                self._start(self.adsb)
        self.link.on_command(self.effector.handle_command, slow=self.effector.may_be_slow)
        self.link.on_link_change(self.effector.link_changed)
        self._start(self.link)
        if self.sapient is not None:
            self._start(self.sapient)
        self._start(_SocketComponent(ControlSocket(self.state_dir / "control.sock",
                                                   self._handle_local)))
        if config.status_page.enabled:
            self._start(StatusPageProcess(self.config_path, self.state_dir))
        # The self-test at start-up and every few minutes: a failed part degrades the node.
        self.selftest_runner = Periodic(self.selftest, self.health)
        self._start(self.selftest_runner)
        notify("READY=1")
        self._status()

    def _audit_allow_list(self) -> None:
        """The allow-list in force at start (the config's, with the changes admins made by
        command), and its entries already expired, into the audit log."""
        if self.remoteid is None or self.effector is None:
            return
        gone = self.remoteid.allow.prune(time.time())
        self.effector.record("allow_list", {
            "source": str(self.config_path),
            "entries": [e.to_dict() for e in self.remoteid.allow.entries()],
            "expired": [e.to_dict() for e in gone]})
        for entry in gone:
            log.warning("remoteid: allow-list entry %s expired %s (config %s)", entry.uas_id,
                        entry.to_dict()["expires"], self.config_path)

    def _effector_changed(self, state: dict[str, Any]) -> None:
        self.effector_state = state
        self.link.set_state("effector", state)
        if self.cot is not None:
            self.cot.node_changed()

    def _publish_events(self, events: list[dict[str, Any]]) -> None:
        """Track events of one moment (one radar frame's or acoustic block's, the airspace
        picture's aircraft) to every consumer: the link's outbox in one transaction, and the
        TAK maps and the SAPIENT peer, where configured, one by one."""
        self.link.publish_events(events)
        for event in events:
            if self.cot is not None:
                self.cot.on_event(event)
            if self.sapient is not None:
                self.sapient.publish_event(event)

    def _node_summary(self) -> tuple[str, str | None]:
        """(status, effector state) for the node's marker on other systems' maps."""
        bad = [f"{name} {s['state']}" for name, s in self.health.snapshot().items()
               if s["state"] != "ok" and name != "cot"]
        return ("degraded: " + ", ".join(bad) if bad else "online",
                self.effector.state if self.effector is not None else None)

    def selftest(self, parts: list[str] | None = None, *,
                 pulse_relay: bool = False) -> dict[str, Any]:
        """Run the self-test (docs/selftest.md); a full run is published and goes to health.
        `pulse_relay` only from the local control socket (never the remote command)."""
        report = run_selftest(self, parts, pulse_relay=pulse_relay, local=pulse_relay)
        if not parts:
            self.last_selftest = report
            self.link.set_state("selftest", report)
            if self.selftest_runner is not None:
                self.selftest_runner.note(report)
        return report

    def _rebirth(self, params: dict[str, Any]) -> str:
        if not self.link.rebirth():
            raise RuntimeError("the broker link is down; the birth goes out on reconnect")
        return "birth and retained state published again"

    def _remote_selftest(self, params: dict[str, Any]) -> str:
        return selftest_summary(self.selftest())

    def _capabilities(self) -> list[str]:
        caps = ["effector"] if self.config.effector.enabled else []
        if self.config.radar is not None:
            caps.append(f"radar:{self.config.radar.model}")
        if self.config.acoustic is not None:
            caps.append(f"acoustic:{self.config.acoustic.geometry}")
        if self.config.airspace is not None:
            caps.append("airspace:adsb" if self.config.airspace.adsb_source else "airspace")
        if self.config.remoteid is not None:
            caps.append("remoteid")
        return caps

    def _track_bearing(self, track_id: str) -> tuple[float, float | None] | None:
        """(true bearing, height above the site) of a live track, for the airspace rules."""
        for state in self.detection.tracker.tracks():
            if state["object_id"] == track_id:
                location = state.get("location")
                height = None if not location else \
                    location["altitude_m"] - self.config.node.altitude_m
                return float(state["azimuth_deg"]["value"]), height
        return None

    def _tracks(self) -> list[dict[str, Any]]:
        """Live track states for the local status (with their Remote ID identity)."""
        tracks = self.detection.tracker.tracks()
        if self.remoteid is None:
            return tracks
        now = time.time()
        return [{**t, "identity": self.remoteid.identity(t["object_id"], now)} for t in tracks]

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
        if self.sapient is not None:
            counters["sapient"] = self.sapient.snapshot()
        if self.airspace is not None:
            extra["airspace"] = self.airspace.snapshot()
        if self.adsb is not None:
            counters["adsb"] = self.adsb.counters()
        if self.remoteid is not None:
            extra["remoteid"] = self.remoteid.snapshot()
        if self.remoteid_stage is not None:
            counters["remoteid"] = self.remoteid_stage.counters()
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
        # Producers first, in reverse start order; then the sinks they publish into (the
        # link's outbox, the SAPIENT peer, the TAK output), so no stage publishes into a
        # closed outbox while it stops.
        sinks = [c for c in (getattr(self, "link", None), self.sapient, self.cot)
                 if c is not None]
        for component in [c for c in reversed(self._started) if c not in sinks] + \
                [c for c in reversed(self._started) if c in sinks]:
            _never_raise(f"{_name(component)}.stop", component.stop)
            log.info("node: %s stopped", _name(component))
        self._started.clear()
        if self.effector is not None:
            _never_raise("effector.stop", self.effector.stop)
        log.info("node: stopped")
        logging.getLogger().removeHandler(self.recent_logs)

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
    def _local_audit(self, request: dict[str, Any]) -> dict[str, Any]:
        """The status page's logins and self-tests go into the audit log."""
        kind = request.get("kind")
        if kind not in WEB_AUDIT_KINDS or self.effector is None:
            return {"ok": False, "error": f"audit kind must be one of {WEB_AUDIT_KINDS}"}
        self.effector.record(str(kind), _small(request.get("data")))
        return {"ok": True}

    def _handle_local(self, request: dict[str, Any]) -> dict[str, Any]:
        cmd = request.get("cmd")
        if cmd == "status":
            acoustic = self.detection.last_acoustic
            node = self.config.node
            return {"ok": True, "version": __version__, "pid": os.getpid(),
                    "node": {"site": node.site, "id": node.id, "hardware": node.hardware,
                             "latitude_deg": node.latitude_deg,
                             "longitude_deg": node.longitude_deg,
                             "mast_heading_deg": node.mast_heading_deg},
                    "uptime_s": round(time.monotonic() - self._started_mono, 1),
                    "effector": self.effector.state if self.effector else None,
                    "effector_state": self.effector_state,
                    "stages": self.health.snapshot(), "health": self.health_extra(),
                    "link": self.link.counters(), "session": self.link.session,
                    "tracks": self._tracks(),
                    "radar_frames": list(self.detection.frame_digests),
                    "acoustic": None if acoustic is None else {
                        "t": acoustic.t, "drone": acoustic.drone, "score": acoustic.score,
                        "f0_hz": acoustic.f0_hz,
                        "bearings_deg": [b.azimuth_deg for b in acoustic.bearings]},
                    "recent_bearings": list(self.detection.recent_bearings),
                    "cot": None if self.cot is None else self.cot.snapshot()}
        if cmd == "selftest":
            try:
                return {"ok": True, "report": self.selftest(
                    request.get("parts") or None, pulse_relay=request.get("pulse_relay") is True)}
            except UnknownPart as exc:
                return {"ok": False, "error": str(exc)}
        if cmd == "logs":
            return {"ok": True, "lines": self.recent_logs.lines(str(request.get("level", "info")),
                                                                int(request.get("lines", 300)))}
        if cmd == "audit":
            return self._local_audit(request)
        if cmd == "memory":
            return self.memory.report()
        if cmd == "stall":
            # Fault injection for the watchdog and dead-man tests; off unless asked for.
            if os.environ.get("EDGENODE_ALLOW_FAULTS") != "1":
                return {"ok": False, "error": "fault injection is disabled"}
            self.health.stall(str(request["stage"]), float(request["seconds"]))
            return {"ok": True}
        return {"ok": False, "error": f"unknown cmd {cmd!r}"}


WEB_AUDIT_KINDS = ("web_login", "web_selftest")


def _small(data: object) -> dict[str, str | bool]:
    """An audit record's data from a local client: a few short strings and flags."""
    if not isinstance(data, dict):
        return {}
    return {str(k)[:32]: v if isinstance(v, bool) else str(v)[:128]
            for k, v in list(data.items())[:8]}


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
