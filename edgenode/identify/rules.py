"""The airspace rules an engagement must pass: the ADS-B feed is alive (fail safe), no manned
aircraft inside the protection volume, and the bearing clear of the no-jam geometry.

`AirspaceGuard` is shared by two threads: the ADS-B stage feeds it (`apply`, `feed_state`) and
the effector asks it (`engage_refusal` for a new engagement, `running_refusal` on every loop
step of a running one). One lock guards the picture; every call is short.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from edgenode.config.models import AirspaceSection
from edgenode.identify.aircraft_tracks import AircraftTracks
from edgenode.identify.airspace import AirspacePicture, Contact, Site, Update
from edgenode.identify.nojam import NoJamGeometry


class AirspaceGuard:
    def __init__(self, section: AirspaceSection, site: Site):
        self.section = section
        self.picture = AirspacePicture(site, radius_m=section.picture_radius_m,
                                       stale_s=section.stale_s,
                                       max_aircraft=section.max_aircraft)
        self.geometry = NoJamGeometry(section, site)
        self.tracks = AircraftTracks()
        self._lock = threading.Lock()
        self._feed_ok = section.adsb_source is None
        self._feed_reason = "not connected yet"
        self._resolve_track: Callable[[str], tuple[float, float | None] | None] | None = None

    def set_track_resolver(
            self, resolve: Callable[[str], tuple[float, float | None] | None]) -> None:
        """track id -> (true bearing deg, height above the site m or None), None if unknown."""
        self._resolve_track = resolve

    def check(self, target: dict[str, Any], running: bool) -> str | None:
        """The effector's airspace check (edgenode.control.effector.AirspaceCheck): `target`
        holds the engage's `bearing_deg` or `track`."""
        if running:
            return self.running_refusal()
        if target.get("track"):
            with self._lock:
                icao = self.tracks.is_aircraft(str(target["track"]))
            if icao is not None:
                return (f"never_engageable: track {target['track']} is the manned aircraft "
                        f"{icao} (ADS-B); no override can engage it")
        bearing, height = target.get("bearing_deg"), None
        if bearing is None and target.get("track") and self._resolve_track is not None:
            found = self._resolve_track(str(target["track"]))
            if found is not None:
                bearing, height = found
        return self.engage_refusal(None if bearing is None else float(bearing), height)

    # -- fed by the ADS-B stage ---------------------------------------------------------
    def apply(self, update: Update) -> None:
        with self._lock:
            self.picture.apply(update)

    def feed_state(self, ok: bool, reason: str = "") -> None:
        with self._lock:
            self._feed_ok, self._feed_reason = ok, reason

    # -- asked by the effector ----------------------------------------------------------
    def engage_refusal(self, bearing_deg: float | None, height_m: float | None = None,
                       now: float | None = None) -> str | None:
        """Why a new engagement towards `bearing_deg` is refused, or None."""
        return self.running_refusal(now) or self.geometry.refusal(bearing_deg, height_m)

    def running_refusal(self, now: float | None = None) -> str | None:
        """Why an engagement must not go on (feed lost, aircraft in the volume), or None."""
        now = time.time() if now is None else now
        with self._lock:
            if not self._feed_ok and self.section.fail_safe:
                return (f"adsb_feed_lost: {self._feed_reason} (airspace.fail_safe refuses "
                        "engagements without the ADS-B picture)")
            inside = self._inside(now)
        if inside:
            c = inside[0]
            who = c.aircraft.callsign or "aircraft"
            height = "height unknown" if c.height_m is None else \
                f"{c.height_m:.0f} m above the site"
            return (f"manned_aircraft: {who} ({c.aircraft.icao}) {c.distance_m / 1000:.1f} km "
                    f"at {c.bearing_deg:.0f} deg, {height}, inside the protection volume "
                    f"({self.section.protection_radius_m / 1000:g} km, "
                    f"{self.section.protection_height_m:g} m)")
        return None

    def _inside(self, now: float) -> list[Contact]:
        s = self.section
        return [c for c in self.picture.contacts(now)
                if c.distance_m <= s.protection_radius_m
                and (c.height_m is None or c.height_m <= s.protection_height_m)]

    def track_events(self, now: float | None = None) -> list[dict[str, Any]]:
        """Track events (class manned_aircraft) for the aircraft in the picture."""
        now = time.time() if now is None else now
        with self._lock:
            return self.tracks.update(self.picture.contacts(now), now)

    # -- health -------------------------------------------------------------------------
    def snapshot(self, now: float | None = None, limit: int = 20) -> dict[str, Any]:
        """For health and the status page: the feed, and the aircraft nearby (nearest first)."""
        now = time.time() if now is None else now
        with self._lock:
            contacts = self.picture.contacts(now)
            inside = {c.aircraft.icao for c in self._inside(now)}
            return {"source": self.section.adsb_source, "feed_ok": self._feed_ok,
                    "feed_reason": "" if self._feed_ok else self._feed_reason,
                    "tracked": len(self.picture),
                    "in_volume": sorted(inside),
                    "aircraft": [{**c.as_dict(), "in_volume": c.aircraft.icao in inside}
                                 for c in contacts[:limit]]}
