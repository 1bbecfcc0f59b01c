"""The ADS-B stage: reads the receiver's output into the airspace picture and tells the guard
(and health) whether the feed is alive: connected, and not silent for airspace.feed_silence_s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from edgenode.config.models import AirspaceSection
from edgenode.health import Health, LoopThread
from edgenode.identify.rules import AirspaceGuard
from hal.adsb.feed import AdsbBackend, AdsbFeed

log = logging.getLogger(__name__)
POLL_S = 0.2
EVENTS_EVERY_S = 0.5  # aircraft track events (each track at most 1 Hz: AircraftTracks)


class AdsbStage:
    name = "adsb"

    def __init__(self, section: AirspaceSection, guard: AirspaceGuard, health: Health, *,
                 backend: AdsbBackend | None = None,
                 publish_events: Callable[[list[dict[str, Any]]], None] | None = None):
        if section.adsb_source is None:
            raise ValueError("airspace: the ADS-B stage needs [airspace] adsb_source")
        self.section, self.guard = section, guard
        self.feed = AdsbFeed(section.adsb_source, backend=backend, name="adsb")
        self.health = health.register(self.name, deadline_s=5.0)
        self._stop = threading.Event()
        self._thread = LoopThread(self.health, self._step, self._stop)
        self._ok: bool | None = None
        self._publish = publish_events
        self._events_at = 0.0

    def _step(self) -> None:
        for update in self.feed.poll(POLL_S):
            self.guard.apply(update)
        silent = self.feed.silent_s()
        if silent is None:
            ok, why = False, f"no connection to {self.feed.url}: " + (
                self.feed.last_error or "connecting")
        elif silent > self.section.feed_silence_s:
            ok, why = False, (f"{self.feed.url} silent for {silent:.0f} s "
                              f"(airspace.feed_silence_s {self.section.feed_silence_s:g})")
        else:
            ok, why = True, ""
        self.guard.feed_state(ok, why)
        if ok != self._ok:
            self._ok = ok
            if not ok and self.section.fail_safe:
                log.warning("adsb: feed lost (%s); engagements refused (airspace.fail_safe)",
                            why)
        self.health.set("ok" if ok else "failed", why)
        if self._publish is not None and time.monotonic() - self._events_at >= EVENTS_EVERY_S:
            self._events_at = time.monotonic()
            events = self.guard.track_events()
            if events:
                self._publish(events)

    def counters(self) -> dict[str, Any]:
        return self.feed.stats()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)
        self.feed.close()
