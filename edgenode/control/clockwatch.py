"""The effector's watch on the wall clock: a step of it (forward, to prune the replay cache; back,
to make a captured command look fresh) is noticed by the deadline loop and by every arm/engage,
and refuses arm and engage (`clock_jumped`) until the clock is synchronised again. Mixed into
`Effector` (edgenode.control.effector), whose lock, clocks and audit it uses."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("edgenode.control.effector")

# A change of the wall clock's offset from the monotonic clock larger than this between two
# looks (10 ms apart while the loop runs) is a step, not NTP slewing.
CLOCK_STEP_S = 1.0
# After a step, a sync source that never reported unsynchronised counts as synchronised
# again after this long without a further step.
CLOCK_RESYNC_S = 30.0
# While a step is unresolved the loop reads the sync source at most this often (a read may
# be a round trip; the heartbeat must not wait for it).
CLOCK_POLL_S = 0.5


class ClockWatch:
    """The clock half of Effector: see the module docstring. Not usable on its own."""

    def _watch_clock(self) -> None:
        """From the deadline loop, outside the lock: notice a step, and read the sync source
        (paced) while one is unresolved."""
        with self._lock:
            stepped = self._note_clock_step()
        now = time.monotonic()
        if not stepped or now - self._clock_polled < CLOCK_POLL_S:
            return
        self._clock_polled = now
        synced = self._admission.clock_ok()
        with self._lock:
            self._clock_resync(synced)

    def _note_clock_step(self) -> bool:
        """Under the lock: notice a step of the wall clock (its offset from the monotonic
        clock moving by more than CLOCK_STEP_S between two looks; NTP's slewing moves it by
        well under a millisecond per second). True while a step is not yet resolved."""
        offset = self._wall() - time.monotonic()
        step = offset - self._clock_offset
        self._clock_offset = offset
        if abs(step) > CLOCK_STEP_S:
            self._clock_jump = {"step_s": round(step, 3), "at": time.monotonic(),
                                "unsynced_seen": False}
            log.warning("effector: the wall clock was stepped by %+.1f s; arm and engage are "
                        "refused until it is synchronised again", step)
            self._audit_event("clock", {"step_s": round(step, 3), "resolved": False})
        return self._clock_jump is not None

    def _clock_resync(self, synced: bool) -> None:
        """Under the lock: end the refusal after a step once the clock is synchronised again:
        a sync source seen unsynchronised and then synchronised after the step, or reporting
        synchronised for CLOCK_RESYNC_S after it with no further step."""
        jump = self._clock_jump
        if jump is None:
            return
        if not synced:
            jump["unsynced_seen"] = True
        elif jump["unsynced_seen"] or time.monotonic() - jump["at"] >= CLOCK_RESYNC_S:
            self._clock_jump = None
            log.warning("effector: the clock is synchronised again after a %+.1f s step",
                        jump["step_s"])
            self._audit_event("clock", {"step_s": jump["step_s"], "resolved": True})

    def _clock_refusal(self) -> str | None:
        jump = self._clock_jump if self._note_clock_step() else None
        if jump is None:
            return None
        return (f"clock_jumped: the wall clock was stepped by {jump['step_s']:+.1f} s; arm and "
                "engage are refused until it is synchronised again")
