"""Fused tracks (edgenode/<site>/central/tracks, from `edgenode central`) for `edgenode ctl`:
the watch's fused table, and `engage --fused ID` resolved to one node's own track."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from edgenode.link.mqtt import InboundMessage, MqttClient


def tracks_filter(site: str | None) -> str:
    return f"edgenode/{site or '+'}/central/tracks"


class FusedBoard:
    """The live fused tracks by id, fed on paho's thread (`end` removes one)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tracks: dict[str, dict[str, Any]] = {}
        self.seen = threading.Condition(self.lock)

    def __call__(self, msg: InboundMessage) -> None:
        try:
            track = json.loads(msg.payload)
            fid = track["fused_id"]
        except (ValueError, KeyError, TypeError):
            return
        with self.lock:
            old = self.tracks.get(fid)
            if old is not None and old.get("t", 0) > track.get("t", 0):
                return  # two central instances publish: order by t, not by arrival
            if track.get("type") == "end":
                self.tracks.pop(fid, None)
            else:
                self.tracks[fid] = track
            self.seen.notify_all()

    def rows(self) -> list[str]:
        with self.lock:
            tracks = sorted(self.tracks.values(), key=lambda t: (t["site"], t["fused_id"]))
        return [describe(t) for t in tracks]


def describe(track: dict[str, Any]) -> str:
    members = ",".join(f"{m['node']}:{m['object_id'][-6:]}" for m in track.get("members", []))
    pos = track.get("position")
    line = track.get("bearing_line")
    if pos:
        where = (f"{pos['latitude_deg']:.5f},{pos['longitude_deg']:.5f} "
                 f"±{pos['ellipse']['semi_major_m']:.0f}x{pos['ellipse']['semi_minor_m']:.0f} m")
    elif line:
        where = f"bearing {line['bearing_deg']:.0f}° from {line['node']} (no position)"
    else:
        where = "-"
    return f"{track['site']:<12}{track['fused_id'][-8:]:<10}{where:<44}{members}"


HEADER = f"{'SITE':<12}{'FUSED':<10}{'POSITION / LINE':<44}NODES:TRACKS"


def resolve(client: MqttClient, site: str | None, fused_id: str,
            wait_s: float) -> tuple[str, str, str]:
    """(site, node, node's track id) for the fused track: the node central names best placed
    to engage. The node checks the command itself as always."""
    board = FusedBoard()
    client.subscribe(tracks_filter(site), board)
    deadline = time.monotonic() + wait_s
    with board.lock:
        while not (match := [t for fid, t in board.tracks.items()
                             if fid == fused_id or fid.endswith(fused_id)]):
            left = deadline - time.monotonic()
            if left <= 0:
                raise LookupError(f"fused track {fused_id!r}: not published within {wait_s} s "
                                  "(is `edgenode central` running, is the track live?)")
            board.seen.wait(left)
    if len(match) > 1:
        raise LookupError(f"fused track {fused_id!r} is ambiguous: give more of the id")
    track = match[0]
    node = track.get("engage_node")
    own = [m["object_id"] for m in track.get("members", []) if m["node"] == node]
    if not node or not own:
        raise LookupError(f"fused track {track['fused_id']}: no contributing node to engage")
    return track["site"], node, own[0]
