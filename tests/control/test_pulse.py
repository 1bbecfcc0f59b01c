"""The self-test's relay pulse (Effector.selftest_pulse, edgenode.control.pulse) on the fake
relay board: given only while SAFE with the key switch at TEST and for at most PULSE_MAX_S,
the aux contact timed against the coil model, the pulse audited as a local command and its
result."""

from __future__ import annotations

from typing import Any

import pytest

from edgenode.control.pulse import PULSE_MAX_S, PulseRefused
from tests.control.conftest import Rig, RigFactory

# A settle window generous enough for the coil model's few ms on a loaded machine.
SETTLE_MS = 500


def highs(rig: Rig) -> list[tuple[float, float]]:
    """(on, off) monotonic times of each period the drive was high."""
    hist, out, since = rig.drive_history(), [], None
    for t, level in hist:
        if level and since is None:
            since = t
        elif not level and since is not None:
            out.append((since, t))
            since = None
    return out


def audited(rig: Rig, kind: str) -> list[dict[str, Any]]:
    assert rig.effector.flush()
    return [r["data"] for r in rig.audit if r.get("kind") == kind]


@pytest.mark.parametrize("duration_s", [0.0, -0.1, PULSE_MAX_S + 0.05, 5.0])
def test_a_pulse_outside_0_to_pulse_max_s_is_refused_and_the_relay_stays_off(
        make_rig: RigFactory, duration_s: float) -> None:
    rig = make_rig(key="test")
    with pytest.raises(PulseRefused) as refused:
        rig.effector.selftest_pulse(duration_s, "tech")
    assert str(refused.value) == f"pulse of {duration_s:g} s: at most 0.2 s"
    assert not rig.drive_went_high()
    assert audited(rig, "command") == []


def test_a_pulse_needs_the_key_switch_at_test(make_rig: RigFactory) -> None:
    for position in ("operate", "off"):
        rig = make_rig(key=position)
        with pytest.raises(PulseRefused) as refused:
            rig.effector.selftest_pulse(0.05, "tech")
        assert str(refused.value) == (f"effector SAFE, key switch at {position}: a pulse "
                                      "needs SAFE and TEST")
        assert not rig.drive_went_high()


def test_a_pulse_needs_the_effector_safe(make_rig: RigFactory) -> None:
    rig = make_rig(key="test")
    assert rig.send("alice", "arm", {"ttl_s": 30})["status"] == "ok"
    with pytest.raises(PulseRefused) as refused:
        rig.effector.selftest_pulse(0.05, "tech")
    assert str(refused.value) == "effector ARMED, key switch at test: a pulse needs SAFE and TEST"
    assert not rig.drive_went_high()
    assert [c["action"] for c in audited(rig, "command") if c.get("source") == "local"] == []


def test_a_pulse_drives_the_relay_once_for_its_duration_and_times_the_aux_contact(
        make_rig: RigFactory) -> None:
    rig = make_rig(key="test", aux_settle_ms=SETTLE_MS)
    result = rig.effector.selftest_pulse(PULSE_MAX_S, "tech")
    [(on, off)] = highs(rig)
    assert off - on >= PULSE_MAX_S
    assert not rig.drive()
    assert result["action"] == "relay-pulse" and result["by"] == "tech"
    assert result["state"] == "SAFE" and result["settle_s"] == SETTLE_MS / 1000
    # timed from just before the drive rose to just after it fell; under a second (a bound
    # only a stall of the whole machine could reach)
    assert off - on - 0.0001 <= result["on_s"] < 1.0
    # the coil model closes the contact a few ms after the drive (the first time it is seen
    # closed counts, not the last) and opens it a few ms after the drive drops
    assert 0 < result["aux_closed_after_s"] < PULSE_MAX_S / 2
    assert 0 < result["aux_opened_after_s"] < SETTLE_MS / 1000
    for timing in ("on_s", "aux_closed_after_s", "aux_opened_after_s"):
        assert result[timing] == round(result[timing], 4)  # reported to 0.1 ms
    assert rig.effector.state == "SAFE"
    assert audited(rig, "command") == [{"source": "local", "action": "relay-pulse",
                                        "by": "tech", "duration_s": PULSE_MAX_S}]
    assert audited(rig, "result") == [result]


def test_a_pulse_with_a_dead_coil_reports_the_contact_never_closed(
        make_rig: RigFactory) -> None:
    rig = make_rig(key="test", aux_settle_ms=100)
    rig.coil.dead = True
    result = rig.effector.selftest_pulse(0.05, "tech")
    [(on, off)] = highs(rig)
    # the drive falls when the pulse is over: a bound twenty times the pulse, which only a
    # stall of the whole machine could reach, not a tight timing
    assert off - on < 1.0
    assert result["aux_closed_after_s"] is None
    assert result["aux_opened_after_s"] is not None  # it never closed: open at once
    assert result["aux_opened_after_s"] < 0.1
    assert not rig.drive()


def test_a_pulse_with_a_welded_contact_reports_it_never_opened(make_rig: RigFactory) -> None:
    rig = make_rig(key="test", aux_settle_ms=100)
    rig.coil.stuck = True  # welded from the coil model's next look (the loop would latch a
    # stuck_on FAULT after aux_settle_ms of it: the pulse comes well before)
    result = rig.effector.selftest_pulse(0.05, "tech")
    assert result["aux_closed_after_s"] is not None
    assert result["aux_opened_after_s"] is None
    assert len(highs(rig)) == 1 and not rig.drive()
