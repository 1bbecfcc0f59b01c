"""Who and where may be jammed: the airspace rules (manned aircraft, no-jam geometry) and the
Remote ID allow-list, judged for an engage and, for the airspace, again while it runs. The
rules themselves live in edgenode.identify; the daemon injects them as callables, so control
imports nothing of identify. Mixed into `Effector` (edgenode.control.effector), whose state
and audit log it uses under the effector's lock."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from edgenode.control.admission import Admitted

log = logging.getLogger("edgenode.control.effector")

# The airspace rules (edgenode.identify via the daemon): (engage target params, running) ->
# why the engagement may not start (running=False) or go on (running=True), or None. An admin's
# airspace_override passes every refusal except `never_engageable` (the target is a manned
# aircraft's track).
AirspaceCheck = Callable[[dict[str, Any], bool], str | None]
NEVER_ENGAGEABLE = "never_engageable"
AIRSPACE_CHECK_S = 0.2  # a running engagement is re-judged this often (it must stop within 1 s)
# The Remote ID allow-list (edgenode.identify.identity_guard via the daemon): engage target
# params -> why the target is an allow-listed, trusted drone (`allow_listed: ...`), or None.
# An admin's identity_override passes it; the override is audited.
IdentityCheck = Callable[[dict[str, Any]], str | None]
# The allow-list's keeper (the daemon): (action allow-add|allow-remove, params, admin key id)
# -> a note for the result; ValueError -> the command is rejected with its message.
AllowListChange = Callable[[str, dict[str, Any], str], str | None]


class TargetGuards:
    """The guard half of Effector: see the module docstring. Not usable on its own."""

    def _airspace_refusal(self, target: dict[str, Any], running: bool) -> str | None:
        if self._airspace is None:
            return None
        try:
            return self._airspace(target, running)
        except Exception as exc:  # an airspace check that fails refuses (and stops)
            log.exception("effector: airspace check failed")
            return f"airspace_check_failed: {type(exc).__name__}: {exc}"

    def _identity_refusal(self, adm: Admitted) -> str | None:
        """The allow-list's refusal (None: no objection); "overridden: <refusal>" when an
        admin's identity_override passes it. A check that fails refuses."""
        params = adm.envelope.params
        override = params.get("identity_override")
        if override is not None and adm.key.role != "admin":
            return (f"role_not_allowed: identity_override needs an admin key; "
                    f"'{adm.key.id}' is {adm.key.role}")
        if self._identity is None:
            return None
        try:
            refusal = self._identity(params)
        except Exception as exc:
            log.exception("effector: identity check failed")
            return f"identity_check_failed: {type(exc).__name__}: {exc}"
        if refusal and override is not None:
            return f"overridden: {refusal}"
        return refusal

    def _airspace_stop(self, now: float) -> str | None:
        """Why the running engagement must end now (an aircraft entered the volume, the feed
        was lost), judged every AIRSPACE_CHECK_S; None under an admin override."""
        engaged = self._engaged or {}
        if (self._airspace is None or "airspace_override" in engaged
                or now - self._airspace_at < AIRSPACE_CHECK_S):
            return None
        self._airspace_at = now
        reason = self._airspace_refusal(engaged, running=True)
        return None if reason is None else f"airspace: {reason}"

    def _do_allow_add(self, adm: Admitted) -> tuple[str, str | None]:
        return self._allow_change(adm)

    def _do_allow_remove(self, adm: Admitted) -> tuple[str, str | None]:
        return self._allow_change(adm)

    def _allow_change(self, adm: Admitted) -> tuple[str, str | None]:
        """A Remote ID allow-list change (admin role, checked by admission), audited."""
        env = adm.envelope
        if self._allow_list is None:
            return "rejected", "not_available: no [remoteid] on this node"
        try:
            note = self._allow_list(env.action, env.params, adm.key.id)
        except ValueError as exc:
            return "rejected", f"bad_params: {exc}"
        self._audit_event("allow_list", {"action": env.action, "by": adm.key.id,
                                         "command": env.id, "params": env.params,
                                         "note": note})
        log.warning("effector: Remote ID %s %s by %s", env.action, env.params.get("uas_id"),
                    adm.key.id)
        return "ok", note
