"""The relay pulse: the one self-test step that moves the relay, so it is refused unless it
is asked for on the unit itself (`edgenode selftest --pulse-relay`, never from afar), the key
switch is at TEST (the board then cuts the jammer's RF supply and feeds the test lamp) and the
effector is SAFE. The pulse itself (at most 200 ms, audited) is the effector's
(`Effector.selftest_pulse`), which checks state and key again under its lock."""

from __future__ import annotations

from typing import Any

from edgenode.control.pulse import PULSE_MAX_S, PulseRefused
from edgenode.selftest.result import FAIL, PASS, SKIP, check

PART = "relay"
PULSE_S = 0.1


def pulse_refusal(*, local: bool, asked: bool, state: dict[str, Any] | None) -> str | None:
    """Why the relay may not be pulsed now, or None."""
    if not local:
        return "a remote self-test never pulses the relay"
    if not asked:
        return "the relay is pulsed only with --pulse-relay"
    if state is None:
        return "the effector has not reported its state yet"
    if state.get("state") != "SAFE":
        return f"the effector is {state.get('state')}: the relay is pulsed only while SAFE " \
               "(send `safe` first)"
    if state.get("key_switch") != "test":
        return f"key switch at {str(state.get('key_switch')).upper()}: turn it to TEST (which " \
               "cuts the jammer's RF supply) for the relay pulse"
    return None


def pulse_check(effector: Any, state: dict[str, Any] | None, *, local: bool,
                by: str = "local selftest", duration_s: float = PULSE_S) -> dict[str, Any]:
    expected = f"aux closes within the settle time of a {1000 * duration_s:.0f} ms pulse " \
               f"(<= {1000 * PULSE_MAX_S:.0f} ms) and opens after it"
    refusal = pulse_refusal(local=local, asked=True, state=state)
    if refusal is None and effector is None:
        refusal = "no effector in this process"
    if refusal is None:
        try:
            r = effector.selftest_pulse(duration_s, by)
        except PulseRefused as exc:
            refusal = str(exc)
    if refusal is not None:
        return check(PART, "relay.pulse", SKIP, expected=expected,
                     hint=f"relay pulse refused: {refusal}")
    closed, opened = r["aux_closed_after_s"], r["aux_opened_after_s"]
    value = None if closed is None else round(1000 * closed, 1)
    if closed is None or opened is None:
        what = "did not close while driven" if closed is None else "stayed closed after"
        return check(PART, "relay.pulse", FAIL, value=value, unit="ms", expected=expected,
                     hint=f"the aux contact {what} the {1000 * duration_s:.0f} ms pulse: K1's "
                     "coil, its driver or the aux wiring (hardware/relay-board.md); the "
                     "effector latches FAULT if it stays closed", **r)
    return check(PART, "relay.pulse", PASS, value=value, unit="ms", expected=expected, **r)
