"""The detection stage: readings from the sensor queue through edgenode.detect to events.

One thread owns the plotter, the acoustic detector and the tracker, so none of them needs a
lock. Track events go to `publish` (the link's outbox in the daemon).

With Remote ID configured, this thread also files the received frames into the identity store
(edgenode.identify.identity_guard) and associates identities with the tracks every
ASSOCIATE_S; every track event then carries the track's `identity` (docs/mqtt.md).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from edgenode.config import Config
from edgenode.daemon.remoteid import FrameQueue
from edgenode.daemon.sensing import ReadingQueue, join_or_report
from edgenode.detect.acoustic import AcousticDetector
from edgenode.detect.acoustic_params import AcousticParams
from edgenode.detect.plots import RadarPlotter
from edgenode.detect.regions import Region
from edgenode.detect.tracker import Tracker
from edgenode.health import Health, LoopThread
from edgenode.identify.identity_guard import RemoteIdGuard
from hal.radar import points_digest

log = logging.getLogger(__name__)
IDLE_TICK_S = 0.5  # tracks age (coast, end) even when no reading arrives
ACOUSTIC_RANGE_M = 150.0
ASSOCIATE_S = 0.5  # Remote ID <-> tracks at most this often (events go out at <= 2 Hz)


def describe_event(event: dict[str, Any]) -> str:
    """One line a person can read: `new 01J.. drone 0.82 bearing 123.4 deg range 250 m`."""
    state = event.get("after") or event.get("before") or {}
    best = (state.get("classification") or [{"type": "unknown", "confidence": 0.0}])[0]
    text = f"{event['type']} {event['object_id']} {best['type']} {best['confidence']:.2f}"
    if state.get("azimuth_deg"):
        text += f" bearing {state['azimuth_deg']['value']:.1f} deg"
    if state.get("range_m"):
        text += f" range {state['range_m']['value']:.0f} m"
    return text + f" ({'+'.join(state.get('sensors', []))})"


class DetectionStage:
    name = "detect"

    def __init__(self, config: Config, health: Health, readings: ReadingQueue,
                 publish: Callable[[list[dict[str, Any]]], None],
                 geometry_m: Any = None,
                 remoteid: tuple[FrameQueue, RemoteIdGuard] | None = None):
        """`geometry_m`: microphone positions (M, 3) in the order the acoustic stage delivers.
        `remoteid`: the receivers' frame queue and the guard that owns the identity store."""
        self._remoteid = remoteid
        self._associated_at = 0.0
        self._expired_at = 0.0
        node = config.node
        self._readings, self._publish = readings, publish
        self.plotter = None
        if config.radar is not None:
            self.plotter = RadarPlotter(boresight_azimuth_deg=config.radar.boresight_azimuth_deg,
                                        mount_height_m=config.radar.mount_height_m,
                                        mast_heading_deg=node.mast_heading_deg)
        self.detector = None
        if config.acoustic is not None:
            channels = len(geometry_m) if geometry_m is not None else config.acoustic.channels
            self.detector = AcousticDetector(config.acoustic.sample_rate_hz, channels,
                                             positions_m=geometry_m,
                                             heading_deg=node.mast_heading_deg,
                                             params=AcousticParams(
                                                 second_drone=config.acoustic.second_drone))
        self.tracker = Tracker(
            latitude_deg=node.latitude_deg, longitude_deg=node.longitude_deg,
            altitude_m=node.altitude_m, mast_heading_deg=node.mast_heading_deg,
            mount_height_m=config.radar.mount_height_m if config.radar else 3.0,
            # Beyond this a drone's harmonics are not expected to be heard, so their absence
            # does not count against "drone" (the acoustic detection range on the twin).
            acoustic_range_m=ACOUSTIC_RANGE_M if config.acoustic else None)
        self.last_acoustic: Any = None
        self.recent_bearings: deque[tuple[float, float, float]] = deque(maxlen=50)
        # (frame number, digest of its points) of recent radar frames, for end-to-end checks
        self.frame_digests: deque[tuple[int, str]] = deque(maxlen=2000)
        self.frames = 0
        self.blocks = 0
        self._next_block: int | None = None  # the audio block index expected next
        self._stop = threading.Event()
        self.health = health.register(self.name, deadline_s=5.0)
        self._thread = LoopThread(self.health, self._step, self._stop)
        self._last_tick = time.monotonic()
        # Start regions handed over by another thread (the SAPIENT client): (generation,
        # regions), applied by this thread, which owns the tracker.
        self._regions_in: tuple[int, tuple[Region, ...]] = (0, ())
        self._regions_applied = 0
        self._regions_lock = threading.Lock()

    def set_regions(self, regions: tuple[Region, ...]) -> None:
        """Where new tracks may start (edgenode.detect.regions; () for anywhere): applied by
        the detection thread at its next step. Called from any thread."""
        with self._regions_lock:
            self._regions_in = (self._regions_in[0] + 1, tuple(regions))

    def _step(self) -> None:
        generation, regions = self._regions_in
        if generation != self._regions_applied:
            self.tracker.set_regions(regions)
            self._regions_applied = generation
            log.info("detect: new tracks start %s", "anywhere" if not regions else
                     f"only where {len(regions)} region(s) allow")
        item = self._readings.get(timeout_s=IDLE_TICK_S)
        events: list[dict[str, Any]] = []
        if item is not None:
            kind, reading = item
            if kind == "radar" and self.plotter is not None:
                self.frames += 1
                self.frame_digests.append((reading.frame_number, points_digest(reading.points)))
                plots = self.plotter.process(reading)
                events = self.tracker.update(reading.t_capture, plots, [])
            elif kind == "audio" and self.detector is not None:
                block, samples = reading
                self.blocks += 1
                if self._next_block is not None and block.index != self._next_block:
                    self.detector.hole()  # the audio port or the reading queue lost blocks
                self._next_block = block.index + 1
                for result in self.detector.process(samples, block.t_capture):
                    self.last_acoustic = result
                    self.recent_bearings.extend(
                        (b.t, b.azimuth_deg, b.error_deg) for b in result.bearings)
                    events += self.tracker.update(result.t, [], list(result.bearings))
        elif time.monotonic() - self._last_tick > IDLE_TICK_S:
            events = self.tracker.update(time.time(), [], [])
            self._last_tick = time.monotonic()
        if self._remoteid is not None:
            self._identities(events)
        for event in events:
            if event["type"] != "update":
                log.info("track %s", describe_event(event))
        if events:  # one reading's events in one outbox transaction
            self._publish(events)
        self.health.set("ok")

    def _identities(self, events: list[dict[str, Any]]) -> None:
        """File the frames heard, re-associate when due, and put each track's identity on its
        event (the state object is the one the next event's `before` shows)."""
        if self._remoteid is None:
            return
        frames, guard = self._remoteid
        for frame in frames.drain():
            guard.feed(frame)
        now = time.time()
        if now - self._expired_at >= 1.0:
            guard.expire(now)
            self._expired_at = now
        if now - self._associated_at >= ASSOCIATE_S:
            guard.associate(self.tracker.tracks(), now)
            self._associated_at = now
        for event in events:
            if event.get("after") is not None:
                event["after"]["identity"] = guard.identity(event["object_id"], now)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        join_or_report(self._thread, 3.0, self.name)
