"""I2C checks per configured part: it answers with the right identity, its reading is
plausible, and a compass agrees with the configured mast heading."""

from __future__ import annotations

import math
from typing import Any

from edgenode.selftest.result import FAIL, PASS, WARN, check, skip

HEADING_TOLERANCE_DEG = 5.0
COMPASSES = ("qmc5883l", "lis3mdl")
# Plausible readings per kind: (field, low, high, unit).
RANGES: dict[str, list[tuple[str, float, float, str]]] = {
    "ina219": [("bus_voltage_v", 0.0, 32.0, "V"), ("current_a", -0.1, 3.5, "A")],
    "ina226": [("bus_voltage_v", 0.0, 36.0, "V"), ("current_a", -0.1, 3.5, "A")],
    "tmp102": [("temperature_c", -40.0, 85.0, "C")],
    "bme280": [("temperature_c", -40.0, 85.0, "C"), ("humidity_pct", 0.0, 100.0, "%")],
}
FIELD_UT = (20.0, 70.0)  # the Earth's field is 25..65 uT


def i2c_checks(facts: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for dev in facts["devices"]:
        out += _device(dev, facts)
    return out


def _device(dev: dict[str, Any], facts: dict[str, Any]) -> list[dict[str, Any]]:
    name, kind = dev["name"], dev["kind"]
    part, where = f"i2c:{name}", f"bus {dev['bus']} 0x{dev['address']:02x}"
    error = facts["errors"].get(name)
    reading = facts["readings"].get(name)
    names = [f"{part}.reading"] + ([f"{part}.heading"] if kind in COMPASSES else [])
    if error:
        if "identity" in error.lower() or "reads 0x" in error.lower():
            hint = f"{kind} '{name}' at {where} has the wrong identity ({error}): another " \
                   "part answers at that address; check the address and the part fitted"
        else:
            hint = f"{kind} '{name}' does not answer at {where} ({error}): check its wiring " \
                   f"and supply, then `i2cdetect -y {dev['bus']}`"
        why = f"the part does not answer ({part}.answer)"
        return [check(part, f"{part}.answer", FAIL, value="no answer", expected=where,
                      hint=hint), *(skip(part, n, why) for n in names)]
    if reading is None:
        why = "no reading yet (the I2C stage reads once a second)"
        return [skip(part, f"{part}.answer", why), *(skip(part, n, why) for n in names)]
    out = [check(part, f"{part}.answer", PASS, value=where, expected=where), _reading(
        part, kind, reading)]
    if kind in COMPASSES:
        out.append(_heading(part, reading, facts))
    return out


def _reading(part: str, kind: str, reading: dict[str, Any]) -> dict[str, Any]:
    if reading.get("overflow"):
        return check(part, f"{part}.reading", WARN, value="overflow", expected="in range",
                     hint=f"{kind} reports an overflow: the measured quantity is beyond the "
                     "chip's range (shunt_ohm too large, or a magnet at the compass)")
    if kind in COMPASSES:
        ut = 1e6 * math.sqrt(sum(v * v for v in reading["field_t"]))
        lo, hi = FIELD_UT
        if not lo <= ut <= hi:
            return check(part, f"{part}.reading", WARN, value=ut, unit="uT",
                         expected=f"{lo:g} .. {hi:g} uT", hint=f"field {ut:.1f} uT is not "
                         f"the Earth's ({lo:g} .. {hi:g} uT): steel or a magnet near the "
                         "compass, or a failing chip; move it clear of steel and cables, or "
                         "replace it")
        return check(part, f"{part}.reading", PASS, value=ut, unit="uT",
                     expected=f"{lo:g} .. {hi:g} uT")
    for key, lo, hi, unit in RANGES.get(kind, []):
        value = reading.get(key)
        if value is not None and not lo <= value <= hi:
            return check(part, f"{part}.reading", WARN, value=value, unit=unit,
                         expected=f"{key} {lo:g} .. {hi:g} {unit}",
                         hint=f"{key} {value:.2f} {unit} is implausible: check the part's "
                         "wiring and, for a power monitor, shunt_ohm")
    first = RANGES.get(kind, [("", 0, 0, "")])[0]
    return check(part, f"{part}.reading", PASS, value=reading.get(first[0]), unit=first[3],
                 expected="plausible")


def _heading(part: str, reading: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    tolerance = min(HEADING_TOLERANCE_DEG, facts["compass_tolerance_deg"])
    true = (reading["heading_deg"] + facts["magnetic_declination_deg"]) % 360
    mast = facts["mast_heading_deg"]
    off = (true - mast + 180) % 360 - 180
    expected = f"{mast:.0f} +- {tolerance:g} deg (node.mast_heading_deg)"
    if abs(off) > tolerance:
        return check(part, f"{part}.heading", WARN, value=true, unit="deg true",
                     expected=expected, hint=f"compass reads {true:.0f} deg true, "
                     f"{off:+.0f} deg off node.mast_heading_deg ({mast:.0f}): the mast has "
                     "turned, the compass is mounted askew, or mast_heading_deg or "
                     "magnetic_declination_deg is wrong; re-measure the mast heading")
    return check(part, f"{part}.heading", PASS, value=true, unit="deg true", expected=expected)
