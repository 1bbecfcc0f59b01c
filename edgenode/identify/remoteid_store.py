"""The Remote ID identity store: the latest state per transmitter, bounded.

Pure: fed decoded frames (edgenode.identify.remoteid) with their receive time, transmitter
address and transport; no clock of its own (`now` comes from the caller), no I/O.

An identity is keyed by its UAS ID. Legacy Bluetooth sends one message per advertisement, so a
Location often arrives without a Basic ID: it is filed under the transmitter address that last
sent a Basic ID, or under "src:<address>" until one does, and merged into the UAS ID's record
when the Basic ID comes.

What feeds the state: only well-formed frames (`ok`) whose radio check passed. A malformed or
cut frame is counted against the identity it can be tied to (it is evidence for the honesty
verdict) and changes nothing else; a frame that failed its CRC is radio noise, counted apart.

Bounded: at most `max_identities` records (and four times as many address links). Records are
kept in order of their last update, so the first one is the oldest, and stale records (nothing
heard for `stale_after_s`) are at the front: a flood of fake IDs evicts the oldest and stale
first, in O(1) per frame.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from edgenode.identify.remoteid import Decoded

HISTORY = 32  # position reports kept per identity, for the honesty checks
BAD_HISTORY = 16
MAX_SOURCES = 8


@dataclass(slots=True)
class Sighting:
    """One believable position report."""

    t: float  # receive time, s (the receiver's clock)
    lat: float
    lon: float
    altitude_m: float | None
    timestamp_s: float | None  # the drone's own time stamp, seconds after the hour
    speed_mps: float | None
    accuracy_m: float | None
    src: str | None  # transmitter address it came from


@dataclass(eq=False)  # one record per transmitter: equal only to itself
class Identity:
    key: str
    uas_id: str | None = None
    id_type: int | None = None
    ua_type: int | None = None
    operator_id: str | None = None
    description: str | None = None
    operator_lat: float | None = None
    operator_lon: float | None = None
    first_seen_t: float = 0.0
    last_seen_t: float = 0.0
    location: dict[str, Any] | None = None  # the latest location message
    sightings: deque[Sighting] = field(default_factory=lambda: deque(maxlen=HISTORY))
    sources: dict[str, float] = field(default_factory=dict)  # address -> last heard
    transports: set[str] = field(default_factory=set)
    frames_ok: int = 0
    frames_bad: int = 0  # malformed or cut
    frames_damaged: int = 0  # radio check (CRC) failed
    bad: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=BAD_HISTORY))
    warnings: deque[tuple[float, str]] = field(
        default_factory=lambda: deque(maxlen=BAD_HISTORY))

    def summary(self) -> dict[str, Any]:
        """What an event or a status page shows of this identity."""
        last = self.sightings[-1] if self.sightings else None
        return {"uas_id": self.uas_id, "id_type": self.id_type, "ua_type": self.ua_type,
                "operator_id": self.operator_id, "description": self.description,
                "operator_lat": self.operator_lat, "operator_lon": self.operator_lon,
                "lat": last.lat if last else None, "lon": last.lon if last else None,
                "altitude_m": last.altitude_m if last else None,
                "last_seen_t": self.last_seen_t, "transports": sorted(self.transports),
                "frames_ok": self.frames_ok, "frames_bad": self.frames_bad}


class RemoteIdStore:
    """Latest state per transmitter; see the module docstring for what feeds it."""

    def __init__(self, *, stale_after_s: float = 10.0, max_identities: int = 2000) -> None:
        if stale_after_s <= 0 or max_identities < 1:
            raise ValueError("stale_after_s must be > 0 and max_identities >= 1")
        self.stale_after_s = stale_after_s
        self.max_identities = max_identities
        self._ids: OrderedDict[str, Identity] = OrderedDict()
        self._by_src: OrderedDict[str, str] = OrderedDict()  # address -> identity key
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._ids)

    def get(self, key: str) -> Identity | None:
        return self._ids.get(key)

    def active(self, now: float) -> list[Identity]:
        """Identities heard within stale_after_s of `now`, newest last."""
        return [i for i in self._ids.values() if now - i.last_seen_t <= self.stale_after_s]

    def expire(self, now: float) -> int:
        """Drop stale identities; how many went."""
        gone = 0
        while self._ids:
            key, ident = next(iter(self._ids.items()))
            if now - ident.last_seen_t <= self.stale_after_s:
                break
            self._drop(key)
            gone += 1
        return gone

    def update(self, t: float, decoded: Decoded, *, src: str | None = None,
               transport: str = "bluetooth", frame_error: str | None = None,
               crc_ok: bool = True) -> Identity | None:
        """File one received frame; the identity it was filed under (None when it could not
        be tied to any)."""
        ok = decoded.ok and frame_error is None
        uas_id = _uas_id(decoded) if ok and crc_ok else None
        key = self._key(uas_id, src)
        if key is None:
            if not ok or not crc_ok:
                key = self._key(_uas_id(decoded), None)  # tie a bad frame to its claimed ID
            if key is None:
                return None
        ident = self._touch(key, t, src, uas_id)
        ident.transports.add(transport)
        if not crc_ok:
            ident.frames_damaged += 1
            return ident
        if not ok:
            ident.frames_bad += 1
            ident.bad.append((t, frame_error or decoded.reason or "malformed"))
            return ident
        ident.frames_ok += 1
        for w in decoded.warnings:
            ident.warnings.append((t, w))
        for m in decoded.messages:
            _apply(ident, m, t, src)
        return ident

    # ---------------------------------------------------------------- internals

    def _key(self, uas_id: str | None, src: str | None) -> str | None:
        if uas_id:
            return uas_id
        if src is None:
            return None
        return self._by_src.get(src, f"src:{src}")

    def _touch(self, key: str, t: float, src: str | None, uas_id: str | None) -> Identity:
        ident = self._ids.get(key)
        if ident is None:
            claimed = None if key.startswith("src:") else key
            ident = Identity(key=key, uas_id=uas_id or claimed, first_seen_t=t)
            self._ids[key] = ident
            while len(self._ids) > self.max_identities:
                self._drop(next(iter(self._ids)))
                self.evicted += 1
        else:
            self._ids.move_to_end(key)
        ident.last_seen_t = max(ident.last_seen_t, t)
        if src is not None and uas_id and f"src:{src}" in self._ids:
            self._merge_src_record(ident, src)
        if src is not None:
            ident.sources[src] = t
            if len(ident.sources) > MAX_SOURCES:
                del ident.sources[min(ident.sources, key=ident.sources.__getitem__)]
            if uas_id:
                self._by_src[src] = key
                self._by_src.move_to_end(src)
                while len(self._by_src) > 4 * self.max_identities:
                    self._by_src.popitem(last=False)
        return ident

    def _merge_src_record(self, ident: Identity, src: str) -> None:
        """Reports filed under the bare address before its Basic ID arrived join the UAS ID."""
        early = self._ids.pop(f"src:{src}", None)
        if early is None:
            return
        ident.first_seen_t = min(ident.first_seen_t, early.first_seen_t)
        ident.sightings.extend(early.sightings)
        ident.bad.extend(early.bad)
        ident.warnings.extend(early.warnings)
        ident.frames_ok += early.frames_ok
        ident.frames_bad += early.frames_bad
        ident.frames_damaged += early.frames_damaged
        ident.location = ident.location or early.location
        ident.transports |= early.transports
        for attr in ("operator_id", "description", "operator_lat", "operator_lon"):
            if getattr(ident, attr) is None:
                setattr(ident, attr, getattr(early, attr))

    def _drop(self, key: str) -> None:
        ident = self._ids.pop(key)
        for src in ident.sources:
            if self._by_src.get(src) == key:
                del self._by_src[src]


def _uas_id(decoded: Decoded) -> str | None:
    ids = [m for m in decoded.messages if m["type"] == "basic_id" and m["uas_id"]]
    if not ids:
        return None
    # a pack may carry two: prefer the serial number (type 1) as the stable key
    ids.sort(key=lambda m: m["id_type"] != 1)
    return str(ids[0]["uas_id"])


def _apply(ident: Identity, m: dict[str, Any], t: float, src: str | None) -> None:
    kind = m["type"]
    if kind == "basic_id" and m["uas_id"] == ident.uas_id:
        ident.id_type, ident.ua_type = m["id_type"], m["ua_type"]
    elif kind == "location":
        ident.location = m
        if m["lat"] is not None:
            altitude = m["altitude_geo_m"] if m["altitude_geo_m"] is not None \
                else m["altitude_baro_m"]
            ident.sightings.append(Sighting(t, m["lat"], m["lon"], altitude, m["timestamp_s"],
                                            m["speed_horizontal_mps"],
                                            m["horizontal_accuracy_m"], src))
    elif kind == "system":
        if m["lat"] is not None:
            ident.operator_lat, ident.operator_lon = m["lat"], m["lon"]
    elif kind == "operator_id":
        ident.operator_id = m["operator_id"] or ident.operator_id
    elif kind == "self_id":
        ident.description = m["description"] or ident.description
