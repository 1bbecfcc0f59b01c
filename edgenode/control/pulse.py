"""The relay pulse of the local self-test: the relay driven for at most 200 ms while the
effector is SAFE and the key switch at TEST (which cuts the jammer's RF supply on the board),
the aux contact timed, audited. Mixed into `Effector` (edgenode.control.effector), whose lock,
state and relay it uses; kept apart because it is the one path that drives the relay outside
an engagement."""

from __future__ import annotations

import time
from typing import Any

from edgenode.control.deadlines import SAFE
from hal.relay import KeySwitch

PULSE_MAX_S = 0.2


class PulseRefused(RuntimeError):
    """The relay pulse was not given: the message says which condition was not met."""


class RelayPulse:
    """The pulse half of Effector: see the module docstring. Not usable on its own."""

    def selftest_pulse(self, duration_s: float, by: str) -> dict[str, Any]:
        """Drive the relay for `duration_s` (<= PULSE_MAX_S) while SAFE with the key switch at
        TEST (which cuts the jammer's RF supply on the board) and time the aux contact: it
        must close within effector.aux_settle_ms of the drive and open again after it.
        Audited. Raises PulseRefused otherwise. The lock is held throughout, so the loop never
        sees the drive on outside an engagement; its heartbeat pauses for the pulse (the board
        may drop K2 for a moment: harmless at TEST)."""
        if not 0 < duration_s <= PULSE_MAX_S:
            raise PulseRefused(f"pulse of {duration_s:g} s: at most {PULSE_MAX_S:g} s")
        with self._lock:
            key = self._relay.key_switch()
            if self._state != SAFE or key is not KeySwitch.TEST:
                raise PulseRefused(f"effector {self._state}, key switch at {key.value}: a "
                                   "pulse needs SAFE and TEST")
            # Audited as a local command and its result (the audit schema's kinds).
            self._audit_event("command", {"source": "local", "action": "relay-pulse",
                                          "by": by, "duration_s": duration_s})
            closed_s = opened_s = None
            start = time.monotonic()
            try:
                self._drive(True)
                while (now := time.monotonic()) - start < duration_s:
                    if closed_s is None and self._relay.aux_closed():
                        closed_s = now - start
                    time.sleep(0.002)
            finally:
                self._drive(False)
            off = time.monotonic()
            while (now := time.monotonic()) - off < self._settle_s:
                if not self._relay.aux_closed():
                    opened_s = now - off
                    break
                time.sleep(0.002)
            result = {"action": "relay-pulse", "by": by, "state": self._state,
                      "on_s": round(off - start, 4),
                      "aux_closed_after_s": None if closed_s is None else round(closed_s, 4),
                      "aux_opened_after_s": None if opened_s is None else round(opened_s, 4),
                      "settle_s": self._settle_s}
            self._audit_event("result", result)
        return result
