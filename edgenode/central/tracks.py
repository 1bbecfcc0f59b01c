"""The fused-track payload published on `edgenode/<site>/central/tracks` (schema
edgenode/central/schemas/central_tracks.json, docs/fleet.md)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from edgenode.central.fusion import STALE_S, FusedTrack, Observation
from edgenode.central.geometry import LocalFrame

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "central_tracks.json"


@cache
def load_schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def tracks_topic(site: str) -> str:
    return f"edgenode/{site}/central/tracks"


def contributing(track: FusedTrack, members: list[Observation]) -> list[Observation]:
    """The members that steer the fix: heard within STALE_S of the track's time. A node
    track that falls silent (the node coasts it: a far drone's sound drops out for seconds)
    keeps its place in the fused track but is no member of this message; when none is
    heard, the freshest stands for the track (its bearing line)."""
    live = [o for o in members if track.t - o.t <= STALE_S]
    return live or sorted(members, key=lambda o: o.t, reverse=True)[:1]


def fused_payload(site: str, track: FusedTrack, members: list[Observation],
                  frame: LocalFrame, instance: str) -> dict[str, Any]:
    """`members`: the latest observation of each node track of the fused track; the message
    names those that contribute (`contributing`)."""
    members = contributing(track, members)
    kind = "end" if track.ended else ("update" if track.published else "new")
    position = None
    engage_node = None
    if track.fix is not None:
        lat, lon = frame.to_latlon(track.fix.east, track.fix.north)
        position = {"datum": "WGS84", "latitude_deg": round(lat, 7),
                    "longitude_deg": round(lon, 7), "error_m": round(track.fix.error_m(), 2),
                    "ellipse": {"semi_major_m": round(track.fix.semi_major_m, 2),
                                "semi_minor_m": round(track.fix.semi_minor_m, 2),
                                "orientation_deg": round(track.fix.orientation_deg, 1) % 180.0}}
        # Best placed to engage: the nearest contributing node (a jammer's reach falls with
        # distance); the node still checks everything itself.
        nearest = min(members, key=lambda o: (o.east - track.fix.east) ** 2
                      + (o.north - track.fix.north) ** 2, default=None)
        engage_node = nearest.node if nearest else None
    bearing_line = None
    if track.fix is None and members:
        o = members[0]
        lat, lon = frame.to_latlon(o.east, o.north)
        bearing_line = {"node": o.node, "latitude_deg": round(lat, 7),
                        "longitude_deg": round(lon, 7), "bearing_deg": round(o.bearing_deg, 2),
                        "error_deg": round(o.bearing_err_deg, 2)}
        engage_node = o.node
    return {
        "v": 1, "site": site, "t": round(track.t, 6), "type": kind, "fused_id": track.id,
        "first_seen": round(track.first_seen, 6), "position": position,
        "bearing_line": bearing_line,
        "members": [{"node": o.node, "object_id": o.object_id, "t": round(o.t, 6),
                     "bearing_deg": round(o.bearing_deg, 2),
                     "range_m": None if o.range_m is None else round(o.range_m, 1)}
                    for o in members],
        "engage_node": engage_node, "instance": instance,
    }
