"""Radar checks from two reads of the radar stage's facts over a window: the data port opens,
the chirp configuration was accepted, the bytes are frames, frames come at the configured
rate, frame numbers advance."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from edgenode.selftest.result import FAIL, PASS, WARN, check, skip

PART = "radar"
MAX_SKIPPED_PCT = 5.0
MAX_REJECTED_PCT = 2.0
RATE_TOLERANCE = 0.25


def radar_checks(f0: dict[str, Any], f1: dict[str, Any]) -> list[dict[str, Any]]:
    port, baud = f1["data_port"], f1["data_baud"]
    if f1["port_error"]:
        why = "the data port does not open (radar.port)"
        return [check(PART, "radar.port", FAIL, value="closed", expected="opens",
                      hint=f"data port {port} does not open ({f1['port_error']}): check the "
                      "radar's USB cable and power and the udev link "
                      "(hardware/99-edgenode.rules); a second program may hold the port"),
                *(skip(PART, n, why) for n in ("radar.config", "radar.framing", "radar.rate",
                                                "radar.numbering"))]
    out = [check(PART, "radar.port", PASS, value="open", expected="opens")]
    out.append(_config(f1))
    d = {k: f1[k] - f0[k] for k in ("bytes_in", "frames", "bytes_skipped", "frames_rejected")}
    window = max(f1["t"] - f0["t"], 1e-3)
    if d["bytes_in"] == 0:
        why = "no bytes arrived (radar.rate)"
        return [*out, skip(PART, "radar.framing", why),
                check(PART, "radar.rate", FAIL, value=0.0, unit="frames/s",
                      expected=_expected_rate(f1),
                      hint=f"no byte on {port} for {window:.1f} s: the module is not sending; "
                      "check its power and that it was started (sensorStart), then the cable"),
                skip(PART, "radar.numbering", why)]
    out.append(_framing(d, baud))
    arrived = d["frames"] + d["frames_rejected"]
    if arrived == 0:
        why = "no frame decoded (radar.framing)"
        return [*out, skip(PART, "radar.rate", why), skip(PART, "radar.numbering", why)]
    out.append(_rate(f1, arrived / window))
    out.append(_numbering(f1))
    return out


def _config(f: dict[str, Any]) -> dict[str, Any]:
    if not f["config_required"]:
        return skip(PART, "radar.config", "no chirp upload configured (radar.cli_port and "
                    "radar.chirp_config): the module runs the configuration it has")
    if f["config_error"]:
        return check(PART, "radar.config", FAIL, value="refused", expected="accepted",
                     hint=f"the chirp configuration was not accepted: {f['config_error']}; "
                     f"check radar.chirp_config against the module's SDK and the CLI port "
                     f"{f['cli_port']}")
    if not f["configured"]:
        return check(PART, "radar.config", FAIL, value="not uploaded", expected="accepted",
                     hint=f"the module does not answer on its configuration port "
                     f"{f['cli_port']}: check radar.cli_port and radar.cli_baud and the cable")
    return check(PART, "radar.config", PASS, value="accepted", expected="accepted")


def _framing(d: dict[str, int], baud: int) -> dict[str, Any]:
    skipped = 100.0 * d["bytes_skipped"] / d["bytes_in"]
    arrived = d["frames"] + d["frames_rejected"]
    rejected = 100.0 * d["frames_rejected"] / arrived if arrived else 0.0
    expected = f"<= {MAX_SKIPPED_PCT:g} % of bytes skipped, <= {MAX_REJECTED_PCT:g} % of " \
               "frames rejected"
    detail = {"bytes_in": d["bytes_in"], "bytes_skipped": d["bytes_skipped"],
              "frames": d["frames"], "frames_rejected": d["frames_rejected"],
              "rejected_pct": rejected}
    if d["frames"] == 0:
        return check(PART, "radar.framing", FAIL, value=skipped, unit="%", expected=expected,
                     hint=f"{skipped:.0f} % of radar bytes were not frames and no frame "
                     f"decoded: the baud rate is likely wrong; the module's data port must "
                     f"run at radar.data_baud ({baud}); check its configuration and the cable",
                     **detail)
    if skipped > MAX_SKIPPED_PCT or rejected > MAX_REJECTED_PCT:
        return check(PART, "radar.framing", WARN, value=skipped, unit="%", expected=expected,
                     hint=f"{skipped:.0f} % of radar bytes were not frames, "
                     f"{d['frames_rejected']} of {arrived} frames rejected: noise on the line; "
                     f"check the data port's cable, shield and ground and the baud rate "
                     f"({baud}); a second program may hold the port", **detail)
    return check(PART, "radar.framing", PASS, value=skipped, unit="%", expected=expected,
                 **detail)


def _expected_rate(f: dict[str, Any]) -> str:
    period = f.get("frame_period_s")
    return "frames arrive" if not period else \
        f"{1 / period:.1f} frames/s +- {RATE_TOLERANCE:.0%}"


def _rate(f: dict[str, Any], rate: float) -> dict[str, Any]:
    period = f.get("frame_period_s")
    if not period:
        return check(PART, "radar.rate", PASS, value=rate, unit="frames/s",
                     expected="frames arrive (no frame period configured to compare with)")
    want = 1.0 / period
    if abs(rate / want - 1.0) <= RATE_TOLERANCE:
        return check(PART, "radar.rate", PASS, value=rate, unit="frames/s",
                     expected=_expected_rate(f))
    return check(PART, "radar.rate", WARN, value=rate, unit="frames/s",
                 expected=_expected_rate(f),
                 hint=f"frames arrive at {rate:.1f}/s, configured {want:.1f}/s: check that "
                 "radar.frame_period_ms matches the chirp configuration's frameCfg; a busy "
                 "USB hub or CPU loses frames")


def _numbering(f: dict[str, Any]) -> dict[str, Any]:
    """Numbers advance by one per frame; a lost or rejected frame is a larger step (the rate
    check counts those), a bit error a wild one: the median step is what the module does."""
    numbers = f.get("recent_frame_numbers") or []
    if len(numbers) < 3:
        return skip(PART, "radar.numbering", "too few frames decoded to compare numbers "
                    "(radar.framing)")
    steps = [b - a for a, b in pairwise(numbers)]
    step = sorted(steps)[len(steps) // 2]
    if step <= 0:
        return check(PART, "radar.numbering", FAIL, value=step, unit="per frame",
                     expected="numbers advance (median step 1)",
                     hint=f"frame numbers do not advance (median step {step}, last "
                     f"{numbers[-3:]}): the module restarts or repeats itself; power-cycle it "
                     "and check its supply")
    return check(PART, "radar.numbering", PASS, value=step, unit="per frame",
                  expected="numbers advance (median step 1)")
