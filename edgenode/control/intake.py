"""The effector's command intake: every inbound command gets exactly one result, never an
exception; unsigned or malformed input is counted and summarised at a limited rate (never one
audit record or log line each); the rest is audited and handed to the state machine
(`Effector._act`). `handle_trusted` is the same path for an issuer the daemon authenticated
in-process (no signature, no replay cache), for the SAPIENT peer. Mixed into `Effector`
(edgenode.control.effector), whose admission, audit log and lock it uses."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from edgenode.control.admission import Admitted, Rejection
from edgenode.control.envelope import ULID_RE
from edgenode.control.store import disk_full
from edgenode.link.mqtt import InboundMessage

log = logging.getLogger("edgenode.control.effector")

RESULT_VERSION = 1
JUNK_REPORT_S = 10.0
_SLOW_ACTIONS = (b"selftest", b"rebirth")


class CommandIntake:
    """The intake half of Effector: see the module docstring. Not usable on its own."""

    @staticmethod
    def may_be_slow(msg: InboundMessage) -> bool:
        """True for a command that may take long to answer (selftest, rebirth: served by
        the daemon). Judged on the raw bytes without parsing; a false alarm only costs the
        slower path."""
        return any(action in msg.payload for action in _SLOW_ACTIONS)

    def handle_command(self, msg: InboundMessage) -> dict[str, Any]:
        """Answer one command: exactly one result, never an exception."""
        self._count("received")
        self._emitter.hold()
        try:
            return self._handle(msg)
        finally:
            self._emitter.release()

    def handle_trusted(self, issuer: str, action: str, params: dict[str, Any],
                       via: dict[str, Any] | None = None) -> dict[str, Any]:
        """Answer one command from an issuer the daemon has authenticated in-process (the
        SAPIENT peer over mutual TLS: `issuer` "sapient:<node uuid>", `via` what the audit
        log should keep of where it came from). It skips only what a signature gives: there is
        no signature to verify, and the replay check cannot fire because the node makes the
        command's id. Every other check of admission and of the state machine applies, and it
        is audited like a signed command. Exactly one result, never an exception."""
        self._count("received", "received_trusted")
        self._emitter.hold()
        try:
            try:
                outcome = self._admission.admit_trusted(issuer, action, params)
                env_raw = outcome.envelope.raw if isinstance(outcome, Admitted) else \
                    {"key_id": issuer, "action": action, "params": params}
                return self._audited(outcome, {"issuer": issuer, "via": via or {},
                                               "envelope": env_raw})
            except Exception as exc:
                return self._failed(exc, None)
        finally:
            self._emitter.release()

    def _handle(self, msg: InboundMessage) -> dict[str, Any]:
        try:
            outcome = self._admission.admit(msg.payload, msg.retain)
            if isinstance(outcome, Rejection) and not outcome.authentic:
                return self._junk(outcome)
            env_raw = outcome.envelope.raw if isinstance(outcome, Admitted) else None
            return self._audited(outcome, {"topic": msg.topic, "retained": msg.retain,
                                           "envelope": env_raw or _try_json(msg.payload)})
        except Exception as exc:
            return self._failed(exc, _try_id(msg.payload))

    def _audited(self, outcome: Admitted | Rejection, record: dict[str, Any]) -> dict[str, Any]:
        """An authentic command: into the audit log, then refused or acted on."""
        self._audit_event("command", record)
        if isinstance(outcome, Rejection):
            return self._result(outcome.command_id, "rejected", outcome.reason)
        return self._act(outcome)

    def _failed(self, exc: Exception, command_id: str | None) -> dict[str, Any]:
        log.exception("effector: command handling failed; making safe")
        try:
            self.make_safe(f"internal error handling a command: {type(exc).__name__}")
        except Exception:
            log.exception("effector: make_safe failed")
        code = "disk_full" if disk_full(exc) else "internal_error"
        return self._result(command_id, "error", f"{code}: {type(exc).__name__}: {exc}")

    def _junk(self, rej: Rejection) -> dict[str, Any]:
        # Unsigned junk: counted, summarised at a limited rate, never one audit record each.
        self._count("junk", *(("unparseable",) if rej.command_id is None else ()))
        with self._lock:
            self._junk_since[rej.code] += 1
            self._report_junk(force=False)
        return self._result(rej.command_id, "rejected", rej.reason, audit=False, quiet=True)

    def _report_junk(self, force: bool) -> None:
        now = time.monotonic()
        if not self._junk_since or (not force and now - self._junk_reported < JUNK_REPORT_S):
            return
        counts = dict(self._junk_since)
        total = sum(counts.values())
        log.warning("effector: %d unsigned or malformed command(s) rejected %s", total, counts)
        self._audit_event("junk", {"count": total, "reasons": counts,
                                   "total_since_start": self.counters["junk"]})
        self._junk_since.clear()
        self._junk_reported = now

    def _result(self, command_id: str | None, status: str, reason: str | None, *,
                audit: bool = True, quiet: bool = False) -> dict[str, Any]:
        result = {"v": RESULT_VERSION, "id": command_id, "status": status, "reason": reason,
                  "state": self._state}
        self._count("results", f"result_{status}")
        if audit:
            self._audit_event("result", result)
        if status != "ok" and not quiet:  # junk is logged in the rate-limited summary
            log.info("effector: command %s %s: %s", command_id, status, reason)
        return result


def _try_json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return None


def _try_id(payload: bytes) -> str | None:
    value = _try_json(payload)
    # Only a ULID is echoed as the result's id (the cmd_result schema): anything else is junk.
    if isinstance(value, dict) and isinstance(value.get("id"), str) and ULID_RE.match(value["id"]):
        return value["id"]
    return None
