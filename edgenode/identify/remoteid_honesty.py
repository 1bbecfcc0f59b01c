"""Honesty verdicts on Remote ID transmitters: trusted, suspect, spoofed (and silent, for a
track that broadcasts nothing). Pure functions of an Identity (edgenode.identify.remoteid_store)
and, where our sensors see the drone, the bearing (and range) they measure.

A broadcast is not authenticated: nothing in it proves who sent it or where the sender is.
What can be checked is whether it is consistent with itself, with physics and with our own
sensors:
- spoofed: a jump no aircraft can make; one ID heard from two places at once; a claimed
  position that disagrees with the bearing (or range) our sensors measure;
- suspect: malformed or cut packs, impossible values (position out of range, unprintable
  IDs), time stamps that go backwards, a claimed speed beyond the limit, no position at all;
- trusted: none of those, over at least `min_reports` position reports.
Every verdict carries its reasons, in words an operator can act on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise

from edgenode.identify.remoteid_store import Identity, Sighting

TRUSTED, SUSPECT, SPOOFED, SILENT = "trusted", "suspect", "spoofed", "silent"
EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True, slots=True)
class HonestyRules:
    max_speed_mps: float = 70.0  # faster than any small UAS we expect; jumps beyond it lie
    two_places_m: float = 300.0  # one ID, two transmitters, this far apart at once: a copy
    two_places_window_s: float = 2.0
    bearing_tolerance_deg: float = 15.0  # our sensors' bearing error, and then some
    range_tolerance_m: float = 150.0
    bad_window_s: float = 30.0  # malformed packs count against a sender for this long
    min_reports: int = 2


DEFAULT_RULES = HonestyRules()


@dataclass(frozen=True, slots=True)
class Verdict:
    verdict: str  # trusted | suspect | spoofed | silent
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {"verdict": self.verdict, "reasons": list(self.reasons)}


@dataclass(frozen=True, slots=True)
class Measured:
    """Where our sensors see the drone associated with this identity."""

    node_lat: float
    node_lon: float
    bearing_deg: float  # true bearing from the node
    range_m: float | None = None  # when a radar measured it
    t: float | None = None  # when; None: now


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    y = math.sin(dl) * math.cos(p2)
    x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return math.degrees(math.atan2(y, x)) % 360.0


def angle_between_deg(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def silent() -> Verdict:
    """For a track our sensors hold with no Remote ID associated."""
    return Verdict(SILENT, ("our sensors track it; no Remote ID broadcast is associated",))


def judge(ident: Identity | None, now: float, measured: Measured | None = None,
          rules: HonestyRules = DEFAULT_RULES) -> Verdict:
    """The verdict on one transmitter (None: a silent track)."""
    if ident is None:
        return silent()
    spoofed = _jumps(ident.sightings, rules) + _two_places(ident.sightings, rules)
    if measured is not None and ident.sightings:
        spoofed += _against_sensors(ident.sightings[-1], measured, rules)
    suspect = _malformed(ident, now, rules) + _time_backwards(ident.sightings)
    suspect += [w for t, w in ident.warnings if now - t <= rules.bad_window_s][-3:]
    fast = [s.speed_mps for s in ident.sightings
            if s.speed_mps is not None and s.speed_mps > rules.max_speed_mps]
    if fast:
        suspect.append(f"claims a ground speed of {max(fast):.0f} m/s "
                       f"(limit {rules.max_speed_mps:.0f} m/s)")
    if spoofed:
        return Verdict(SPOOFED, tuple(spoofed + suspect))
    if not ident.sightings:
        suspect.append("no position broadcast")
    elif len(ident.sightings) < rules.min_reports:
        suspect.append(f"only {len(ident.sightings)} position report(s) so far")
    if suspect:
        return Verdict(SUSPECT, tuple(suspect))
    reasons = [f"{len(ident.sightings)} consistent position reports over "
               f"{ident.sightings[-1].t - ident.sightings[0].t:.1f} s"]
    if measured is not None:
        reasons.append("claimed position agrees with our sensors' bearing")
    return Verdict(TRUSTED, tuple(reasons))


def _by_src(sightings: Iterable[Sighting]) -> dict[str | None, list[Sighting]]:
    out: dict[str | None, list[Sighting]] = {}
    for s in sightings:
        out.setdefault(s.src, []).append(s)
    return out


def _slack_m(a: Sighting, b: Sighting) -> float:
    return (a.accuracy_m or 30.0) + (b.accuracy_m or 30.0)


def _jumps(sightings: Iterable[Sighting], rules: HonestyRules) -> list[str]:
    """Consecutive reports of one transmitter further apart than any aircraft can fly."""
    for track in _by_src(sightings).values():
        for a, b in pairwise(track):
            dt = b.t - a.t
            d = distance_m(a.lat, a.lon, b.lat, b.lon)
            if d > rules.max_speed_mps * max(dt, 0.0) + _slack_m(a, b):
                speed = d / dt if dt > 0 else math.inf
                return [f"jumped {d:.0f} m in {dt:.1f} s ({speed:.0f} m/s; limit "
                        f"{rules.max_speed_mps:.0f} m/s)"]
    return []


def _two_places(sightings: Iterable[Sighting], rules: HonestyRules) -> list[str]:
    """The same ID from two transmitters, far apart at the same time."""
    by_src = _by_src(sightings)
    if len(by_src) < 2:
        return []
    latest = [track[-1] for track in by_src.values()]
    for i, a in enumerate(latest):
        for b in latest[i + 1:]:
            dt = abs(a.t - b.t)
            if dt > rules.two_places_window_s:
                continue
            d = distance_m(a.lat, a.lon, b.lat, b.lon)
            if d > rules.two_places_m + rules.max_speed_mps * dt + _slack_m(a, b):
                return [f"heard from two places at once: {a.src} and {b.src} report "
                        f"positions {d:.0f} m apart within {dt:.1f} s"]
    return []


def _against_sensors(last: Sighting, m: Measured, rules: HonestyRules) -> list[str]:
    if m.t is not None and abs(m.t - last.t) > 5.0:
        return []  # not the same moment: no comparison
    claimed_range = distance_m(m.node_lat, m.node_lon, last.lat, last.lon)
    slack = last.accuracy_m or 30.0
    out = []
    if claimed_range > slack:  # right over the node any bearing is as good as another
        claimed = bearing_deg(m.node_lat, m.node_lon, last.lat, last.lon)
        allowed = rules.bearing_tolerance_deg + math.degrees(math.atan2(slack, claimed_range))
        off = angle_between_deg(claimed, m.bearing_deg)
        if off > allowed:
            out.append(f"claims a position bearing {claimed:.0f} deg at {claimed_range:.0f} m; "
                       f"our sensors see it at {m.bearing_deg:.0f} deg ({off:.0f} deg apart)")
    if m.range_m is not None:
        gap = abs(claimed_range - m.range_m)
        if gap > rules.range_tolerance_m + slack:
            out.append(f"claims a position {claimed_range:.0f} m away; our radar measures "
                       f"{m.range_m:.0f} m ({gap:.0f} m apart)")
    return out


def _malformed(ident: Identity, now: float, rules: HonestyRules) -> list[str]:
    recent = [(t, why) for t, why in ident.bad if now - t <= rules.bad_window_s]
    if not recent:
        return []
    return [f"{len(recent)} malformed or cut pack(s) in the last {rules.bad_window_s:.0f} s "
            f"(last: {recent[-1][1]})"]


def _time_backwards(sightings: Iterable[Sighting]) -> list[str]:
    """The drone's own time stamps (seconds after the hour) going back between reports of
    one transmitter; a step back of more than half an hour is the hour turning over."""
    for track in _by_src(sightings).values():
        for a, b in pairwise(track):
            if a.timestamp_s is None or b.timestamp_s is None:
                continue
            back = a.timestamp_s - b.timestamp_s
            if 0.05 < back < 1800.0:
                return [f"time stamp went back {back:.1f} s "
                        f"({a.timestamp_s:.1f} -> {b.timestamp_s:.1f} s after the hour)"]
    return []

