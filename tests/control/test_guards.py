"""The effector's target guards (edgenode.control.guards) on the fake relay board, with the
daemon's checks stood in for by plain functions at the seam the daemon uses (`hooks`): a check
that fails refuses and names why, a running engagement is re-judged at most every
AIRSPACE_CHECK_S with its own target, and allow-list changes are answered and audited."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from edgenode.config.models import RemoteIdSection
from edgenode.control.envelope import ULID_RE
from edgenode.control.guards import AIRSPACE_CHECK_S
from edgenode.daemon.remoteid import AllowListKeeper
from edgenode.identify.identity_guard import RemoteIdGuard
from tests.control.conftest import Rig, RigFactory, wait_for

EFFECTOR_LOG = "edgenode.control.effector"


def failed_check_logs(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str | None]]:
    return [(r.getMessage(), r.exc_info[0].__name__ if r.exc_info and r.exc_info[0] else None)
            for r in caplog.records if r.name == EFFECTOR_LOG and r.levelno == logging.ERROR]


def test_an_airspace_check_that_fails_refuses_the_engage_naming_the_error(
        make_rig: RigFactory, caplog: pytest.LogCaptureFixture) -> None:
    def broken(target: dict[str, Any], running: bool) -> str | None:
        raise RuntimeError("ADS-B picture corrupt")

    rig = make_rig(hooks={"airspace": broken})
    assert rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    with caplog.at_level(logging.ERROR, logger=EFFECTOR_LOG):
        result = rig.send("bob", "engage", {"duration_s": 5, "bearing_deg": 90})
    assert (result["status"], result["reason"]) == (
        "rejected", "airspace_check_failed: RuntimeError: ADS-B picture corrupt")
    assert not rig.drive_went_high()
    assert failed_check_logs(caplog) == [("effector: airspace check failed", "RuntimeError")]


def test_an_identity_check_that_fails_refuses_the_engage_naming_the_error(
        make_rig: RigFactory, caplog: pytest.LogCaptureFixture) -> None:
    def broken(params: dict[str, Any]) -> str | None:
        raise OSError("allow-list unreadable")

    rig = make_rig(hooks={"identity": broken})
    assert rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    with caplog.at_level(logging.ERROR, logger=EFFECTOR_LOG):
        result = rig.send("bob", "engage", {"duration_s": 5, "bearing_deg": 90})
    assert (result["status"], result["reason"]) == (
        "rejected", "identity_check_failed: OSError: allow-list unreadable")
    assert not rig.drive_went_high()
    assert failed_check_logs(caplog) == [("effector: identity check failed", "OSError")]


class RecordingAirspace:
    """An airspace rule that objects to nothing and remembers what it was asked, when."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[float, dict[str, Any], bool]] = []

    def __call__(self, target: dict[str, Any], running: bool) -> str | None:
        with self.lock:
            self.calls.append((time.monotonic(), dict(target), running))
        return None

    def running_calls(self) -> list[tuple[float, dict[str, Any], bool]]:
        with self.lock:
            return self.calls[1:]


def test_a_running_engagement_is_rejudged_with_its_target_at_most_every_airspace_check_s(
        make_rig: RigFactory) -> None:
    airspace = RecordingAirspace()
    rig = make_rig(hooks={"airspace": airspace})
    rig.arm_and_engage(duration_s=30)
    assert wait_for(lambda: len(airspace.running_calls()) >= 4, 10), airspace.calls
    rig.send("alice", "safe")
    with airspace.lock:
        calls = list(airspace.calls)
    start_time, start_target, start_running = calls[0]
    assert start_running is False and start_target["bearing_deg"] == 90
    again = calls[1:]
    assert all(running is True for _, _, running in again)
    # the engagement's own target, not the command's whole params nor nothing
    assert all(t["bearing_deg"] == 90 and t["by"] == "alice" for _, t, _ in again)
    times = [start_time] + [t for t, _, _ in again]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # not at every heartbeat step (20 ms): a loaded machine only makes the gaps longer; half
    # the period leaves room for one call made late after its step began
    assert min(gaps[1:]) >= AIRSPACE_CHECK_S / 2, gaps


def test_a_refusal_while_running_stops_the_engagement_naming_the_airspace(
        make_rig: RigFactory) -> None:
    closed = threading.Event()

    def sector_closes(target: dict[str, Any], running: bool) -> str | None:
        if running and closed.is_set() and 80 <= target.get("bearing_deg", -1) <= 120:
            return "no_jam_sector: village (80-120 deg)"
        return None

    rig = make_rig(hooks={"airspace": sector_closes})
    rig.arm_and_engage(duration_s=30)
    closed.set()
    assert wait_for(lambda: not rig.drive(), 5)

    def reasons() -> list[str]:
        return [a["data"]["reason"] for a in list(rig.audit) if a.get("kind") == "state"]

    # The drive drops a moment before the state change's audit record is queued: wait for it.
    assert wait_for(lambda: "airspace: no_jam_sector: village (80-120 deg)" in reasons(), 5), \
        reasons()


def test_allow_list_commands_without_remoteid_are_rejected_as_not_available(
        make_rig: RigFactory) -> None:
    rig = make_rig()
    result = rig.send("root", "allow-add", {"uas_id": "FARM-0007",
                                            "expires_at": time.time() + 3600})
    assert (result["status"], result["reason"]) == (
        "rejected", "not_available: no [remoteid] on this node")
    result = rig.send("root", "allow-remove", {"uas_id": "FARM-0007"})
    assert (result["status"], result["reason"]) == (
        "rejected", "not_available: no [remoteid] on this node")


def test_an_allow_list_change_is_audited_with_its_command_and_note_and_logged(
        make_rig: RigFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    guard = RemoteIdGuard(RemoteIdSection.model_validate({"allow": []}), 0.0, 0.0)
    keeper = AllowListKeeper(guard, tmp_path / "remoteid-allow.json")
    rig = make_rig(hooks={"allow_list": keeper.change})
    with caplog.at_level(logging.WARNING, logger=EFFECTOR_LOG):
        result = rig.send("root", "allow-add", {"uas_id": "FARM-0007",
                                                "expires_at": time.time() + 3600})
    assert result["status"] == "ok", result
    assert result["reason"].startswith("FARM-0007 allow-listed until ")
    assert rig.effector.flush()
    [change] = [a["data"] for a in rig.audit if a.get("kind") == "allow_list"]
    assert change["command"] == result["id"]
    assert change["note"] == result["reason"]
    assert (change["action"], change["by"], change["params"]["uas_id"]) == (
        "allow-add", "root", "FARM-0007")
    assert [r.getMessage() for r in caplog.records if r.name == EFFECTOR_LOG
            and r.levelno == logging.WARNING] == ["effector: Remote ID allow-add FARM-0007 by root"]


def _allow_rig(make_rig: RigFactory, tmp_path: Path) -> Rig:
    guard = RemoteIdGuard(RemoteIdSection.model_validate({"allow": []}), 0.0, 0.0)
    keeper = AllowListKeeper(guard, tmp_path / "remoteid-allow.json")
    return make_rig(hooks={"allow_list": keeper.change})


LATER = 4_000_000_000.0  # 2096: a fixed expiry keeps the ids of the cases stable
BAD_ALLOW = [
    ("allow-add", {"uas_id": "FARM-0007"}, "allow-add takes ['expires_at', 'uas_id'] and "
     "optionally ['note']"),
    ("allow-add", {"uas_id": "FARM-0007", "expires_at": LATER, "by": "x"},
     "allow-add takes ['expires_at', 'uas_id'] and optionally ['note']"),
    ("allow-remove", {"uas_id": "FARM-0007", "note": "gone"}, "allow-remove takes ['uas_id']"),
    ("allow-add", {"uas_id": "", "expires_at": LATER},
     "uas_id must be 1 to 20 printable characters"),
    ("allow-add", {"uas_id": "F" * 21, "expires_at": LATER},
     "uas_id must be 1 to 20 printable characters"),
    ("allow-remove", {"uas_id": "FARM\n0007"}, "uas_id must be 1 to 20 printable characters"),
    ("allow-remove", {"uas_id": 7}, "uas_id must be 1 to 20 printable characters"),
    ("allow-add", {"uas_id": "FARM-0007", "expires_at": LATER, "note": "n" * 201},
     "note must be a string of at most 200 characters"),
    ("allow-add", {"uas_id": "FARM-0007", "expires_at": LATER, "note": 5},
     "note must be a string of at most 200 characters"),
]


@pytest.mark.parametrize(("action", "params", "problem"), BAD_ALLOW,
                         ids=[str(i) for i in range(len(BAD_ALLOW))])
def test_allow_list_commands_with_bad_params_are_refused_naming_the_fault(
        make_rig: RigFactory, tmp_path: Path, action: str, params: dict[str, Any],
        problem: str) -> None:
    result = _allow_rig(make_rig, tmp_path).send("root", action, params)
    assert (result["status"], result["reason"]) == ("rejected", f"bad_params: {problem}")


def test_allow_list_commands_at_their_limits_are_taken(make_rig: RigFactory,
                                                       tmp_path: Path) -> None:
    rig = _allow_rig(make_rig, tmp_path)
    until = time.time() + 3600
    for params in ({"uas_id": "F", "expires_at": until},
                   {"uas_id": "F" * 20, "expires_at": until, "note": "n" * 200}):
        result = rig.send("root", "allow-add", params)
        assert result["status"] == "ok", result
    assert rig.send("root", "allow-remove", {"uas_id": "F"})["status"] == "ok"


@pytest.mark.parametrize(("error", "reason"), [
    (OSError(28, "No space left on device"),
     "disk_full: OSError: [Errno 28] No space left on device"),
    (RuntimeError("allow-list keeper broke"),
     "internal_error: RuntimeError: allow-list keeper broke"),
])
def test_a_command_whose_handling_fails_makes_the_node_safe_and_says_why(
        make_rig: RigFactory, error: Exception, reason: str) -> None:
    def failing_keeper(action: str, params: dict[str, Any], by: str) -> str:
        raise error  # e.g. the allow-list file cannot be written

    rig = make_rig(hooks={"allow_list": failing_keeper})
    rig.arm_and_engage(duration_s=30)
    result = rig.send("root", "allow-add", {"uas_id": "FARM-0007",
                                            "expires_at": time.time() + 3600})
    assert (result["status"], result["reason"], result["state"]) == ("error", reason, "SAFE")
    assert ULID_RE.match(result["id"])  # the command's id, read back from its payload
    assert wait_for(lambda: not rig.drive(), 1)
    assert rig.effector.flush()
    states = [r["data"] for r in rig.audit if r.get("kind") == "state"]
    assert states[-1]["to"] == "SAFE"
    assert states[-1]["reason"] == f"internal error handling a command: {type(error).__name__}"
    assert rig.send("alice", "arm", {"ttl_s": 10})["status"] == "ok"  # and it goes on
