"""Remote ID between the detection stage and the effector: the identity store, the latest
association of each track, the allow-list, and the engage rule built on them.

Two threads share a `RemoteIdGuard`: the detection stage feeds it (`feed` per frame,
`associate` once per tracker update, `expire`) and reads the identity for each track event;
the effector asks it (`check`) before an engagement. One lock; every call is short. The store
and fusion stay pure (edgenode.identify.remoteid_store, remoteid_fusion; the remoteid_* modules
import no threading): this is their owner, as rules.py owns the airspace picture.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from edgenode.config.models import RemoteIdSection
from edgenode.identify.remoteid import decode
from edgenode.identify.remoteid_allowlist import AllowEntry, AllowList, engage_allowed
from edgenode.identify.remoteid_fusion import Association, TrackView, associate
from edgenode.identify.remoteid_honesty import (
    TRUSTED,
    HonestyRules,
    angle_between_deg,
    bearing_deg,
    silent,
)
from edgenode.identify.remoteid_store import RemoteIdStore

ALLOW_LISTED = "allow_listed"
# ASTM F3411 UA types (Basic ID) and ID types, for people reading events.
UA_TYPES = ("none", "aeroplane", "multirotor", "gyroplane", "hybrid_lift", "ornithopter",
            "glider", "kite", "free_balloon", "captive_balloon", "airship", "parachute",
            "rocket", "tethered_aircraft", "ground_obstacle", "other")
ID_TYPES = ("none", "serial_number", "caa_registration", "utm_assigned", "specific_session")


def allow_entries(section: RemoteIdSection) -> list[AllowEntry]:
    return [AllowEntry(a.uas_id, a.expires.timestamp(), a.approved_by, a.note)
            for a in section.allow]


class RemoteIdGuard:
    def __init__(self, section: RemoteIdSection, node_lat: float, node_lon: float):
        self.section = section
        self.node_lat, self.node_lon = node_lat, node_lon
        self.rules = HonestyRules(**section.honesty.model_dump())
        self.store = RemoteIdStore(stale_after_s=section.stale_after_s,
                                   max_identities=section.max_identities)
        self.allow = AllowList(allow_entries(section))
        self._by_track: dict[str, Association] = {}
        self._lock = threading.Lock()
        self.frames = 0
        self.frames_bad = 0

    # -- fed by the detection stage -------------------------------------------------------
    def feed(self, frame: Any) -> None:
        """One hal.remoteid.RemoteIdFrame into the store."""
        decoded = decode(frame.payload)
        with self._lock:
            self.frames += 1
            self.frames_bad += not decoded.ok
            self.store.update(frame.t, decoded, src=frame.src, transport=frame.transport,
                              frame_error=frame.error, crc_ok=frame.crc_ok)

    def expire(self, now: float) -> int:
        with self._lock:
            return self.store.expire(now)

    def associate(self, tracks: list[dict[str, Any]], now: float) -> None:
        """Pair the live tracks (track states) with the broadcasts heard; remembered per track
        for the events and the effector until the next call."""
        views = []
        for state in tracks:
            if state.get("status") not in ("confirmed", "coasting"):
                continue
            rng = state.get("range_m")
            views.append(TrackView(state["object_id"], float(state["azimuth_deg"]["value"]),
                                   None if rng is None else float(rng["value"]),
                                   float(state.get("t") or now)))
        with self._lock:
            found = associate(views, self.store.active(now), node_lat=self.node_lat,
                              node_lon=self.node_lon, now=now, rules=self.rules,
                              gate_deg=self.section.gate_deg, gate_m=self.section.gate_m)
            self._by_track = {a.track_id: a for a in found if a.track_id is not None}

    def identity(self, track_id: str, now: float | None = None) -> dict[str, Any]:
        """The `identity` object of a track event (docs/mqtt.md, schema events)."""
        now = time.time() if now is None else now
        with self._lock:
            assoc = self._by_track.get(track_id)
            allowed = assoc is not None and self.allow.allowed(assoc.uas_id, now) is not None
        if assoc is None:
            assoc = Association(track_id, None, silent(), "none")
        ident = assoc.identity or {}
        return {"uas_id": assoc.uas_id,
                "id_type": _name(ID_TYPES, ident.get("id_type")),
                "type": _name(UA_TYPES, ident.get("ua_type")),
                "operator_id": ident.get("operator_id"),
                "operator_position": None if ident.get("operator_lat") is None else {
                    "latitude_deg": round(ident["operator_lat"], 7),
                    "longitude_deg": round(ident["operator_lon"], 7)},
                "verdict": assoc.verdict.verdict, "reasons": list(assoc.verdict.reasons)[:5],
                "allowed": allowed, "how": assoc.how}

    # -- allow-list changes (admin commands, through the daemon) ---------------------------
    def allow_add(self, entry: AllowEntry, now: float) -> None:
        with self._lock:
            self.allow.add(entry, now)

    def allow_remove(self, uas_id: str) -> bool:
        with self._lock:
            return self.allow.remove(uas_id)

    # -- asked by the effector ------------------------------------------------------------
    def check(self, target: dict[str, Any]) -> str | None:
        """Why an engage on `target` (its `track`, or `bearing_deg`) is refused by the
        allow-list, or None. A bearing is refused when a track within the association gate
        of it carries an allow-listed, trusted identity."""
        now = time.time()
        with self._lock:
            if target.get("track"):
                candidates = [self._by_track.get(str(target["track"]))]
            else:
                candidates = list(self._by_track.values())
            for assoc in candidates:
                if assoc is None or assoc.verdict.verdict != TRUSTED:
                    continue
                if not target.get("track") and not self._near(assoc, target):
                    continue
                ok, why = engage_allowed(assoc, self.allow, now)
                if not ok:
                    return f"{ALLOW_LISTED}: {why}"
        return None

    def _near(self, assoc: Association, target: dict[str, Any]) -> bool:
        ident = assoc.identity or {}
        if ident.get("lat") is None or target.get("bearing_deg") is None:
            return False
        claimed = bearing_deg(self.node_lat, self.node_lon, ident["lat"], ident["lon"])
        return angle_between_deg(claimed, float(target["bearing_deg"])) <= self.section.gate_deg

    # -- health ---------------------------------------------------------------------------
    def snapshot(self, now: float | None = None, limit: int = 20) -> dict[str, Any]:
        now = time.time() if now is None else now
        with self._lock:
            active = self.store.active(now)
            return {"identities": len(self.store), "active": len(active),
                    "evicted": self.store.evicted, "frames": self.frames,
                    "frames_bad": self.frames_bad,
                    "allow_list": [e.to_dict() for e in self.allow.entries()][:limit]}


def _name(names: tuple[str, ...], value: int | None) -> str | None:
    if value is None:
        return None
    return names[value] if 0 <= value < len(names) else f"reserved_{value}"
