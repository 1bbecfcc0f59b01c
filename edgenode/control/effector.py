"""The effector: the state machine that owns the jammer relay, and its deadline loop.

States: SAFE -> ARMED (signed `arm`) -> ENGAGED (signed `engage`, or, with [sapient]
effector_tasks, a SAPIENT engage task through `handle_trusted` within that signed arm) -> ARMED
when the engagement ends; ARMED expires to SAFE; FAULT latches (across restarts) until an admin
`reset`, which succeeds only when the aux contact agrees with the drive.

Threads: commands arrive on the caller's thread (MQTT) and act at once under `_lock` (so an
engage reaches the relay without waiting for the loop); the deadline loop (health stage
"effector") enforces every deadline and interlock and is the only toggler of the heartbeat,
which it toggles only while no FAULT is latched and the effector is enabled. Audit records and
state publishes go through a queue to an emitter thread (edgenode.control.emitter), so a slow
SD card or broker never holds the lock or the loop.

The relay goes OFF on: engagement end, disengage/safe, the key switch leaving OPERATE, the aux
contact disagreeing with the drive (FAULT), the broker link lost beyond link_loss_grace_s
(also ARMED -> SAFE), relay.max_on_s, stop, make_safe (reload), and power-on (ENGAGED is never
restored). A stalled loop stops the heartbeat, so the relay board drops the jammer.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgenode.config import Config
from edgenode.control.admission import (
    CLOCK_GATED,
    PEER_ROLE,
    Admission,
    Admitted,
    demo_keys_allowed,
)
from edgenode.control.audit import AuditLog
from edgenode.control.clockwatch import ClockWatch
from edgenode.control.deadlines import ARMED, ENGAGED, FAULT, SAFE, DeadlineLoop
from edgenode.control.durability import Durability
from edgenode.control.emitter import Emitter
from edgenode.control.guards import (
    NEVER_ENGAGEABLE,
    AirspaceCheck,
    AllowListChange,
    IdentityCheck,
    TargetGuards,
)
from edgenode.control.intake import CommandIntake
from edgenode.control.keys import KeyRing, KeyStore, current_ring, parse_key_list, trusted
from edgenode.control.pulse import RelayPulse
from edgenode.control.store import EffectorStore
from edgenode.health import Health
from hal.relay import JammerRelay, KeySwitch, RelayInputs

log = logging.getLogger(__name__)

# An engagement shorter than this is not worth starting: the budget counts as spent.
MIN_ENGAGE_S = 0.05

ActionHandler = Callable[[dict[str, Any]], str | None]


class Effector(CommandIntake, DeadlineLoop, ClockWatch, Durability, RelayPulse, TargetGuards):
    def __init__(self, relay: JammerRelay, config: Config, health: Health, state_dir: Path, *,
                 publish_audit: Callable[[dict[str, Any]], None],
                 publish_state: Callable[[dict[str, Any]], None],
                 clock_synced: Callable[[], bool],
                 airspace: AirspaceCheck | None = None,
                 identity: IdentityCheck | None = None,
                 allow_list: AllowListChange | None = None,
                 wall_clock: Callable[[], float] = time.time):
        self._relay = relay
        self._identity = identity
        self._allow_list = allow_list
        self._airspace, self._airspace_at = airspace, 0.0
        self._config = config
        self._wall = wall_clock
        self._eff = config.effector
        self._period_s = config.relay.heartbeat_period_ms / 1000
        self._settle_s = self._eff.aux_settle_ms / 1000
        self._dropout_s = config.relay.board_dropout_ms / 1000
        self._last_step: float | None = None
        self._publish_audit, self._publish_state = publish_audit, publish_state
        self._lock = threading.RLock()
        self._stop_event = threading.Event()
        self._stage = health.register("effector", deadline_s=max(
            1.0, 5 * config.relay.board_dropout_ms / 1000))
        self._thread = threading.Thread(target=self._run, name="stage-effector", daemon=True)
        # Set before the stores open: their troubles (a full disk, a damaged file) are counted
        # and named in the health stage from the first write.
        self._state = SAFE
        self._fault: dict[str, Any] | None = None
        # Bumped from the MQTT thread, the slow-command thread and the emitter: under a lock.
        self.counters: Counter[str] = Counter()
        self._counters_lock = threading.Lock()
        # Storage trouble by source ("audit", "store", "state"): named in health and results.
        self._trouble: dict[str, str] = {}
        control_dir = state_dir / "control"
        self._store = EffectorStore(control_dir, wall_clock=wall_clock)
        self._keystore = KeyStore(control_dir)
        self._ring: KeyRing = current_ring(self._eff, self._keystore,
                                           allow_demo=demo_keys_allowed(config))
        self._audit = AuditLog(state_dir / "audit",
                               segment_bytes=config.storage.audit_segment_kb * 1024,
                               max_segments=config.storage.audit_max_segments,
                               known_head=self._known_audit_head(),
                               on_anchor=self._audit_anchor_written)
        self._admission = Admission(config, lambda: self._ring, clock_synced,
                                    wall_clock=wall_clock)
        damaged = [*self._audit.damaged, *self._check_audit_anchor(state_dir / "audit")]
        if damaged:
            self._trouble["state"] = "state_damaged: " + "; ".join(damaged)
        self._emitter = Emitter(self._audit, publish_audit, publish_state,
                                on_trouble=lambda why: self._storage_trouble("audit", why),
                                on_head=self._audit_head_written)
        self._handlers: dict[str, ActionHandler] = {}
        self._junk_since: Counter[str] = Counter()
        self._junk_reported = 0.0
        self._since = self._wall()
        self._reason = "power-on"
        self._alarm: dict[str, Any] | None = None
        self._alarm_sent = 0.0
        self._armed_until: float | None = None
        self._armed_by: str | None = None
        self._engaged_until: float | None = None
        self._engaged: dict[str, Any] | None = None
        self._drive_on_since: float | None = None
        self._duty_row: int | None = None
        self._disagree_since: float | None = None
        self._link_down_since: float | None = None
        self._inputs_seen: tuple[str, bool] | None = None
        # The loop's last inputs and the monotonic time its read began: an engage takes the
        # key switch from them while they are fresh instead of another read of the lines.
        self._loop_inputs: tuple[float, RelayInputs] | None = None
        # Bumped by every drive change: inputs read before one are stale for the loop.
        self._drive_gen = 0
        self._started = self._stopped = False
        self._born_mono = time.monotonic()
        # Wall minus monotonic: it moves only when the wall clock is stepped (or slewed).
        self._clock_offset = wall_clock() - self._born_mono
        self._clock_jump: dict[str, Any] | None = None
        self._clock_polled = 0.0

    # -- public API ----------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    def set_action_handler(self, action: str, handler: ActionHandler) -> None:
        """Let the daemon serve `selftest` and `rebirth`: handler(params) -> summary or None;
        raising makes the result `error`."""
        if action not in ("selftest", "rebirth"):
            raise ValueError(f"effector: no external handler for '{action}'")
        self._handlers[action] = handler

    def start(self) -> None:
        """Check the aux contact first, restore a latched FAULT, then start the loop."""
        with self._lock:
            self._drive(False)
            inputs = self._settled_inputs()
            self._inputs_seen = (inputs.key.value, inputs.aux_closed)
            self._emitter.start()
            self._audit_event("start", {"keys_version": self._ring.version,
                                        "keys_source": self._ring.source,
                                        "keys_unreadable": self._ring.unreadable,
                                        "enabled": self._eff.enabled})
            if inputs.aux_closed:
                self._enter_fault("stuck_on", "aux contact closed at start-up with the drive "
                                  "off", alarm=True)
            else:
                self._restore_fault()
            self._refresh_stage()
            self._publish()
            self._started = True
        self._thread.start()

    def _settled_inputs(self) -> RelayInputs:
        """Inputs once the relay had time to release: after a crash while engaged the drive
        line was still high, and the contact opens a few ms after the drive drops. No
        heartbeat runs yet, so waiting cannot keep the jammer on."""
        deadline = time.monotonic() + self._settle_s
        inputs = self._relay.read()
        while inputs.aux_closed and time.monotonic() < deadline:
            time.sleep(0.005)
            inputs = self._relay.read()
        return inputs

    def stop(self) -> None:
        """SAFE first, then stop the loop, write what is queued and release the relay."""
        if self._stopped:
            return
        self._stopping(lambda: self.make_safe("stopping"), self._stop_event.set,
                       self._join_loop, self._drain)
        # What a thread that did not end still uses stays open: the drive is already OFF,
        # and a loop that stalls stops the heartbeat, so the board drops the jammer's supply.
        if self._thread.is_alive():
            log.error("effector: the loop thread did not stop; the command store and the "
                      "relay lines are left open for it (drive OFF)")
        else:
            self._stopping(self._store.close, self._relay.close)
        if self._emitter.alive():
            log.error("effector: the audit writer did not stop; the audit log is left open")
        else:
            self._stopping(self._audit.close)
        self._stopped = True

    @staticmethod
    def _stopping(*steps: Callable[[], object]) -> None:
        for step in steps:
            try:
                step()
            except Exception:
                log.exception("effector: error while stopping (continuing)")

    def make_safe(self, reason: str) -> None:
        """Relay OFF now; ARMED/ENGAGED -> SAFE (a FAULT stays latched)."""
        with self._lock:
            self._go_safe(reason)

    def link_changed(self, up: bool) -> None:
        with self._lock:
            if up:
                if self._link_down_since is not None:
                    log.info("effector: broker link back")
                self._link_down_since = None
            elif self._link_down_since is None:
                self._link_down_since = time.monotonic()
                log.warning("effector: broker link lost; relay off after %.1f s "
                            "(link_loss_grace_s)", self._eff.link_loss_grace_s)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until the audit records and state reports of every change made so far are out
        (tests, shutdown). The lock first: a change under way has set its state a moment
        before it queues its records, and `state` is read without the lock."""
        deadline = time.monotonic() + timeout_s
        if not self._lock.acquire(timeout=timeout_s):
            return False
        self._lock.release()
        return self._emitter.flush(max(0.0, deadline - time.monotonic()))

    def record(self, kind: str, data: dict[str, Any]) -> None:
        """An audit record of something done outside the command path (the status page's
        logins and self-tests): who did what, in the same hash chain."""
        self._audit_event(kind, data)

    @property
    def keys(self) -> KeyRing:
        return self._ring

    # -- commands ------------------------------------------------------------------------
    def _count(self, *names: str) -> None:
        with self._counters_lock:
            for name in names:
                self.counters[name] += 1

    def _act(self, adm: Admitted) -> dict[str, Any]:
        env = adm.envelope
        handler = None
        with self._lock:
            if self._store.seen(env.id):
                return self._result(env.id, "rejected", "replayed: this command id was already "
                                    "received")
            stale = (self._clock_refusal() if env.action in CLOCK_GATED else None) \
                or self._issued_before_start(env.action, env.issued_at)
            if stale:
                return self._result(env.id, "rejected", stale)
            recorded = False
            if env.action == "engage":
                status, reason, recorded = self._engage(adm)
            else:
                action = getattr(self, "_do_" + env.action.replace("-", "_"), None)
                if action is not None:
                    status, reason = action(adm)
                else:  # selftest / rebirth: served by the daemon, outside the lock
                    handler = self._handlers.get(env.action)
                    status, reason = "ok", None
            if not recorded:
                stored, why = self._durably("command id", lambda: self._store.remember(
                    env.id, env.expires_at))
                if not stored:  # still refused as a replay: the id is kept in memory too
                    reason = f"{reason}; {why}" if reason else why
        if env.action in ("selftest", "rebirth"):
            self._emitter.release()  # a self-test takes seconds: alarms must not wait for it
            try:
                status, reason = self._external(env.action, handler, env.params)
            finally:
                self._emitter.hold()
        return self._result(env.id, status, reason)

    def _issued_before_start(self, action: str, issued_at: float) -> str | None:
        """arm/engage issued before this effector existed are refused: they were meant for a
        node that has since restarted (or queued for it while it was down), and a power cut
        may have taken their ids from the replay cache (store.py)."""
        if action not in CLOCK_GATED:
            return None
        # The start time on today's wall clock (which may have been stepped since: a step
        # also refuses arm/engage until the clock is synchronised again, `_clock_refusal`).
        born = self._wall() - (time.monotonic() - self._born_mono)
        if issued_at >= born - self._eff.clock_skew_s:
            return None
        return (f"issued_before_start: issued {born - issued_at:.1f} s before this node's "
                f"effector started; send a new command")

    def _external(self, action: str, handler: ActionHandler | None,
                  params: dict[str, Any]) -> tuple[str, str | None]:
        if handler is None:
            return "error", f"not_available: {action} is not served on this node"
        try:
            return "ok", handler(params)
        except Exception as exc:
            log.exception("effector: %s handler failed", action)
            return "error", f"{action}_failed: {type(exc).__name__}: {exc}"

    def _refuse_arming(self, action: str) -> str | None:
        if not self._eff.enabled:
            return (f"effector_disabled: effector.enabled is false in the node config; {action} "
                    "is refused")
        if self._state == FAULT:
            return f"fault: FAULT latched ({self._fault_text()}); an admin reset is needed"
        if self._ring.unreadable:
            return (f"keys_unreadable: the stored key set is unreadable ({self._ring.unreadable})"
                    f"; {action} is refused until an admin keys-update replaces it")
        return None

    def _do_arm(self, adm: Admitted) -> tuple[str, str | None]:
        refusal = self._refuse_arming("arm")
        if refusal:
            return "rejected", refusal
        if self._state == ENGAGED:
            return "rejected", "engaged: already engaged; disengage first"
        ttl = float(adm.envelope.params["ttl_s"])
        self._armed_until = time.monotonic() + ttl
        self._armed_by = adm.key.id
        if self._state == SAFE:
            self._transition(ARMED, f"armed by {adm.key.id} for {ttl:g} s", adm.envelope.id)
        else:
            self._publish()
        return "ok", None

    def _engage(self, adm: Admitted) -> tuple[str, str | None, bool]:
        env = adm.envelope
        refusal = self._refuse_arming("engage")
        if refusal:
            return "rejected", refusal, False
        if self._state == ENGAGED:
            return "rejected", "engaged: already engaged", False
        if self._state != ARMED:
            return "rejected", f"not_armed: state is {self._state}; arm first", False
        if self._armed_until is None or time.monotonic() >= self._armed_until:
            # The deadline loop expires the arm, but a stalled loop must not stretch it:
            # the engage judges the arm's expiry itself.
            self._armed_until = self._armed_by = None
            self._transition(SAFE, "arm expired")
            return "rejected", "arm_expired: the arm's ttl_s ran out; arm again", False
        if self._eff.two_person and adm.key.id == self._armed_by:
            return "rejected", (f"two_person_rule: armed by '{self._armed_by}'; engage must be "
                                "signed by another operator"), False
        if self._eff.two_person and adm.key.role == PEER_ROLE:
            # Two-person integrity means two people: a tasking system is not the second one.
            return "rejected", (f"two_person_rule: armed by '{self._armed_by}'; engage must be "
                                f"signed by another operator, not tasked by {adm.key.id}"), False
        key = self._key_switch()
        if key is not KeySwitch.OPERATE:
            return "rejected", f"key_switch_not_operate: key switch at {key.value}", False
        if not adm.clock_synced:
            return "rejected", "clock_not_synced: engage needs a synchronised clock", False
        if self._link_down_since is not None:
            return "rejected", "link_lost: the broker link is down", False
        override = env.params.get("airspace_override")
        if override is not None and adm.key.role != "admin":
            return "rejected", (f"role_not_allowed: airspace_override needs an admin key; "
                                f"'{adm.key.id}' is {adm.key.role}"), False
        blocked = self._airspace_refusal(env.params, running=False)
        if blocked and (override is None or blocked.startswith(NEVER_ENGAGEABLE)):
            return "rejected", blocked, False
        listed = self._identity_refusal(adm)
        if listed and not listed.startswith("overridden"):
            return "rejected", listed, False
        wall = self._wall()
        used = self._store.duty_used_s(self._eff.duty_window_s, wall)
        remaining = self._eff.duty_max_on_s - used
        if remaining < MIN_ENGAGE_S:
            return "rejected", (f"duty_budget_spent: {used:.1f} s on in the last "
                                f"{self._eff.duty_window_s:g} s (effector.duty_max_on_s "
                                f"{self._eff.duty_max_on_s:g})"), False
        requested = float(env.params["duration_s"])
        duration = min(requested, remaining, self._config.relay.max_on_s)
        # The id and the planned interval go to disk (one transaction) before the relay moves:
        # after a crash the replay is still caught and the whole plan counts against the budget.
        stored, row = self._durably("engagement", lambda: self._store.remember(
            env.id, env.expires_at, duty=(wall, wall + duration)))
        if not stored:
            return "rejected", f"{row}; the relay was not moved", True
        self._duty_row = row
        now = time.monotonic()
        self._drive(True)
        self._drive_on_since = now
        self._disagree_since = None
        self._engaged_until = now + duration
        target = {k: env.params[k] for k in ("track", "bearing_deg") if k in env.params}
        self._engaged = {"by": adm.key.id, "command_id": env.id, "duration_s": duration,
                         **target}
        if override is not None:
            self._engaged["airspace_override"] = override
            self._audit_event("airspace_override", {"by": adm.key.id, "command": env.id,
                                                    "reason": override, "overrode": blocked})
            log.warning("effector: airspace override by %s (%s); would refuse: %s",
                        adm.key.id, override, blocked)
        if listed:
            self._engaged["identity_override"] = env.params["identity_override"]
            self._audit_event("identity_override", {"by": adm.key.id, "command": env.id,
                                                    "reason": env.params["identity_override"],
                                                    "overrode": listed.split(": ", 1)[1]})
            log.warning("effector: identity override by %s; would refuse: %s", adm.key.id,
                        listed)
        self._transition(ENGAGED, f"engaged by {adm.key.id} for {duration:g} s", env.id)
        note = None
        if duration < requested:
            note = f"duration capped to {duration:.2f} s by the duty-cycle budget"
        return "ok", note, True

    def _do_disengage(self, adm: Admitted) -> tuple[str, str | None]:
        if self._state == ENGAGED:
            self._end_engagement(f"disengaged by {adm.key.id}", adm.envelope.id)
            return "ok", None
        self._drive(False)
        return "ok", f"not engaged (state {self._state})"

    def _do_safe(self, adm: Admitted) -> tuple[str, str | None]:
        self._go_safe(f"safe by {adm.key.id}", adm.envelope.id)
        if self._state == FAULT:
            return "ok", f"relay off; FAULT stays latched ({self._fault_text()})"
        return "ok", None

    def _do_reset(self, adm: Admitted) -> tuple[str, str | None]:
        if self._state != FAULT:
            return "ok", f"no fault to reset (state {self._state})"
        self._drive(False)
        inputs = self._relay.read()
        if not inputs.aux_agrees:
            return "rejected", ("aux_disagrees: the aux contact is closed with the drive off; "
                                "the relay is still stuck")
        self._fault = self._alarm = None
        self._durably("fault reset", lambda: self._store.put("fault", None))
        self._refresh_stage()
        self._transition(SAFE, f"reset by {adm.key.id}", adm.envelope.id)
        return "ok", None

    def _do_keys_update(self, adm: Admitted) -> tuple[str, str | None]:
        params = adm.envelope.params
        version = int(params["version"])
        if version <= self._ring.version:
            return "rejected", (f"stale_key_version: version {version} is not above the "
                                f"current {self._ring.version}")
        keys = {k.id: trusted(k) for k in parse_key_list(params["keys"])}
        revoked = (set(self._ring.keys) | self._ring.revoked | set(params.get("revoked", []))) \
            - set(keys)
        # A new key set is a reload: SAFE first.
        self.make_safe(f"key set replaced by {adm.key.id} (version {version})")
        ring = KeyRing(version, keys, revoked, "keys-update")
        self._keystore.save(ring)
        self._ring = ring
        self._refresh_stage()
        self._audit_event("keys", ring.describe())
        log.warning("effector: key set version %d installed by %s (%d keys, %d revoked)",
                    version, adm.key.id, len(keys), len(revoked))
        return "ok", None

    # -- the deadline loop ---------------------------------------------------------------
    def _drive(self, on: bool) -> None:
        self._drive_gen += 1
        self._relay.drive(on)

    # -- transitions ---------------------------------------------------------------------
    def _go_safe(self, reason: str, command_id: str | None = None) -> None:
        """Relay off; ARMED/ENGAGED -> SAFE; a FAULT stays."""
        self._armed_until = self._armed_by = None
        if self._state == ENGAGED:
            self._end_engagement(reason, command_id, to=SAFE)
            return
        self._drive(False)
        self._drive_on_since = None
        if self._state == ARMED:
            self._transition(SAFE, reason, command_id)

    def _end_engagement(self, reason: str, command_id: str | None, to: str = ARMED) -> None:
        self._drive(False)
        now = time.monotonic()
        self._disagree_since = None
        self._drive_on_since = None
        self._engaged_until = self._engaged = None
        self._close_duty()
        if to == ARMED and (self._armed_until is None or now >= self._armed_until):
            to = SAFE
        if to == SAFE:
            self._armed_until = self._armed_by = None
        self._transition(to, reason, command_id)

    def _close_duty(self) -> None:
        """The open duty interval, if any, ends now: the budget it had not used comes back."""
        if self._duty_row is not None:
            row, end = self._duty_row, self._wall()
            self._durably("duty end", lambda: self._store.duty_close(row, end))
            self._duty_row = None

    def _enter_fault(self, code: str, detail: str, *, alarm: bool = False) -> None:
        self._drive(False)
        self._close_duty()
        self._drive_on_since = self._engaged_until = self._engaged = None
        self._armed_until = self._armed_by = None
        self._disagree_since = None
        self._fault = {"code": code, "detail": detail}
        fault = json.dumps(self._fault)
        self._durably("latched fault", lambda: self._store.put("fault", fault))
        if alarm:
            self._alarm = {"name": code, "detail": detail, "since": self._wall()}
            log.critical("effector: ALARM %s: %s; heartbeat stopped", code, detail)
        if self._state == FAULT:
            self._publish()
        else:
            self._transition(FAULT, f"{code}: {detail}")
        self._refresh_stage()

    def _fault_text(self) -> str:
        return f"{self._fault['code']}: {self._fault['detail']}" if self._fault else "unknown"

    def _transition(self, new: str, reason: str, command_id: str | None = None) -> None:
        old = self._state
        self._state, self._since, self._reason = new, self._wall(), reason
        log.warning("effector: %s -> %s (%s)", old, new, reason)
        self._audit_event("state", {"from": old, "to": new, "reason": reason,
                                    "command": command_id})
        self._publish()

    def _publish(self) -> None:
        now_m, now_w = time.monotonic(), self._wall()

        def wall(deadline: float | None) -> float | None:
            return None if deadline is None else round(now_w + (deadline - now_m), 3)

        key, aux = self._inputs_seen or ("unknown", False)
        state = {
            "v": 1, "site": self._config.node.site, "node": self._config.node.id,
            "state": self._state, "since": round(self._since, 3), "reason": self._reason,
            "enabled": self._eff.enabled, "armed_until": wall(self._armed_until),
            "armed_by": self._armed_by, "engaged_until": wall(self._engaged_until),
            "engagement": self._engaged, "key_switch": key, "aux_closed": aux,
            "fault": self._fault, "alarm": self._alarm, "keys_version": self._ring.version,
            "t": round(now_w, 3),
        }
        if self._alarm is not None:
            self._alarm_sent = now_m
        self._emitter.put(("state", state))

    def _audit_event(self, kind: str, data: dict[str, Any]) -> None:
        self._emitter.put(("audit", (kind, data, self._wall())))

    def _drain(self) -> None:
        with self._lock:
            self._report_junk(force=True)
        self._emitter.stop()

    def _join_loop(self) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    # -- the self-test's relay pulse (edgenode/selftest/pulse.py decides who may ask) -------
