"""Relay checks from the effector's published state: drive, aux contact and key switch agree;
the key switch's position (OFF or TEST: jamming impossible until OPERATE)."""

from __future__ import annotations

from typing import Any

from edgenode.selftest.result import FAIL, PASS, WARN, check, skip

PART = "relay"


def relay_checks(state: dict[str, Any] | None) -> list[dict[str, Any]]:
    if state is None:
        hint = "the effector has not reported its inputs yet: the daemon is starting, or " \
               "the relay's GPIO lines did not open (journalctl -u edgenode)"
        return [check(PART, "relay.inputs", FAIL, value=None, expected="consistent",
                      hint=hint), skip(PART, "relay.key", "no inputs read (relay.inputs)")]
    if state.get("error"):
        return [check(PART, "relay.inputs", FAIL, value=None, expected="consistent",
                      hint=f"the relay's GPIO lines do not open ({state['error']}): a running "
                      "daemon holds them, or relay.chip_label and the line numbers are wrong"),
                skip(PART, "relay.key", "no inputs read (relay.inputs)")]
    key, aux = state.get("key_switch"), bool(state.get("aux_closed"))
    driven = state.get("state") == "ENGAGED"
    out = [_inputs(state, key, aux, driven)]
    if key == "invalid":
        out.append(skip(PART, "relay.key", "the key switch reads both positions "
                        "(relay.inputs)"))
    elif key == "operate":
        out.append(check(PART, "relay.key", PASS, value=key, expected="operate"))
    else:
        out.append(check(PART, "relay.key", WARN, value=key, expected="operate",
                         hint=f"key switch at {str(key).upper()}: jamming impossible until it "
                         "is turned to OPERATE"))
    return out


def _inputs(state: dict[str, Any], key: Any, aux: bool, driven: bool) -> dict[str, Any]:
    value = f"drive {'on' if driven else 'off'}, aux {'closed' if aux else 'open'}"
    expected = "aux contact follows the drive; key switch in one position"
    fault = state.get("fault")
    if fault:
        code = fault.get("code") if isinstance(fault, dict) else fault
        detail = fault.get("detail", "") if isinstance(fault, dict) else ""
        return check(PART, "relay.inputs", FAIL, value=value, expected=expected,
                     hint=f"effector FAULT {code} ({detail}): K1 may be welded or its aux "
                     "contact mis-wired; turn the key to OFF, check K1 and the aux wiring "
                     "(hardware/relay-board.md), then an admin reset", fault=code)
    if key == "invalid":
        return check(PART, "relay.inputs", FAIL, value="key reads TEST and OPERATE",
                     expected=expected, hint="the key switch reads both TEST and OPERATE: "
                     "a wiring fault at the key switch inputs (hardware/wiring.md)")
    if aux != driven:
        return check(PART, "relay.inputs", FAIL, value=value, expected=expected,
                     hint=f"aux contact {'closed' if aux else 'open'} while the relay is "
                     f"{'driven' if driven else 'off'}: K1 stuck or the aux wiring broken; "
                     "the jammer may be powered: turn the key to OFF and check K1")
    return check(PART, "relay.inputs", PASS, value=value, expected=expected)
