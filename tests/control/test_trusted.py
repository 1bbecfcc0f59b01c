"""Commands from an issuer the daemon authenticated in-process (the SAPIENT peer): the node
makes the envelope, judges it like a signed one, and audits it as such."""

from __future__ import annotations

import time

from edgenode.control.envelope import ULID_RE
from tests.control.conftest import NODE, SITE, Rig

ISSUER = "sapient:3f6c1f1e-peer"


def commands(rig: Rig) -> list[dict]:
    assert rig.effector.flush()
    return [r["data"] for r in rig.audit if r["kind"] == "command"]


def test_a_trusted_command_is_audited_with_the_envelope_the_node_made(rig: Rig) -> None:
    rig.send("alice", "arm", {"ttl_s": 30})
    before = time.time()
    result = rig.effector.handle_trusted(ISSUER, "engage", {"duration_s": 5,
                                                            "bearing_deg": 90},
                                         {"peer": "10.0.0.9"})
    assert result["status"] == "ok", result
    record = commands(rig)[-1]
    assert (record["issuer"], record["via"]) == (ISSUER, {"peer": "10.0.0.9"})
    env = record["envelope"]
    assert ULID_RE.match(env.pop("id")) and env.pop("id", None) is None
    issued = env.pop("issued_at")
    assert before <= issued <= time.time()
    assert env == {"v": 1, "site": SITE, "node": NODE, "action": "engage",
                   "params": {"duration_s": 5, "bearing_deg": 90},
                   "expires_at": issued + 10.0, "key_id": ISSUER}
    counters = rig.effector.counters
    assert (counters["received"], counters["received_trusted"]) == (2, 1)


def test_a_refused_trusted_command_is_audited_with_what_was_asked(rig: Rig) -> None:
    result = rig.effector.handle_trusted(ISSUER, "arm", {"ttl_s": 30})  # a peer never arms
    assert (result["status"], result["reason"].split(":")[0]) == ("rejected",
                                                                  "role_not_allowed")
    record = commands(rig)[-1]
    assert record == {"issuer": ISSUER, "via": {},
                      "envelope": {"key_id": ISSUER, "action": "arm",
                                   "params": {"ttl_s": 30}}}


def test_an_issuer_that_is_not_system_colon_id_is_an_error_and_makes_safe(rig: Rig) -> None:
    rig.arm_and_engage(duration_s=30)
    result = rig.effector.handle_trusted("Not An Issuer", "safe", {})
    assert (result["status"], result["id"], result["state"]) == ("error", None, "SAFE")
    assert result["reason"] == ("internal_error: ValueError: issuer 'Not An Issuer' is not "
                                "SYSTEM:ID (e.g. sapient:<node uuid>)")
    assert not rig.drive()
