"""Remote ID onto tracks: which broadcast belongs to which of our tracks, and the verdict on
each. Pure: the caller gives the tracks as our sensors see them (true bearing, range where a
radar measured it) and the identity store's active identities.

Association, in order:
1. by position: a track takes the identity whose claimed position lies closest to its bearing
   (and range, when known), within `gate_deg` (and `gate_m`); nearest pairs first;
2. by elimination: when exactly one track and one recent identity are left over, they are
   paired (a liar claiming to be elsewhere is still the only broadcaster in the air), and the
   verdict then compares its claim with the track;
3. what is left: tracks with no broadcast are `silent`; identities with no track are judged on
   their own broadcasts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgenode.identify.remoteid_honesty import (
    DEFAULT_RULES,
    HonestyRules,
    Measured,
    Verdict,
    angle_between_deg,
    bearing_deg,
    distance_m,
    judge,
    silent,
)
from edgenode.identify.remoteid_store import Identity


@dataclass(frozen=True, slots=True)
class TrackView:
    """What fusion needs of one of our tracks."""

    track_id: str
    bearing_deg: float  # true bearing from the node, clockwise from north
    range_m: float | None = None
    t: float | None = None


@dataclass(frozen=True, slots=True)
class Association:
    track_id: str | None  # None: an identity no track of ours matches
    uas_id: str | None  # None: a silent track
    verdict: Verdict
    how: str  # "position", "elimination", "none"
    identity: dict[str, Any] | None = None  # Identity.summary()

    def to_dict(self) -> dict[str, Any]:
        return {"track_id": self.track_id, "uas_id": self.uas_id, "how": self.how,
                **self.verdict.to_dict(), "identity": self.identity}


def associate(tracks: list[TrackView], identities: list[Identity], *, node_lat: float,
              node_lon: float, now: float, rules: HonestyRules = DEFAULT_RULES,
              gate_deg: float = 20.0, gate_m: float = 300.0, recent_s: float = 3.0
              ) -> list[Association]:
    recent = [i for i in identities if i.sightings and now - i.sightings[-1].t <= recent_s]
    pairs: list[tuple[float, int, int]] = []
    for ti, tr in enumerate(tracks):
        for ii, ident in enumerate(recent):
            last = ident.sightings[-1]
            off = angle_between_deg(bearing_deg(node_lat, node_lon, last.lat, last.lon),
                                    tr.bearing_deg)
            if off > gate_deg:
                continue
            cost = off / gate_deg
            if tr.range_m is not None:
                gap = abs(distance_m(node_lat, node_lon, last.lat, last.lon) - tr.range_m)
                if gap > gate_m:
                    continue
                cost += gap / gate_m
            pairs.append((cost, ti, ii))
    taken_t: dict[int, tuple[int, str]] = {}
    taken_i: set[int] = set()
    for _, ti, ii in sorted(pairs):
        if ti not in taken_t and ii not in taken_i:
            taken_t[ti] = (ii, "position")
            taken_i.add(ii)
    left_t = [ti for ti in range(len(tracks)) if ti not in taken_t]
    left_i = [ii for ii in range(len(recent)) if ii not in taken_i]
    if len(left_t) == 1 and len(left_i) == 1:
        taken_t[left_t[0]] = (left_i[0], "elimination")
        taken_i.add(left_i[0])

    out: list[Association] = []
    for ti, tr in enumerate(tracks):
        if ti not in taken_t:
            out.append(Association(tr.track_id, None, silent(), "none"))
            continue
        ii, how = taken_t[ti]
        ident = recent[ii]
        seen = Measured(node_lat, node_lon, tr.bearing_deg, tr.range_m, tr.t)
        out.append(Association(tr.track_id, ident.uas_id, judge(ident, now, seen, rules), how,
                               ident.summary()))
    unmatched = [ident for ii, ident in enumerate(recent) if ii not in taken_i]
    unmatched += [ident for ident in identities if ident not in recent]  # no recent position
    for ident in unmatched:
        out.append(Association(None, ident.uas_id, judge(ident, now, None, rules), "none",
                               ident.summary()))
    return out
