"""Unsigned input can neither move nor silence the effector (issue 22 point 2): an envelope
whose content has no canonical form (a number beyond a double, a lone surrogate) is junk like
any other, counted in the rate-limited summary, and costs no audit record of its own."""

from __future__ import annotations

import base64
import json
import logging
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgenode.control.keys import OperatorIdentity
from tests.control.conftest import OPERATORS, Rig, command

STRANGER = OperatorIdentity("mallory", "admin", Ed25519PrivateKey.generate())


def uncanonical(who: OperatorIdentity, poison: str) -> bytes:
    """An engage with a random signature whose params carry `poison` as raw JSON text."""
    env = command(who, "engage", {"duration_s": 5, "bearing_deg": 90})
    env["signature"] = base64.b64encode(os.urandom(64)).decode()
    env["params"]["pad"] = "POISON"
    return json.dumps(env).replace('"POISON"', poison).encode()


@pytest.mark.parametrize("poison", ["1e400", '"\\ud800"', '{"x": -1e999}'])
def test_uncanonical_junk_leaves_an_engagement_running(rig: Rig, poison: str) -> None:
    rig.arm_and_engage(duration_s=20)
    rig.effector.flush()
    audited = len(rig.audit)
    for who in (STRANGER, OPERATORS["alice"]):
        for _ in range(100):
            result = rig.send_raw(uncanonical(who, poison))
            assert result["status"] == "rejected", result
            assert result["reason"].startswith("malformed"), result
    assert rig.effector.state == "ENGAGED"
    assert rig.drive(), "junk dropped the relay"
    assert rig.effector.counters["junk"] == 200
    assert rig.effector.counters.get("result_error", 0) == 0
    rig.effector.flush()
    # No record per junk message: at most the rate-limited summary.
    new = [r["kind"] for r in rig.audit[audited:]]
    assert set(new) <= {"junk"} and len(new) <= 1, new


def test_junk_costs_a_bounded_share_of_the_audit_log_and_of_the_log(
        rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="edgenode.control"):
        for i in range(2000):
            rig.send_raw(uncanonical(STRANGER, ["1e400", '"\\ud800"'][i % 2]))
            if i % 2:
                rig.send_raw(b"\xff" * (i % 50))
        rig.effector.stop()
    junk = [r for r in rig.audit if r["kind"] == "junk"]
    assert 1 <= len(junk) <= 2, [r["kind"] for r in rig.audit]
    assert sum(r["data"]["count"] for r in junk) == 3000
    assert sum(sum(r["data"]["reasons"].values()) for r in junk) == 3000
    assert junk[-1]["data"]["total_since_start"] == 3000
    # only the 1000 without a readable command id count as unparseable
    assert rig.effector.counters["unparseable"] == 1000
    # no log line per junk message either: the summary says it
    assert not [r for r in caplog.records if "effector: command " in r.getMessage()]
    summaries = [r for r in caplog.records if "unsigned or malformed" in r.getMessage()]
    assert len(summaries) == len(junk)
    assert not any(r["kind"] in ("command", "result") for r in rig.audit)
