"""Track changes -> events `new`, `update`, `end`, each with the state before and after.

"before" is the state the previous event of that track carried (what a consumer last saw), so
a consumer can diff the two. Updates are rate-limited per track (`max_update_rate_hz`), except
that a change of status or of the top class goes out at once. A track that ends before it was
ever announced (a tentative track that never confirmed) makes no events at all, unless
`announce_tentative` is set: tentative tracks come and go with every noise plot and would
flood the link.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

State = dict[str, Any]
Event = dict[str, Any]


@dataclass
class _Announced:
    t: float
    status: str
    label: str
    revision: int
    state: State


class TrackEvents:
    """Decides which track changes become events; one instance per tracker."""

    def __init__(self, *, max_update_rate_hz: float = 2.0, announce_tentative: bool = False):
        self.min_interval_s = 1.0 / max_update_rate_hz
        self.announce_tentative = announce_tentative
        self._announced: dict[str, _Announced] = {}

    def observe(self, t: float, object_id: str, status: str, label: str, revision: int,
                state_fn: Callable[[], State]) -> Event | None:
        """The event (or None) for a track now `status` with top class `label`; `revision`
        changes whenever the track took a measurement. `state_fn` builds the state dict and
        is called only when an event goes out."""
        last = self._announced.get(object_id)
        if last is None:
            if status == "ended" or (status == "tentative" and not self.announce_tentative):
                return None
            state = state_fn()
            self._announced[object_id] = _Announced(t, status, label, revision, state)
            return {"type": "new", "object_id": object_id, "before": None, "after": state}
        if status == "ended":
            del self._announced[object_id]
            return {"type": "end", "object_id": object_id, "before": last.state,
                    "after": state_fn()}
        changed = status != last.status or label != last.label
        due = revision != last.revision and t - last.t >= self.min_interval_s
        if not (changed or due):
            return None
        state = state_fn()
        self._announced[object_id] = _Announced(t, status, label, revision, state)
        return {"type": "update", "object_id": object_id, "before": last.state, "after": state}

    def forget(self, object_id: str) -> None:
        self._announced.pop(object_id, None)
