"""Microphone array checks: the stream (opens, blocks at the configured rate, overruns), each
channel's level (silent, clipping, noise floor) and the wiring (swapped or reversed
microphones), from the acoustic stage's facts and the samples that arrived during the window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgenode.selftest.result import FAIL, PASS, WARN, check, skip
from edgenode.selftest.wiring import wiring_fit

PART = "acoustic"
# Loose: ALSA delivers the rate it opened at or fails; a shortfall is lost data (a stalling
# USB link, an overloaded CPU), which a few seconds can only estimate.
RATE_TOLERANCE = 0.5
SILENT_BELOW_MEDIAN_DB = 30.0
CLIP_LEVEL = 0.999
MAX_CLIPPED_SHARE = 0.001
FLOOR_RANGE_DBFS = (-110.0, -40.0)
FRAME_S = 0.02
# Wiring: a swap or sign that fits this much better than the wiring as it is names a
# culprit; below MIN_FIT (with a coherent field) the geometry itself is in doubt.
BETTER_BY = 0.03
MIN_FIT = 0.75
MIN_COHERENT_SHARE = 0.2
MIN_WIRING_S = 0.5
LEVEL_CHECKS = ("acoustic.silent", "acoustic.clipping", "acoustic.noise_floor",
                "acoustic.wiring")


def acoustic_checks(f0: dict[str, Any], f1: dict[str, Any], samples: np.ndarray | None,
                    positions_m: np.ndarray) -> list[dict[str, Any]]:
    stream = _stream(f0, f1)
    if stream["result"] == FAIL or samples is None or len(samples) < f1["sample_rate_hz"] // 4:
        why = "no audio to measure (acoustic.stream)"
        return [stream, *(skip(PART, n, why) for n in LEVEL_CHECKS)]
    # float32 as captured, and read in row chunks: a float64 copy of 2 s of 16 channels and
    # its temporaries were most of the self-test's memory spike in the daemon.
    x = np.asarray(samples, dtype=np.float32)
    fs = f1["sample_rate_hz"]
    mic_channel = f1["channel_map"]
    stats = _column_stats(x, int(fs * FRAME_S))
    rms_db = 20 * np.log10(np.sqrt(stats.mean_square) + 1e-12)
    median_db = float(np.median(rms_db))
    silent = [i for i in range(x.shape[1])
              if rms_db[i] < median_db - SILENT_BELOW_MEDIAN_DB or not stats.nonzero[i]]
    clipped_share = stats.clipped / len(x)
    clipped = [i for i in range(x.shape[1]) if clipped_share[i] > MAX_CLIPPED_SHARE]

    def names(mics: list[int]) -> str:
        if len(mics) == x.shape[1] > 2:
            return f"all {len(mics)}"
        return ", ".join(f"{i} (capture channel {mic_channel[i]})" for i in mics)

    out = [stream]
    if silent:
        out.append(check(PART, "acoustic.silent", FAIL, value=len(silent), unit="channels",
                         expected="0", hint=f"microphone(s) {names(silent)} silent "
                         f"({', '.join(f'{rms_db[i]:.0f}' for i in silent)} dBFS, the array's "
                         f"median {median_db:.0f} dBFS): a dead microphone or a broken "
                         "connection; check that channel's cable and the array board",
                         mics=silent))
    else:
        out.append(check(PART, "acoustic.silent", PASS, value=0, unit="channels",
                         expected="0"))
    if clipped:
        out.append(check(PART, "acoustic.clipping", FAIL,
                         value=100 * float(clipped_share.max()), unit="% of samples",
                         expected=f"<= {100 * MAX_CLIPPED_SHARE:g} %",
                         hint=f"microphone(s) {names(clipped)} clip (up to "
                         f"{100 * clipped_share.max():.1f} % of samples at full scale): the "
                         "capture gain is too high or something loud is at the mast; lower "
                         "the gain (alsamixer) and check the array's gain setting",
                         mics=clipped))
    else:
        out.append(check(PART, "acoustic.clipping", PASS,
                         value=100 * float(clipped_share.max()), unit="% of samples",
                         expected=f"<= {100 * MAX_CLIPPED_SHARE:g} %"))
    good = [i for i in range(x.shape[1]) if i not in silent and i not in clipped]
    out.append(_floor(stats.frame_power, good, names))
    out.append(_wiring(x, good, clipped, positions_m, fs, names))
    return out


def _stream(f0: dict[str, Any], f1: dict[str, Any]) -> dict[str, Any]:
    device, fs = f1["device"], f1["sample_rate_hz"]
    if f1["open_error"]:
        return check(PART, "acoustic.stream", FAIL, value="closed", expected="opens",
                     hint=f"audio device {device} does not open at {fs} Hz x "
                     f"{f1['channels']} channels ({f1['open_error']}): check the array's USB "
                     "cable, `arecord -l`, and acoustic.device")
    window = max(f1["t"] - f0["t"], 1e-3)
    rate = (f1["blocks"] - f0["blocks"]) * f1["block_frames"] / window
    expected = f"{fs} samples/s +- {RATE_TOLERANCE:.0%}"
    if f1["blocks"] == f0["blocks"]:
        return check(PART, "acoustic.stream", FAIL, value=0.0, unit="samples/s",
                     expected=expected, hint=f"no audio from {device} for "
                     f"{f1['since_block_s']:.1f} s: the array stopped delivering (USB reset, "
                     "power); check its cable and `arecord -l`; a second program may hold it")
    overruns = f1["overruns"] - f0["overruns"]
    if abs(rate / fs - 1) > RATE_TOLERANCE or overruns:
        return check(PART, "acoustic.stream", WARN, value=rate, unit="samples/s",
                     expected=expected + ", no overruns",
                     hint=f"{rate:.0f} samples/s arrive, {overruns} overrun(s): the CPU or "
                     "USB cannot keep up; check the load (top) and the array's USB port",
                     overruns=overruns)
    return check(PART, "acoustic.stream", PASS, value=rate, unit="samples/s",
                 expected=expected)


@dataclass(frozen=True)
class _ColumnStats:
    mean_square: np.ndarray  # per channel, float64
    clipped: np.ndarray  # samples at full scale, per channel
    nonzero: np.ndarray  # any sample not zero, per channel
    frame_power: np.ndarray  # (frames of FRAME_S, channels): mean square per frame


def _column_stats(x: np.ndarray, frame: int, rows_at_once: int = 8192) -> _ColumnStats:
    """One pass over `x` (samples, channels) a few thousand rows at a time: temporaries of
    the whole window (its square, its magnitude) would double the self-test's memory."""
    rows_at_once -= rows_at_once % frame
    sum_sq = np.zeros(x.shape[1])
    clipped = np.zeros(x.shape[1], np.int64)
    nonzero = np.zeros(x.shape[1], bool)
    powers = []
    usable = len(x) // frame * frame
    for at in range(0, len(x), rows_at_once):
        rows = x[at:at + rows_at_once]
        sq = np.square(rows, dtype=np.float64)
        sum_sq += sq.sum(axis=0)
        clipped += np.count_nonzero(np.abs(rows) >= CLIP_LEVEL, axis=0)
        nonzero |= np.any(rows != 0, axis=0)
        whole = sq[:max(0, min(len(sq), usable - at)) // frame * frame]
        powers.append(whole.reshape(-1, frame, x.shape[1]).mean(axis=1))
    return _ColumnStats(sum_sq / max(len(x), 1), clipped, nonzero,
                        np.concatenate(powers) if powers else np.zeros((0, x.shape[1])))


def _floor(frame_power: np.ndarray, good: list[int], names: Any) -> dict[str, Any]:
    lo, hi = FLOOR_RANGE_DBFS
    expected = f"{lo:g} .. {hi:g} dBFS"
    if not good:
        return skip(PART, "acoustic.noise_floor", "every channel is silent or clipping "
                    "(acoustic.silent, acoustic.clipping)")
    floor = 10 * np.log10(np.percentile(frame_power[:, good], 10, axis=0) + 1e-24)
    bad = [good[k] for k in range(len(good)) if not lo <= floor[k] <= hi]
    value = float(np.median(floor))
    if bad:
        return check(PART, "acoustic.noise_floor", WARN, value=value, unit="dBFS",
                     expected=expected, hint=f"noise floor of microphone(s) {names(bad)} "
                     f"outside {expected}: wind on the ports, machinery at the mast, or a "
                     "changed capture gain; check the windscreens and the gain", mics=bad)
    return check(PART, "acoustic.noise_floor", PASS, value=value, unit="dBFS",
                 expected=expected)


def _wiring(x: np.ndarray, good: list[int], clipped: list[int], positions_m: np.ndarray,
            fs: int, names: Any) -> dict[str, Any]:
    expected = f"fit >= {MIN_FIT:g}; no swap or reversal fits better"
    if clipped:
        return skip(PART, "acoustic.wiring", "clipping distorts the phases "
                    "(acoustic.clipping)")
    if len(x) < MIN_WIRING_S * fs:
        return skip(PART, "acoustic.wiring", f"too little audio arrived in the window "
                    f"({len(x) / fs:.2f} s; acoustic.stream) to compare phases")
    if len(good) < 4:
        return skip(PART, "acoustic.wiring", "fewer than 4 microphones carry signal "
                    "(acoustic.silent)")
    w = wiring_fit(x, np.asarray(positions_m)[good], fs, cols=good)
    detail = {"coherent_share": w.coherent_share, "swap_fit": w.swap_fit,
              "flip_fit": w.flip_fit}
    if w.swap_fit >= w.flip_fit and w.swap_fit > w.fit + BETTER_BY:
        pair = [good[w.best_swap[0]], good[w.best_swap[1]]]
        return check(PART, "acoustic.wiring", FAIL, value=w.fit, expected=expected,
                     hint=f"microphones {names(pair)} appear swapped (fit {w.fit:.2f}, "
                     f"{w.swap_fit:.2f} with them exchanged): swap their cables back or fix "
                     "acoustic.channel_map; bearings are wrong until then",
                     swapped=pair, **detail)
    if w.flip_fit > w.fit + BETTER_BY:
        mic = good[w.best_flip]
        return check(PART, "acoustic.wiring", FAIL, value=w.fit, expected=expected,
                     hint=f"microphone {names([mic])} appears reversed in polarity (fit "
                     f"{w.fit:.2f}, {w.flip_fit:.2f} inverted): check its wiring",
                     reversed=mic, **detail)
    if w.coherent_share < MIN_COHERENT_SHARE:
        return skip(PART, "acoustic.wiring", f"no coherent sound to check the wiring "
                    f"against (strongest source {w.coherent_share:.0%} of the power)")
    if w.fit < MIN_FIT:
        return check(PART, "acoustic.wiring", WARN, value=w.fit, expected=expected,
                     hint=f"the sound does not fit the array's geometry (fit {w.fit:.2f}): "
                     "check acoustic.geometry and acoustic.channel_map against the array",
                     **detail)
    return check(PART, "acoustic.wiring", PASS, value=w.fit, expected=expected, **detail)
