"""Track states and the node's state as CoT events (XML, or TAK Protocol v1 protobuf).

Pure: a state dict in, bytes out. The conventions (see docs/cot.md):
- type: MIL-STD-2525 atoms as TAK draws them; a drone is `a-<affiliation>-A-M-H-Q` (rotary-wing
  UAV), a manned aircraft `a-n-A-C`, a bird or an unknown flyer `a-u-A`. Affiliation from the
  track's identity where it has one: friend (an allow-listed, trusted Remote ID), hostile
  (spoofed), else unknown.
- how `m-f` (machine, fused from the node's sensors); the node's marker `h-e` (its position is
  the installer's).
- A track without a position (one node's acoustic bearing) is a range-and-bearing line from the
  mast (`u-rb-a`, as ATAK's R&B tool writes it) rather than an invented point.
- A drone whose Remote ID System message gave its operator's position brings a second event,
  its pilot as a ground point (`a-u-G`, as DroneCOT sends Remote ID operators), linked to it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from xml.sax.saxutils import escape, quoteattr

UNKNOWN_ERROR_M = 9999999.0  # CoT's "not known" for ce/le
BEARING_LINE_M = 1500.0  # drawn length of a bearing-only track's line
CLASS_TYPES = {  # class -> (affiliation when no identity says otherwise, 2525 air atoms)
    "drone": ("u", "A-M-H-Q"),
    "manned_aircraft": ("n", "A-C"),
    "aircraft": ("n", "A-C"),
    "bird": ("u", "A"),
    "unknown": ("u", "A"),
}
NOT_SENT = frozenset({"clutter", "vehicle"})  # not in the sky: kept off the air picture
VERDICT_AFFILIATION = {"spoofed": "h", "suspect": "u", "silent": "u"}


@dataclass(frozen=True)
class NodeInfo:
    site: str
    node: str
    latitude_deg: float
    longitude_deg: float
    altitude_m: float
    mast_heading_deg: float

    @property
    def uid(self) -> str:
        return f"edgenode-{self.site}-{self.node}"


def cot_time(t: float) -> str:
    d = datetime.fromtimestamp(t, UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def best_class(state: dict[str, Any]) -> tuple[str, float]:
    ranked = state.get("classification") or [{"type": "unknown", "confidence": 0.0}]
    return str(ranked[0]["type"]), float(ranked[0]["confidence"])


def affiliation(state: dict[str, Any], default: str) -> str:
    identity = state.get("identity") or {}
    verdict = identity.get("verdict")
    if verdict == "trusted" and identity.get("allowed"):
        return "f"
    return VERDICT_AFFILIATION.get(verdict, default)


def track_uid(node: NodeInfo, object_id: str) -> str:
    return f"{node.uid}-{object_id}"


@dataclass
class CotEvent:
    """One event before it is written as XML or protobuf. `detail_xml` holds the detail
    elements TAK's protobuf has no field for (it carries them as xmlDetail)."""

    uid: str
    type: str
    how: str
    time: float
    stale: float
    lat: float
    lon: float
    hae: float
    ce: float
    le: float
    callsign: str
    course_speed: tuple[float, float] | None = None
    detail_xml: list[str] = field(default_factory=list)

    def xml(self) -> bytes:
        t = cot_time(self.time)
        parts = [
            f'<?xml version="1.0" encoding="UTF-8"?><event version="2.0" '
            f'uid={quoteattr(self.uid)} type="{self.type}" how="{self.how}" time="{t}" '
            f'start="{t}" stale="{cot_time(self.stale)}">',
            f'<point lat="{self.lat:.7f}" lon="{self.lon:.7f}" hae="{self.hae:.1f}" '
            f'ce="{self.ce:.1f}" le="{self.le:.1f}"/>',
            f"<detail><contact callsign={quoteattr(self.callsign)}/>"]
        if self.course_speed is not None:
            parts.append(f'<track course="{self.course_speed[0]:.1f}" '
                         f'speed="{self.course_speed[1]:.2f}"/>')
        parts += self.detail_xml
        parts.append("</detail></event>")
        return "".join(parts).encode()

    def protobuf(self, *, stream: bool) -> bytes:
        """TAK Protocol version 1: the stream framing (a TAK server: 0xbf, varint length) or
        the mesh header (UDP: 0xbf 0x01 0xbf)."""
        from takproto.constants import TAKProtoVer
        from takproto.functions import msg2proto
        from takproto.proto import TakMessage

        message = TakMessage()
        cot = message.cotEvent
        cot.type, cot.uid, cot.how = self.type, self.uid, self.how
        cot.sendTime = cot.startTime = int(self.time * 1000)
        cot.staleTime = int(self.stale * 1000)
        cot.lat, cot.lon, cot.hae, cot.ce, cot.le = (self.lat, self.lon, self.hae, self.ce,
                                                     self.le)
        cot.detail.contact.callsign = self.callsign
        if self.course_speed is not None:
            cot.detail.track.course, cot.detail.track.speed = self.course_speed
        cot.detail.xmlDetail = "".join(self.detail_xml)
        version = TAKProtoVer.STREAM if stream else TAKProtoVer.MESH
        return bytes(msg2proto(message, version))


def track_event(state: dict[str, Any], node: NodeInfo, now: float,
                stale: float) -> CotEvent | None:
    """One track state as a CoT event; None for what is not sent (clutter, ground vehicles).
    `stale` <= `now` takes the track off the map (its end)."""
    cls, confidence = best_class(state)
    if cls in NOT_SENT:
        return None
    default, atoms = CLASS_TYPES.get(cls, ("u", "A"))
    sensors = "+".join(state.get("sensors") or []) or "none"
    remarks = (f"{cls} {confidence:.0%}, {state.get('status', '')}, by {sensors} of node "
               f"{node.site}/{node.node}")
    common = {"uid": track_uid(node, state["object_id"]), "how": "m-f", "time": now,
              "stale": stale, "callsign": f"{cls} {state['object_id'][-6:]}"}
    location = state.get("location")
    if location:
        error = float(location.get("error_m") or UNKNOWN_ERROR_M)
        velocity = state.get("velocity_enu_mps")
        course_speed = None
        if velocity:
            course_speed = (math.degrees(math.atan2(velocity["east"], velocity["north"])) % 360.0,
                            math.hypot(velocity["east"], velocity["north"]))
        event = CotEvent(type=f"a-{affiliation(state, default)}-{atoms}",
                         lat=location["latitude_deg"], lon=location["longitude_deg"],
                         hae=location["altitude_m"], ce=error, le=error,
                         course_speed=course_speed, **common)
    else:
        azimuth = state["azimuth_deg"]
        elevation = (state.get("elevation_deg") or {}).get("value", 0.0)
        event = CotEvent(type="u-rb-a", lat=node.latitude_deg, lon=node.longitude_deg,
                         hae=node.altitude_m, ce=UNKNOWN_ERROR_M, le=UNKNOWN_ERROR_M, **common)
        event.detail_xml += [
            f'<range value="{BEARING_LINE_M:.1f}"/>', f'<bearing value="{azimuth["value"]:.2f}"/>',
            f'<inclination value="{elevation:.2f}"/>',
            # degrees, true north (ATAK's R&B units); metres
            '<bearingUnits value="0"/><northRef value="0"/><rangeUnits value="1"/>']
        remarks += f"; bearing {azimuth['value']:.1f} +- {azimuth['error']:.1f} deg, no range"
    event.detail_xml += [f'<link uid={quoteattr(node.uid)} type="a-f-G-E-S" relation="p-p"/>',
                         f"<remarks>{escape(remarks)}</remarks>"]
    return event


def node_marker(node: NodeInfo, status: str, effector: str | None, now: float,
                stale: float) -> CotEvent:
    """The node as a friendly ground sensor, with its state in the remarks."""
    remarks = f"edgenode {node.site}/{node.node}: {status}; effector {effector or 'unknown'}"
    return CotEvent(uid=node.uid, type="a-f-G-E-S", how="h-e", time=now, stale=stale,
                    lat=node.latitude_deg, lon=node.longitude_deg, hae=node.altitude_m,
                    ce=5.0, le=5.0, callsign=f"{node.site}/{node.node}",
                    course_speed=(node.mast_heading_deg, 0.0),
                    detail_xml=[f"<remarks>{escape(remarks)}</remarks>"])


def pilot_marker(state: dict[str, Any], drone: CotEvent, node: NodeInfo) -> CotEvent | None:
    """The drone's pilot as a ground point at the operator position its Remote ID System message
    gave; None where none was broadcast (never a guess). Times and stale are the drone event's;
    the uid is the drone's plus `-pilot`; `<link>` names the drone's event (`p-p`). A claimed
    position, not a measured one: friend only with the drone, otherwise unknown (never hostile:
    a spoofer may name anyone's position)."""
    identity = state.get("identity") or {}
    position = identity.get("operator_position")
    if not position:
        return None
    verdict = identity.get("verdict") or "unjudged"
    remarks = (f"pilot of UAS ID {identity.get('uas_id') or 'unknown'}, operator ID "
               f"{identity.get('operator_id') or 'not broadcast'}: the operator position its "
               f"Remote ID broadcasts ({verdict}), not measured; node {node.site}/{node.node}")
    if verdict == "spoofed":
        remarks += "; the broadcast is spoofed, this position may be false"
    aff = "f" if affiliation(state, "u") == "f" else "u"
    return CotEvent(uid=f"{drone.uid}-pilot", type=f"a-{aff}-G", how="m-g", time=drone.time,
                    stale=drone.stale, lat=position["latitude_deg"],
                    lon=position["longitude_deg"], hae=UNKNOWN_ERROR_M, ce=UNKNOWN_ERROR_M,
                    le=UNKNOWN_ERROR_M, callsign=f"pilot {state['object_id'][-6:]}",
                    detail_xml=[f'<link uid={quoteattr(drone.uid)} type="{drone.type}" '
                                'relation="p-p"/>', f"<remarks>{escape(remarks)}</remarks>"])


def withdrawn(event: CotEvent, now: float) -> CotEvent:
    """The same marker, stale now: a TAK client takes it off the map."""
    return replace(event, time=now, stale=now)
