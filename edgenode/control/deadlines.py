"""The effector's deadline loop: every half heartbeat period it reads the relay's inputs, ends
engagements whose time, key switch, link or relay limit ran out, latches FAULT when the aux
contact disagrees with the drive, expires the arm, and toggles the heartbeat (the only code that
does; never while a FAULT is latched or the effector is disabled). Mixed into `Effector`
(edgenode.control.effector), whose state and transitions it uses under the effector's lock; kept
apart so the state machine and its clock read separately."""

from __future__ import annotations

import logging
import time

from hal.relay import KeySwitch, RelayInputs

log = logging.getLogger("edgenode.control.effector")

SAFE, ARMED, ENGAGED, FAULT = "SAFE", "ARMED", "ENGAGED", "FAULT"
ALARM_REPEAT_S = 5.0
READ_TRIES = 3


class DeadlineLoop:
    """The loop half of Effector: see the module docstring. Not usable on its own."""

    def _run(self) -> None:
        # Like health.LoopThread (stall point, beat per loop, failed + back off on error).
        while not self._stop_event.is_set():
            self._stage.stall_point()
            try:
                self._step()
            except Exception as exc:
                self._stage.set("failed", f"{type(exc).__name__}: {exc}")
                log.exception("effector: loop step failed")
                self._stop_event.wait(1.0)
            self._stage.beat()

    def _step(self) -> None:
        try:
            inputs = self._read_inputs()
            self._watch_clock()
            with self._lock:
                now = time.monotonic()
                if (self._state == ENGAGED and self._last_step is not None
                        and now - self._last_step > self._dropout_s):
                    # The loop stalled longer than the board's dropout, so the jammer lost
                    # its supply: never let it come back on by itself when the loop resumes.
                    self._end_engagement(f"effector loop stalled {now - self._last_step:.2f} s",
                                         None, to=SAFE)
                self._last_step = now
                if inputs is not None:  # None: commands kept changing the drive; next step
                    self._enforce(now, inputs)
                if self._state != FAULT and self._eff.enabled:
                    # The only heartbeat: it stops when this loop stalls or a FAULT latches,
                    # and never runs while the effector is disabled, so the relay board
                    # keeps the jammer's supply off whatever the drive line does.
                    self._relay.toggle_heartbeat()
        except Exception:
            try:
                with self._lock:
                    self._enter_fault("loop_error", "the effector loop failed")
            except Exception:
                log.exception("effector: could not latch the loop FAULT")
            raise
        try:
            self._store.prune()  # at most once a minute, outside the lock
        except Exception as exc:  # a full disk must not stop the heartbeat
            log.warning("effector: replay cache prune failed: %s", exc)
        self._stop_event.wait(self._period_s / 2)

    def _read_inputs(self) -> RelayInputs | None:
        """The relay inputs, read without holding the lock so a command never waits for
        them (each read is a round trip on some backends, and a wedged driver must never
        hold up a `safe`). A command that changed the drive meanwhile makes the reading
        stale: read again, still outside the lock; None after READ_TRIES such readings."""
        for _ in range(READ_TRIES):
            gen, started = self._drive_gen, time.monotonic()
            inputs = self._relay.read()
            with self._lock:
                if gen == self._drive_gen:
                    self._loop_inputs = (started, inputs)
                    return inputs
        return None

    def _key_switch(self) -> KeySwitch:
        """The key switch: from the loop's inputs when read within the last few loop steps,
        else read now. A reading that old costs no safety: OFF and TEST cut the jammer's supply
        in the board's power path (hardware/relay-board.md, S1a/S1b), and the loop ends an
        engagement on its next step if the key leaves OPERATE."""
        last = self._loop_inputs
        if last is not None and time.monotonic() - last[0] <= 3 * self._period_s:
            return last[1].key
        return self._relay.key_switch()

    def _enforce(self, now: float, inputs: RelayInputs) -> None:
        if self._state == FAULT:
            self._repeat_alarm(now)
            self._publish_inputs(inputs.key.value, inputs.aux_closed)
            return
        if inputs.aux_closed != inputs.drive:
            if self._disagree_since is None:
                self._disagree_since = now
            elif now - self._disagree_since >= self._settle_s:
                if inputs.drive:
                    self._enter_fault("aux_open", "the aux contact stayed open with the drive "
                                      "on: the relay did not pull in")
                else:
                    self._enter_fault("stuck_on", "the aux contact stayed closed after the "
                                      "drive dropped: relay stuck on", alarm=True)
                return
        else:
            self._disagree_since = None
        if self._state == ENGAGED:
            if self._engaged_until is None or self._drive_on_since is None:
                # Cannot happen by construction; if it ever does, the engagement has no
                # deadline to keep, so it ends now (a real check: asserts go under -O).
                self._enter_fault("loop_error", "ENGAGED without a deadline")
                return
            if inputs.key is not KeySwitch.OPERATE:
                self._end_engagement(f"key switch left OPERATE ({inputs.key.value})", None,
                                     to=SAFE)
            elif now - self._drive_on_since >= self._config.relay.max_on_s:
                self._end_engagement("relay.max_on_s reached", None)
            elif now >= self._engaged_until:
                self._end_engagement("engagement duration ended", None)
            elif (stop := self._airspace_stop(now)) is not None:
                self._end_engagement(stop, None)
        elif inputs.drive:
            # Nothing but an engagement may hold the drive on.
            log.error("effector: drive found on outside an engagement; off")
            self._drive(False)
        if (self._link_down_since is not None and self._state in (ARMED, ENGAGED)
                and now - self._link_down_since >= self._eff.link_loss_grace_s):
            self._go_safe(f"broker link lost for more than {self._eff.link_loss_grace_s:g} s "
                          "(link_loss_grace_s)")
        if (self._state == ARMED and self._armed_until is not None
                and now >= self._armed_until):
            self._armed_until = self._armed_by = None
            self._transition(SAFE, "arm expired")
        self._publish_inputs(inputs.key.value, inputs.aux_closed)
        if self._junk_since:
            self._report_junk(force=False)

    def _publish_inputs(self, key: str, aux: bool) -> None:
        if self._inputs_seen != (key, aux):
            first = self._inputs_seen is None
            self._inputs_seen = (key, aux)
            if not first:
                self._publish()

    def _repeat_alarm(self, now: float) -> None:
        if self._alarm is not None and now - self._alarm_sent >= ALARM_REPEAT_S:
            self._publish()
