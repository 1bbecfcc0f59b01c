"""Command admission: from an MQTT payload to an authentic, fresh command meant for this node.

Checks, in order: size, JSON shape, signature present, key known (not revoked), signature
valid; then (authentic commands, each audited) retained flag, site, node, action, role, params,
clock, issue/expiry times, lifetime. The replay check is the effector's, under its lock.
`admit_trusted` is the one entry without a signature: for an issuer the daemon authenticated
in-process (a SAPIENT peer over mutual TLS), judged by the same checks after the signature.
Nothing here touches the relay.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgenode.config import KEYS_VERSION_MAX, Config
from edgenode.control.envelope import ULID_RE, Envelope, Malformed, parse
from edgenode.control.keys import ALLOWED, KeyRing, TrustedKey, parse_key_list
from edgenode.ulid import new_ulid

log = logging.getLogger(__name__)

ACTIONS = ("arm", "engage", "disengage", "safe", "reset", "selftest", "rebirth", "keys-update",
           "allow-add", "allow-remove")
# Actions that may name a list of nodes; arm and engage name exactly one.
LIST_ACTIONS = frozenset({"safe", "selftest", "rebirth"})
# Obeyed whatever the clock says: they only ever make the node safer.
ALWAYS_OBEYED = frozenset({"safe", "disengage"})
CLOCK_GATED = frozenset({"arm", "engage"})
# The role of an in-process, already-authenticated issuer (keys.ALLOWED["peer"]).
PEER_ROLE = "peer"
# `system:id`; an operator key id has no colon (envelope.KEY_ID_RE), so the two never meet.
TRUSTED_ISSUER_RE = re.compile(r"^[a-z]{2,16}:[A-Za-z0-9_.@-]{1,64}$")
# The lifetime of the envelope the node makes for a trusted issuer's command: it acts at once.
TRUSTED_LIFETIME_S = 10.0


@dataclass(frozen=True)
class Rejection:
    code: str
    detail: str
    command_id: str | None
    authentic: bool  # signature verified: the command is audited; otherwise it is junk

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else self.code


@dataclass(frozen=True)
class Issuer:
    """Who sent a command that carries no signature: a system the daemon authenticated
    in-process (`sapient:<node uuid>`, over mutual TLS). Same `id` and `role` as a key."""

    id: str
    role: str


@dataclass(frozen=True)
class Admitted:
    envelope: Envelope
    key: TrustedKey | Issuer
    # The clock-sync state read during admission (milliseconds before the command acts):
    # the effector's engage check uses it instead of asking the system a second time.
    clock_synced: bool = False


def _num(params: dict[str, Any], name: str) -> float:
    value = params.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"'{name}' must be a number")
    return float(value)


def demo_keys_allowed(config: Config) -> bool:
    """Demo keys (made by `edgenode run --sim`) are valid only with the simulated relay."""
    return config.relay.backend == "sim"


def check_params(action: str, params: dict[str, Any], config: Config) -> str | None:
    """None when the params fit the action, else what is wrong (naming the field)."""
    eff = config.effector
    allow_demo = demo_keys_allowed(config)
    try:
        if action == "arm":
            if set(params) != {"ttl_s"}:
                return "arm takes exactly {ttl_s}"
            ttl = _num(params, "ttl_s")
            if not 0 < ttl <= eff.max_arm_s:
                return f"ttl_s {ttl} outside (0, effector.max_arm_s {eff.max_arm_s}]"
        elif action == "engage":
            target = set(params) - {"duration_s", "airspace_override", "identity_override"}
            if "duration_s" not in params or target not in ({"track"}, {"bearing_deg"}):
                return "engage takes duration_s and exactly one of track, bearing_deg"
            duration = _num(params, "duration_s")
            if not 0 < duration <= eff.max_engage_s:
                return (f"duration_s {duration} outside (0, effector.max_engage_s "
                        f"{eff.max_engage_s}]")
            if "track" in params and not (isinstance(params["track"], str)
                                          and ULID_RE.match(params["track"])):
                return "track must be a track id (ULID)"
            if "bearing_deg" in params:
                bearing = _num(params, "bearing_deg")
                if not 0 <= bearing < 360:
                    return f"bearing_deg {bearing} outside [0, 360)"
            why = params.get("airspace_override")
            if why is not None and not (isinstance(why, str) and 8 <= len(why.strip()) <= 200):
                return "airspace_override must be the reason, 8 to 200 characters"
            why = params.get("identity_override")
            if why is not None and not (isinstance(why, str) and 8 <= len(why.strip()) <= 200):
                return "identity_override must be the reason, 8 to 200 characters"
        elif action == "keys-update":
            if not {"version", "keys"} <= set(params) <= {"version", "keys", "revoked"}:
                return "keys-update takes version, keys and optionally revoked"
            version = params["version"]
            if (isinstance(version, bool) or not isinstance(version, int)
                    or not 1 <= version <= KEYS_VERSION_MAX):
                # Above the config's own bound no config could ever outbid it again.
                return f"version must be an integer in [1, {KEYS_VERSION_MAX}]"
            keys = parse_key_list(params["keys"])
            if not allow_demo and any(k.demo for k in keys):
                return "keys holds a demo key: demo keys work only with the simulated relay"
            revoked = params.get("revoked", [])
            if not isinstance(revoked, list) or not all(isinstance(r, str) for r in revoked):
                return "revoked must be a list of key ids"
        elif action in ("allow-add", "allow-remove"):
            return _allow_params(action, params)
        elif params:
            return f"{action} takes no params, got {sorted(params)[:5]}"
    except ValueError as exc:
        return str(exc)
    return None


def _allow_params(action: str, params: dict[str, Any]) -> str | None:
    """allow-add {uas_id, expires_at, note?}, allow-remove {uas_id} (Remote ID allow-list)."""
    wanted = {"uas_id", "expires_at"} if action == "allow-add" else {"uas_id"}
    optional = {"note"} if action == "allow-add" else set()
    if not wanted <= set(params) <= wanted | optional:
        return f"{action} takes {sorted(wanted)}" + (f" and optionally {sorted(optional)}"
                                                     if optional else "")
    uas_id = params["uas_id"]
    if not (isinstance(uas_id, str) and 1 <= len(uas_id) <= 20 and uas_id.isprintable()):
        return "uas_id must be 1 to 20 printable characters"
    if action == "allow-add":
        _num(params, "expires_at")
        note = params.get("note", "")
        if not (isinstance(note, str) and len(note) <= 200):
            return "note must be a string of at most 200 characters"
    return None


class Admission:
    def __init__(self, config: Config, ring: Callable[[], KeyRing],
                 clock_synced: Callable[[], bool], *,
                 wall_clock: Callable[[], float] = time.time):
        self._config = config
        self._wall = wall_clock
        self._ring = ring
        self._clock_synced = clock_synced

    def clock_ok(self) -> bool:
        try:
            return bool(self._clock_synced())
        except Exception:
            return False

    def _authenticate(self, payload: bytes) -> tuple[Envelope, TrustedKey] | Rejection:
        """Shape, key and signature: the checks before anything is known to be authentic."""
        try:
            env = parse(payload)
        except Malformed as exc:
            return Rejection(exc.code, exc.detail, exc.command_id, False)
        ring = self._ring()
        key = ring.keys.get(env.key_id)
        if key is None:
            code = "revoked_key" if env.key_id in ring.revoked else "unknown_key"
            return Rejection(code, f"key '{env.key_id}' (key set version {ring.version})",
                             env.id, False)
        if not key.verify(env.signature, env.signed_bytes):
            return Rejection("bad_signature", f"signature does not verify with key "
                             f"'{key.id}'", env.id, False)
        return env, key

    def admit(self, payload: bytes, retained: bool,
              now: float | None = None) -> Admitted | Rejection:
        eff = self._config.effector
        if len(payload) > eff.max_command_bytes:
            return Rejection("oversized", f"{len(payload)} bytes > effector.max_command_bytes "
                             f"{eff.max_command_bytes}", None, False)
        try:
            authentic = self._authenticate(payload)
        except Exception as exc:
            # Nothing authentic was read: whatever the checks could not judge is junk. It
            # must not reach the effector's internal-error path (which goes SAFE): an
            # unsigned message may never move or silence anything.
            log.debug("admission: unjudgeable payload", exc_info=True)
            return Rejection("malformed", f"unprocessable envelope ({type(exc).__name__})",
                             None, False)
        if isinstance(authentic, Rejection):
            return authentic
        env, key = authentic
        return self._judge(env, key, retained, now)

    def admit_trusted(self, issuer: str, action: str,
                      params: dict[str, Any]) -> Admitted | Rejection:
        """A command from an issuer the daemon has already authenticated in-process (the
        SAPIENT peer over mutual TLS): no envelope, signature or replay cache to check, so the
        node makes the envelope (a fresh id, issued now) and judges it with every check after
        the signature, under the role `peer` (engage, disengage, safe; never arm)."""
        if not TRUSTED_ISSUER_RE.match(issuer):
            raise ValueError(f"issuer {issuer!r} is not SYSTEM:ID (e.g. sapient:<node uuid>)")
        now = self._wall()
        node = self._config.node
        lifetime = min(TRUSTED_LIFETIME_S, self._config.effector.command_max_lifetime_s)
        raw = {"v": 1, "id": new_ulid(), "site": node.site, "node": node.id, "action": action,
               "params": params, "issued_at": now, "expires_at": now + lifetime,
               "key_id": issuer}
        env = Envelope(raw["id"], node.site, (node.id,), False, action, params, now,
                       now + lifetime, issuer, b"", b"", raw)
        return self._judge(env, Issuer(issuer, PEER_ROLE), False, now)

    def _judge(self, env: Envelope, key: TrustedKey | Issuer, retained: bool,
               now: float | None) -> Admitted | Rejection:
        """Every check after authentication: retained, site, node, action, role, params,
        clock, issue and expiry times, lifetime."""
        eff = self._config.effector

        def reject(code: str, detail: str) -> Rejection:
            return Rejection(code, detail, env.id, True)

        node = self._config.node
        if retained:
            return reject("retained", "a retained command is never acted on")
        if env.site != node.site:
            return reject("wrong_site", f"command for site '{env.site}', this is '{node.site}'")
        if node.id not in env.nodes:
            return reject("wrong_node", f"command for {list(env.nodes)[:5]}, this is "
                          f"'{node.id}'")
        if env.action not in ACTIONS:
            return reject("unknown_action", f"'{env.action}' is not one of {list(ACTIONS)}")
        if env.node_is_list and env.action not in LIST_ACTIONS:
            return reject("wrong_node", f"{env.action} must name exactly one node, not a list")
        if env.action not in ALLOWED[key.role]:
            return reject("role_not_allowed", f"key '{key.id}' has role {key.role}, which may "
                          f"not {env.action}")
        problem = check_params(env.action, env.params, self._config)
        if problem:
            return reject("bad_params", problem)
        synced = self.clock_ok()
        if env.action in CLOCK_GATED and not synced:
            return reject("clock_not_synced", f"{env.action} needs a synchronised clock")
        now = self._wall() if now is None else now
        lifetime = env.expires_at - env.issued_at
        if lifetime <= 0:
            return reject("malformed", "expires_at is not after issued_at")
        if lifetime > eff.command_max_lifetime_s:
            return reject("lifetime_too_long", f"lifetime {lifetime:.1f} s > "
                          f"effector.command_max_lifetime_s {eff.command_max_lifetime_s}")
        # With an unsynchronised clock the node cannot judge freshness; safe and disengage
        # are obeyed anyway (they only stop things), everything else is judged as usual.
        if synced or env.action not in ALWAYS_OBEYED:
            if env.issued_at > now + eff.clock_skew_s:
                return reject("issued_in_future", f"issued {env.issued_at - now:.1f} s ahead of "
                              f"this node's clock (effector.clock_skew_s {eff.clock_skew_s})")
            if now >= env.expires_at:
                return reject("expired", f"expired {now - env.expires_at:.1f} s ago")
        return Admitted(env, key, synced)
