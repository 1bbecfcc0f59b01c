"""Tasks from the SAPIENT peer: which the node honours, and what they change.

A sensor task changes what this room sends (report rate, the classification threshold below
which a track is not reported, areas of interest and ignore areas), and its areas also gate
where the tracker starts new tracks (through the daemon's detection stage,
edgenode.detect.regions). The MQTT link is untouched and no live track is ended, so a
mis-tasking from the middleware cannot hide a tracked drone from the node's own control room.
Effector tasks (edgenode.interop.sapient.effector_tasks) are refused, "engage requires a
signed operator command", unless `[sapient] effector_tasks = true`; then the effector answers
them (docs/sapient.md). Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from edgenode.detect.regions import IGNORE, INTEREST, Region, state_passes
from edgenode.interop.sapient import messages
from edgenode.interop.sapient.effector_tasks import (  # noqa: F401 (ENGAGE_REFUSED: re-export)
    ENGAGE_REFUSED,
    EffectorRequest,
    effector_request,
)
from edgenode.interop.sapient.proto import Task, TaskAck

THRESHOLD_NAMES = {v: k for k, v in Task.DiscreteThreshold.items()}


@dataclass(frozen=True)
class Settings:
    """What the active sensor task asks of this room's reports."""

    task_id: str | None = None
    report_interval_s: float = 0.0  # 0: every track event (the tracker's own rate)
    class_threshold: float = 0.0  # a track whose top class is below this is not reported
    regions: tuple[Region, ...] = field(default_factory=tuple)

    def admits(self, state: dict[str, Any]) -> bool:
        """Whether a track in `state` is reported. Ignore areas win; with areas of interest,
        only tracks inside one are reported. A track whose position cannot be placed is
        reported: unknown is not the same as outside."""
        if messages.top_class(state)[1] < self.class_threshold:
            return False
        return state_passes(self.regions, state)


@dataclass
class Decision:
    status: int
    reasons: list[str]
    settings: Settings | None = None  # the new settings when accepted
    action: str | None = None  # "register" or "status": a request to answer
    # An effector task for the effector's admission: its answer is the effector's.
    effector: EffectorRequest | None = None


def _reject(*reasons: str) -> Decision:
    return Decision(TaskAck.TASK_STATUS_REJECTED, list(reasons))


def _region(region: Task.Region) -> Region | str:
    kinds = {Task.REGION_TYPE_AREA_OF_INTEREST: INTEREST, Task.REGION_TYPE_IGNORE: IGNORE}
    kind = kinds.get(region.type)
    if kind is None:
        name = messages.enum_name(Task.RegionType, region.type)
        return (f"region {region.region_name!r}: type {name} is not supported (area of "
                "interest and ignore only)")
    area = region.region_area
    if area.HasField("range_bearing"):
        cone = area.range_bearing
        if cone.coordinate_system not in (1, 3):  # degrees with metres or kilometres
            return f"region {region.region_name!r}: range-bearing in radians is not supported"
        if cone.datum != 1:
            return f"region {region.region_name!r}: only a true-north datum is supported"
        scale = 1000.0 if cone.coordinate_system == 3 else 1.0
        extent = cone.horizontal_extent if cone.horizontal_extent > 0 else 360.0
        return Region(kind, cone=(cone.azimuth % 360.0, extent, cone.range * scale))
    if area.HasField("location_list"):
        points = area.location_list.locations
        if len(points) < 3:
            return f"region {region.region_name!r}: a polygon needs at least 3 locations"
        if any(p.coordinate_system != 1 for p in points):
            return (f"region {region.region_name!r}: only latitude/longitude in degrees "
                    "is supported")
        polygon = tuple((p.x, p.y) for p in points)  # x = longitude, y = latitude
        if not all(math.isfinite(v) for xy in polygon for v in xy):
            return f"region {region.region_name!r}: a location is not finite"
        return Region(kind, polygon=polygon)
    return f"region {region.region_name!r}: no area"


def decide(task: Task, current: Settings, *, effector_tasks: bool = False,
           engage_task: str | None = None) -> Decision:
    """The answer to a Task (ACCEPTED or REJECTED with reasons) and what it changes.
    `effector_tasks`: [sapient] effector_tasks; `engage_task`: the id of the engage task last
    accepted (its STOP is a disengage)."""
    if not task.task_id:
        return _reject("the task has no task_id")
    if task.control in (Task.CONTROL_STOP, Task.CONTROL_PAUSE):
        if effector_tasks and engage_task == task.task_id:
            return Decision(TaskAck.TASK_STATUS_ACCEPTED, [],
                            effector=EffectorRequest("disengage", {}))
        if current.task_id == task.task_id:
            return Decision(TaskAck.TASK_STATUS_ACCEPTED, [], settings=Settings())
        return _reject(f"task {task.task_id} is not the active task")
    if task.control != Task.CONTROL_START:
        return _reject(f"control {messages.enum_name(Task.Control, task.control)} is not supported")
    effector = effector_request(task, effector_tasks)
    if isinstance(effector, str):
        return _reject(effector)
    if effector is not None:
        return Decision(TaskAck.TASK_STATUS_ACCEPTED, [], effector=effector)
    new = Settings(task_id=task.task_id, report_interval_s=current.report_interval_s,
                   class_threshold=current.class_threshold)
    action = None
    if task.HasField("command"):
        command = task.command
        kind = command.WhichOneof("command")
        if kind == "request":
            if command.request not in messages.REQUESTS:
                return _reject(f"request {command.request!r} is not supported (supported: "
                               f"{', '.join(messages.REQUESTS)})")
            action = command.request.lower()
        elif kind == "detection_report_rate":
            name = THRESHOLD_NAMES.get(command.detection_report_rate)
            if name not in messages.REPORT_RATE_S:
                return _reject("detection_report_rate must be LOW, MEDIUM or HIGH")
            new = Settings(new.task_id, messages.REPORT_RATE_S[name], new.class_threshold)
        elif kind == "classification_threshold":
            name = THRESHOLD_NAMES.get(command.classification_threshold)
            if name not in messages.CLASS_THRESHOLD:
                return _reject("classification_threshold must be LOW, MEDIUM or HIGH")
            new = Settings(new.task_id, new.report_interval_s, messages.CLASS_THRESHOLD[name])
        elif kind == "mode_change":
            if command.mode_change != messages.MODE:
                return _reject(f"mode {command.mode_change!r} does not exist (modes: "
                               f"{messages.MODE})")
        elif kind == "detection_threshold":
            return _reject("the detection threshold is fixed by the node's detector; "
                           "use classification_threshold to report fewer tracks")
        else:
            return _reject(f"command {kind} is not supported: the node is neither pointable "
                           "nor mobile")
    regions = []
    for region in task.region:
        parsed = _region(region)
        if isinstance(parsed, str):
            return _reject(parsed)
        regions.append(parsed)
    if not task.HasField("command") and not regions:
        return _reject("the task has neither a command nor a region")
    if regions:
        new = Settings(new.task_id, new.report_interval_s, new.class_threshold, tuple(regions))
    elif action is not None:
        new = current  # a request changes no setting and does not replace the active task
    return Decision(TaskAck.TASK_STATUS_ACCEPTED, [], settings=new, action=action)
