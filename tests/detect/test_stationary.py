"""The stationary-line mask (edgenode/detect/stationary.py) on pure tones."""

from __future__ import annotations

import numpy as np

from edgenode.detect.acoustic_params import AcousticParams
from edgenode.detect.stationary import StationaryLines

RATE = 24000
DF = RATE / 2160  # the detector's short bins at 24 kHz (90 ms)
LO = 5  # its first short bin (60 Hz)


def masked_hz(tone_hz: float, seconds: float = 4.0) -> list[float]:
    """Short-bin frequencies masked near one steady tone (within 3 bins) after `seconds` of
    it in faint noise."""
    p = AcousticParams()
    lines = StationaryLines(RATE, p, LO, 720, DF)
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    x = (np.sin(2 * np.pi * tone_hz * t) + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    hop = 1080
    mask = lines.mask
    for start in range(0, len(x) - hop + 1, hop):
        mask = lines.update(x[start:start + hop], hop / RATE)
    near = [b for b in np.flatnonzero(mask).tolist() if abs((b + LO) * DF - tone_hz) < 3 * DF]
    return [round((b + LO) * DF, 1) for b in near]


def test_a_steady_line_between_two_short_bins_is_masked_in_both() -> None:
    # 45.6 short bins: nearer to 46 (511.1 Hz), but 500.0 Hz peaks as often (issue 12: a
    # drifting generator's 4th harmonic peaked free there and made drone blocks).
    assert masked_hz(45.6 * DF) == [500.0, 511.1]


def test_a_steady_line_on_a_short_bin_is_masked_in_that_bin_only() -> None:
    assert masked_hz(46.1 * DF) == [511.1]
