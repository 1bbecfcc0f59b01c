"""Effector tasks from the SAPIENT peer: which Task asks the jammer to act, and for what.

BSI Flex 335 v2.0 defines no effector command, so the node takes one as a `command.request`
(declared in the Registration when `[sapient] effector_tasks = true`):

- `"Engage"`, with `command_parameter` `"duration_s=S;bearing_deg=B"` or
  `"duration_s=S;track=OBJECT_ID"` (the object id of a DetectionReport: the track's id);
- `"Disengage"` and `"Safe"` (a parameter is ignored: stopping never waits on its wording);
- CONTROL_STOP or CONTROL_PAUSE of the engage task last accepted: a disengage.

Whether it happens is the effector's decision (edgenode.control, through the daemon): this
module only reads the task. With effector_tasks false every effector task is refused, and so
is a task whose name, description, request or mode asks for one in words the node does not
take. Pure: no I/O.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from edgenode.interop.sapient.proto import Task

ENGAGE_REFUSED = "engage requires a signed operator command"
STOP_REFUSED = ("effector tasks from SAPIENT are off on this node ([sapient] effector_tasks = "
                "false): disengage and safe are signed operator commands too")
# Requests, modes and task names that ask an effector to act (a word starting so).
EFFECTOR_WORDS = re.compile(
    r"\b(engag|disengag|jam|radiat|defeat|effect|mitigat|fire|neutrali|disrupt|arm\b|arming)",
    re.I)
REQUESTS = {"engage": "engage", "disengage": "disengage", "safe": "safe"}
ENGAGE_FORM = ("command_parameter must be 'duration_s=S;bearing_deg=B' or "
               "'duration_s=S;track=OBJECT_ID'")
HOW = ("effector tasks are command.request 'Engage' (command_parameter "
       "'duration_s=S;bearing_deg=B' or 'duration_s=S;track=OBJECT_ID'), 'Disengage' or 'Safe'")


@dataclass(frozen=True)
class EffectorRequest:
    action: str  # engage, disengage or safe: the effector's own action names
    params: dict[str, Any]


def is_effector_text(text: str) -> bool:
    return EFFECTOR_WORDS.search(text) is not None


def effector_request(task: Task, enabled: bool) -> EffectorRequest | str | None:
    """For a CONTROL_START task: the effector action it asks for, the reason it is refused,
    or None when it is not an effector task."""
    command = task.command if task.HasField("command") else None
    kind = command.WhichOneof("command") if command is not None else None
    request = command.request if kind == "request" else ""
    mode = command.mode_change if kind == "mode_change" else ""
    action = REQUESTS.get(request.strip().lower())
    if action is None and not any(is_effector_text(t) for t in (
            task.task_name, task.task_description, request, mode)):
        return None
    if not enabled:
        return STOP_REFUSED if action in ("disengage", "safe") else ENGAGE_REFUSED
    if action is None:
        return f"effector task not understood: {HOW}"
    if task.region:
        return "an effector task takes no region"
    if action != "engage":
        return EffectorRequest(action, {})
    if command is None:
        return f"an engage task needs its parameters: {HOW}"
    params = engage_params(command.command_parameter)
    return params if isinstance(params, str) else EffectorRequest(action, params)


def engage_params(text: str) -> dict[str, Any] | str:
    """The engage's params from its command_parameter, or what is wrong with it. Only the
    form is read here; the values are judged by the effector's admission."""
    params: dict[str, Any] = {}
    for part in re.split(r"[;,]", text):
        if not part.strip():
            continue
        key, sep, value = (s.strip() for s in part.partition("="))
        if not sep or key not in ("duration_s", "bearing_deg", "track") or key in params:
            return f"{ENGAGE_FORM}; got {text!r}"
        if key == "track":
            params[key] = value
            continue
        try:
            number = float(value)
        except ValueError:
            return f"command_parameter {key}: {value!r} is not a number"
        if not math.isfinite(number):
            return f"command_parameter {key}: {value!r} is not a finite number"
        params[key] = number
    if "duration_s" not in params:
        return f"{ENGAGE_FORM}; got {text!r}"
    return params
