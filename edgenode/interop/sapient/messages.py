"""Encoding: the node's config, health and track events as BSI Flex 335 v2.0 messages.

Pure functions, no I/O: the transport (`client.py`) stamps and sends what these build. The
field-by-field contract is docs/sapient.md; the rules a middleware checks are kept here:
locations have x = longitude and y = latitude (WGS84, degrees and metres), bearings are
degrees from true north, ids of reports, objects and alerts are uppercase ULIDs.
"""

from __future__ import annotations

import math
from typing import Any

from edgenode.config import Config
from edgenode.interop.sapient import proto
from edgenode.interop.sapient.proto import (
    Alert,
    DetectionReport,
    Registration,
    SapientMessage,
    StatusReport,
)
from edgenode.ulid import new_ulid

MODE = "default"
# Coverage the node declares: the radar's horizontal field of view and reach (TI IWR6843 and
# the plotter's max_range_m), and the acoustic detector's range (edgenode.daemon.tracking).
RADAR_FOV_DEG, RADAR_RANGE_M = 120.0, 300.0
ACOUSTIC_RANGE_M = 150.0
# The tracker's classes (edgenode.detect.classify.CLASSES) as SAPIENT class names.
CLASS_NAMES = {"drone": "UAV", "bird": "Bird", "aircraft": "Manned Aircraft",
               "vehicle": "Ground Vehicle", "clutter": "Clutter", "unknown": "Unknown"}
# A UAV heard with rotor harmonics is a rotary-wing one; the node cannot tell other kinds.
DRONE_SUBCLASS = "Rotary Wing"
HOVER_SPEED_MPS = 1.0  # as edgenode.detect.classify
BEHAVIOURS = ("Hovering", "Moving")
# Task commands a sensor node honours, with the values it takes.
REPORT_RATE_S = {"DISCRETE_THRESHOLD_LOW": 2.0, "DISCRETE_THRESHOLD_MEDIUM": 1.0,
                 "DISCRETE_THRESHOLD_HIGH": 0.5}
CLASS_THRESHOLD = {"DISCRETE_THRESHOLD_LOW": 0.3, "DISCRETE_THRESHOLD_MEDIUM": 0.5,
                   "DISCRETE_THRESHOLD_HIGH": 0.7}
REQUESTS = ("Registration", "Status")


def enum_name(enum: Any, value: int) -> str:
    """An enum value's name; a value this ICD version does not define (proto3 keeps unknown
    values) is named by its number instead of raising."""
    try:
        return str(enum.Name(value))
    except ValueError:
        return f"unknown value {value}"


def wrap(node_id: str, now_s: float, **content: Any) -> SapientMessage:
    """A SapientMessage from this node with one content field, stamped `now_s`."""
    message = SapientMessage(node_id=node_id, **content)
    message.timestamp.FromNanoseconds(int(now_s * 1e9))
    return message


def _seconds(value: float) -> Registration.Duration:
    return Registration.Duration(units=Registration.TIME_UNITS_SECONDS, value=value)


def _range_bearing_type() -> Registration.LocationType:
    return Registration.LocationType(
        range_bearing_units=proto.RANGE_BEARING_COORDINATE_SYSTEM_DEGREES_M,
        range_bearing_datum=proto.RANGE_BEARING_DATUM_TRUE)


def _location_type() -> Registration.LocationType:
    return Registration.LocationType(location_units=proto.LOCATION_COORDINATE_SYSTEM_LAT_LNG_DEG_M,
                                     location_datum=proto.LOCATION_DATUM_WGS84_E)


def node_types(config: Config) -> list[int]:
    types = []
    if config.radar is not None:
        types.append(Registration.NODE_TYPE_RADAR)
    if config.acoustic is not None:
        types.append(Registration.NODE_TYPE_ACOUSTIC)
    if config.effector.enabled:
        types.append(Registration.NODE_TYPE_JAMMER)
    return types or [Registration.NODE_TYPE_OTHER]


def _detection_definition(location: Registration.LocationType) -> Registration.DetectionDefinition:
    classes = []
    for name in CLASS_NAMES.values():
        cls = Registration.ClassDefinition(type=name, units="probability (0-1)")
        if name == "UAV":
            cls.sub_class.append(Registration.SubClass(type=DRONE_SUBCLASS, level=1,
                                                       units="probability (0-1)"))
        classes.append(cls)
    category = Registration.DETECTION_REPORT_CATEGORY_TRACK
    return Registration.DetectionDefinition(
        location_type=location,
        detection_report=[
            Registration.DetectionReport(category=category, type="status",
                                         units="tentative, confirmed, coasting, ended",
                                         on_change=True),
            Registration.DetectionReport(category=Registration.DETECTION_REPORT_CATEGORY_OBJECT,
                                         type="sensors", units="radar, acoustic"),
            Registration.DetectionReport(category=Registration.DETECTION_REPORT_CATEGORY_SIGNAL,
                                         type="f0", units="Hz")],
        detection_class_definition=[Registration.DetectionClassDefinition(
            confidence_definition=Registration.CONFIDENCE_DEFINITION_MULTI_CLASS,
            class_definition=classes)],
        behaviour_definition=[Registration.BehaviourDefinition(type=b) for b in BEHAVIOURS],
        velocity_type=Registration.VelocityType(
            enu_velocity_units=proto.ENUVelocityUnits(
                east_north_rate_units=proto.SPEED_UNITS_MS, up_rate_units=proto.SPEED_UNITS_MS),
            location_datum=proto.LOCATION_DATUM_WGS84_E),
        geometric_error=Registration.GeometricError(
            type="Standard Deviation", units="degrees (bearing), metres (range, location)",
            variation_type="Reported per detection from the track's covariance"))


def _task_definition(effector_tasks: bool) -> Registration.TaskDefinition:
    threshold_units = "Low, Medium, High"
    # Effector requests are declared only where the node takes them (effector_tasks.py).
    requests = [*REQUESTS, *(("Engage", "Disengage", "Safe") if effector_tasks else ())]
    return Registration.TaskDefinition(
        concurrent_tasks=1,
        region_definition=Registration.RegionDefinition(
            region_type=[Registration.REGION_TYPE_AREA_OF_INTEREST,
                         Registration.REGION_TYPE_IGNORE],
            region_area=[_location_type(), _range_bearing_type()]),
        command=[
            Registration.Command(type=Registration.COMMAND_TYPE_DETECTION_REPORT_RATE,
                                 units=threshold_units, completion_time=_seconds(0)),
            Registration.Command(type=Registration.COMMAND_TYPE_CLASSIFICATION_THRESHOLD,
                                 units=threshold_units, completion_time=_seconds(0)),
            Registration.Command(type=Registration.COMMAND_TYPE_REQUEST,
                                 units=", ".join(requests), completion_time=_seconds(0))])


def registration(config: Config, version: str) -> Registration:
    """The node declared as it is: its sensors (and the jammer, where enabled), one mode, the
    classes it reports, its errors and the tasks it takes."""
    node = config.node
    sapient = config.sapient
    interval = sapient.status_interval_s if sapient else 5.0
    capabilities = []
    if config.radar is not None:
        capabilities.append(Registration.Capability(category="Radar", type="model",
                                                    value=config.radar.model))
    if config.acoustic is not None:
        capabilities.append(Registration.Capability(category="Acoustic",
                                                    type="microphone array",
                                                    value=config.acoustic.geometry))
    effector_tasks = sapient is not None and sapient.effector_tasks
    if config.effector.enabled:
        capabilities.append(Registration.Capability(
            category="Jammer", type="engagement",
            value="SAPIENT tasks within an operator's signed arm" if effector_tasks
            else "operator-signed commands only"))
    mode = Registration.ModeDefinition(
        mode_name=MODE, mode_type=Registration.MODE_TYPE_DEFAULT,
        mode_description="detect, track and classify drones", settle_time=_seconds(0),
        maximum_latency=_seconds(1), scan_type=Registration.SCAN_TYPE_FIXED,
        tracking_type=Registration.TRACKING_TYPE_TRACK,
        detection_definition=[_detection_definition(_range_bearing_type()),
                              _detection_definition(_location_type())],
        task=_task_definition(effector_tasks))
    return Registration(
        node_definition=[Registration.NodeDefinition(node_type=t) for t in node_types(config)],
        icd_version=proto.ICD_VERSION,
        name=f"edgenode {node.site}/{node.id}", short_name=node.id,
        capabilities=capabilities,
        status_definition=Registration.StatusDefinition(
            status_interval=_seconds(interval), location_definition=_location_type(),
            field_of_view_definition=_range_bearing_type(),
            coverage_definition=_range_bearing_type()),
        mode_definition=[mode],
        config_data=[Registration.ConfigurationData(
            manufacturer="edgenode", model=node.hardware, serial_number=node.id,
            software_version=version)])


def node_location(config: Config) -> proto.Location:
    node = config.node
    return proto.Location(x=node.longitude_deg, y=node.latitude_deg, z=node.altitude_m,
                          coordinate_system=proto.LOCATION_COORDINATE_SYSTEM_LAT_LNG_DEG_M,
                          datum=proto.LOCATION_DATUM_WGS84_E)


def _cone(azimuth_deg: float, extent_deg: float, range_m: float) -> proto.LocationOrRangeBearing:
    return proto.LocationOrRangeBearing(range_bearing=proto.RangeBearingCone(
        azimuth=azimuth_deg % 360.0, horizontal_extent=extent_deg, range=range_m,
        coordinate_system=proto.RANGE_BEARING_COORDINATE_SYSTEM_DEGREES_M,
        datum=proto.RANGE_BEARING_DATUM_TRUE))


def system_state(stages: dict[str, dict[str, Any]], selftest: dict[str, Any] | None = None,
                 ) -> tuple[int, list[StatusReport.Status]]:
    """OK / WARNING / ERROR from the node's stages (failed is an error, degraded or starting
    a warning) and its last self-test (a check not ok is a warning), with one Status per part
    or check that is not ok, naming it and its reason."""
    system = StatusReport.SYSTEM_OK
    statuses = []
    faults = [(name, str(stage["state"]), str(stage.get("reason") or ""), stage["state"] ==
               "failed") for name, stage in sorted(stages.items())
              if name != "sapient" and stage["state"] != "ok"]
    # Self-test checks (docs/selftest.md): WARN and FAIL, with their hint.
    faults += [(f"selftest {c['name']}", str(c["result"]), str(c.get("hint") or ""), False)
               for c in (selftest or {}).get("checks", []) if c.get("result") in ("WARN", "FAIL")]
    for name, state, reason, error in faults:
        level = (StatusReport.STATUS_LEVEL_ERROR_STATUS if error
                 else StatusReport.STATUS_LEVEL_WARNING_STATUS)
        system = max(system, StatusReport.SYSTEM_ERROR if error else StatusReport.SYSTEM_WARNING)
        statuses.append(StatusReport.Status(
            status_level=level, status_type=StatusReport.STATUS_TYPE_INTERNAL_FAULT,
            status_value=f"{name}: {state}" + (f" ({reason})" if reason else "")))
    return system, statuses


def status_report(config: Config, system: int, statuses: list[StatusReport.Status], *,
                  new: bool, task_id: str | None) -> StatusReport:
    node = config.node
    report = StatusReport(report_id=new_ulid(), system=system,
                          info=StatusReport.INFO_NEW if new else StatusReport.INFO_UNCHANGED,
                          mode=MODE, node_location=node_location(config), status=statuses)
    if task_id:
        report.active_task_id = task_id
    if config.radar is not None:
        report.field_of_view.CopyFrom(_cone(node.mast_heading_deg
                                            + config.radar.boresight_azimuth_deg,
                                            RADAR_FOV_DEG, RADAR_RANGE_M))
    if config.acoustic is not None:
        report.coverage.append(_cone(node.mast_heading_deg, 360.0, ACOUSTIC_RANGE_M))
    report.status.append(StatusReport.Status(
        status_level=StatusReport.STATUS_LEVEL_INFORMATION_STATUS,
        status_type=StatusReport.STATUS_TYPE_PLATFORM,
        status_value=f"mast heading {node.mast_heading_deg:.1f} deg true (config)"))
    return report


def goodbye(config: Config) -> StatusReport:
    return StatusReport(report_id=new_ulid(), system=StatusReport.SYSTEM_GOODBYE,
                        info=StatusReport.INFO_NEW, mode=MODE,
                        node_location=node_location(config))


def _classification(state: dict[str, Any]) -> list[DetectionReport.DetectionReportClassification]:
    out = []
    acoustic = state.get("acoustic") or {}
    for item in state.get("classification") or []:
        name = CLASS_NAMES.get(str(item["type"]), "Unknown")
        cls = DetectionReport.DetectionReportClassification(
            type=name, confidence=float(item["confidence"]))
        if name == "UAV" and acoustic.get("f0_hz"):
            cls.sub_class.append(DetectionReport.SubClass(
                type=DRONE_SUBCLASS, level=1, confidence=float(acoustic.get("score") or 0.0)))
        out.append(cls)
    return out


def top_class(state: dict[str, Any]) -> tuple[str, float]:
    best = (state.get("classification") or [{"type": "unknown", "confidence": 0.0}])[0]
    return str(best["type"]), float(best["confidence"])


def detection_report(event: dict[str, Any], task_id: str | None = None,
                     ) -> DetectionReport | None:
    """One track event as a DetectionReport: the object id is the track's (a ULID, stable for
    the track's life); None when the event has no position to report."""
    state = event.get("after") or event.get("before") or {}
    azimuth = state.get("azimuth_deg")
    if not azimuth:
        return None
    report = DetectionReport(report_id=new_ulid(), object_id=str(event["object_id"]))
    if task_id:
        report.task_id = task_id
    if event["type"] == "end":
        report.state = "lost"
    location = state.get("location")
    if location:
        error = float(location["error_m"])
        report.location.CopyFrom(proto.Location(
            x=float(location["longitude_deg"]), y=float(location["latitude_deg"]),
            z=float(location["altitude_m"]), x_error=error, y_error=error, z_error=error,
            coordinate_system=proto.LOCATION_COORDINATE_SYSTEM_LAT_LNG_DEG_M,
            datum=proto.LOCATION_DATUM_WGS84_E))
    else:
        rb = proto.RangeBearing(azimuth=float(azimuth["value"]),
                                azimuth_error=float(azimuth["error"]),
                                coordinate_system=proto.RANGE_BEARING_COORDINATE_SYSTEM_DEGREES_M,
                                datum=proto.RANGE_BEARING_DATUM_TRUE)
        if state.get("elevation_deg"):
            rb.elevation = float(state["elevation_deg"]["value"])
            rb.elevation_error = float(state["elevation_deg"]["error"])
        if state.get("range_m"):
            rb.range = float(state["range_m"]["value"])
            rb.range_error = float(state["range_m"]["error"])
        report.range_bearing.CopyFrom(rb)
    # The probability that this is an object and not clutter.
    clutter = sum(float(c["confidence"]) for c in state.get("classification") or []
                  if c["type"] == "clutter")
    report.detection_confidence = max(0.0, min(1.0, 1.0 - clutter))
    report.classification.extend(_classification(state))
    velocity = state.get("velocity_enu_mps")
    if velocity:
        report.enu_velocity.east_rate = float(velocity["east"])
        report.enu_velocity.north_rate = float(velocity["north"])
        report.enu_velocity.up_rate = float(velocity["up"])
        speed = math.sqrt(sum(float(v) ** 2 for v in velocity.values()))
        report.behaviour.append(DetectionReport.Behaviour(
            type="Hovering" if speed < HOVER_SPEED_MPS else "Moving"))
    report.track_info.append(DetectionReport.TrackObjectInfo(type="status",
                                                             value=str(state.get("status"))))
    sensors = state.get("sensors") or []
    if sensors:
        report.object_info.append(DetectionReport.TrackObjectInfo(type="sensors",
                                                                  value=",".join(sensors)))
    if (state.get("acoustic") or {}).get("f0_hz"):
        report.object_info.append(DetectionReport.TrackObjectInfo(
            type="f0", value=f"{state['acoustic']['f0_hz']:.1f}"))
    return report


def alert(description: str, alert_type: int, *, status: int = Alert.ALERT_STATUS_ACTIVE,
          priority: int = Alert.DISCRETE_PRIORITY_MEDIUM,
          report: DetectionReport | None = None, node_id: str | None = None) -> Alert:
    out = Alert(alert_id=new_ulid(), alert_type=alert_type, status=status,
                description=description, priority=priority)
    if report is not None:
        if report.HasField("location"):
            out.location.CopyFrom(report.location)
        else:
            out.range_bearing.CopyFrom(report.range_bearing)
        out.confidence = report.detection_confidence
        if node_id:
            out.associated_detection.add(node_id=node_id, object_id=report.object_id)
    return out
