"""The jammer relay board of hardware/relay-board.md, as a model in wall-clock (monotonic) time.

Chain: key switch -> relay coil K1 (drive line, pulled down) and contactor coil K2 (held by
the heartbeat monostable U1) -> jammer supply. The monostable is retriggerable: every rising
edge on the heartbeat line restarts its dropout time; when none comes for that long it
releases the series contactor. The relay is force-guided, so its aux contact reports the
main contact. Key switch: OFF opens the chain (no coil gets power), TEST powers the chain
but cuts the jammer's RF supply, OPERATE lets it radiate.

    radiating = relay closed AND contactor closed AND key at OPERATE

The model is not thread-safe; the twin calls it under its lock. Time is passed in (seconds on
the monotonic clock), so tests can step it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

KeyPosition = Literal["off", "test", "operate"]


@dataclass
class Transition:
    t: float  # monotonic seconds
    radiating: bool


@dataclass
class RelayBoard:
    """Parameters from hardware/relay-board.md ("Twin model parameters")."""

    dropout_s: float = 0.200
    k1_operate_s: float = 0.015
    k1_release_s: float = 0.010
    k2_release_s: float = 0.020
    key: KeyPosition = "operate"
    drive: bool = False  # the drive line's level (the pull-down makes an undriven line low)
    heartbeat: bool = False
    # Fault: K1's main contact welded closed; the force-guided aux contact follows it.
    stuck_closed: bool = False
    last_edge_t: float | None = None  # the last RISING edge: only those retrigger U1
    transitions: list[Transition] = field(default_factory=list)
    _drive_t: float = -1e9
    _k1_closed_at_fall: bool = False
    _radiating: bool = False
    _t: float = -1e9

    # -- what the board does --------------------------------------------------------------
    # Times are compared as `t < start + duration`, the same sums _candidates() schedules,
    # so a change lands exactly on its scheduled time (no float drift at the boundary).
    def monostable_on(self, t: float) -> bool:
        return self.last_edge_t is not None and t < self.last_edge_t + self.dropout_s

    def contactor_closed(self, t: float) -> bool:
        """K2: held by U1's output, opening k2_release_s after it falls. Key OFF removes the
        coil supply (modelled as opening at once)."""
        return (self.key != "off" and self.last_edge_t is not None
                and t < self.last_edge_t + self.dropout_s + self.k2_release_s)

    def relay_closed(self, t: float | None = None) -> bool:
        """K1's main contact (the aux contact reports it)."""
        if self.stuck_closed:
            return True
        if self.key == "off":
            return False
        t = self._t if t is None else t
        if self.drive:
            return t >= self._drive_t + self.k1_operate_s
        return self._k1_closed_at_fall and t < self._drive_t + self.k1_release_s

    def aux_closed(self, t: float | None = None) -> bool:
        return self.relay_closed(t)

    def radiating(self, t: float) -> bool:
        return self.relay_closed(t) and self.contactor_closed(t) and self.key == "operate"

    def key_inputs(self) -> tuple[bool, bool]:
        """(key_test contact, key_operate contact) as the Pi reads them."""
        return self.key == "test", self.key == "operate"

    # -- events ---------------------------------------------------------------------------
    def _candidates(self) -> list[float]:
        out = [self._drive_t + self.k1_operate_s, self._drive_t + self.k1_release_s]
        if self.last_edge_t is not None:
            out.append(self.last_edge_t + self.dropout_s + self.k2_release_s)
        return sorted(out)

    def advance(self, t: float) -> list[Transition]:
        """Move the clock to t, recording each timed change (relay operate/release, contactor
        dropout) at the exact time it happened."""
        new: list[Transition] = []
        for tau in self._candidates():
            if self._t < tau <= t and self.radiating(tau) != self._radiating:
                new.append(self._record(tau, not self._radiating))
        self._t = max(self._t, t)
        return new + self._settle(t)

    def set_drive(self, level: bool, t: float) -> list[Transition]:
        out = self.advance(t)
        if level != self.drive:
            if not level:
                self._k1_closed_at_fall = self.relay_closed(t)
            self.drive = level
            self._drive_t = t
        return out + self._settle(t)

    def set_heartbeat(self, level: bool, t: float) -> list[Transition]:
        out = self.advance(t)
        if level and not self.heartbeat:
            self.last_edge_t = t
        self.heartbeat = level
        return out + self._settle(t)

    def set_key(self, key: KeyPosition, t: float) -> list[Transition]:
        out = self.advance(t)
        self.key = key
        return out + self._settle(t)

    def set_stuck(self, stuck: bool, t: float) -> list[Transition]:
        out = self.advance(t)
        self.stuck_closed = stuck
        return out + self._settle(t)

    def next_change_t(self) -> float | None:
        """The next time a timed change may happen (for the twin's timer)."""
        future = [tau for tau in self._candidates() if tau > self._t]
        return future[0] if future else None

    def _settle(self, t: float) -> list[Transition]:
        now = self.radiating(t)
        if now != self._radiating:
            return [self._record(t, now)]
        return []

    def _record(self, t: float, radiating: bool) -> Transition:
        self._radiating = radiating
        tr = Transition(t, radiating)
        self.transitions.append(tr)
        return tr
