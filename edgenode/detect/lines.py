"""Line evidence for the acoustic detector: a history of each block's strongest free lines,
and the pairs of lines one rotating shaft makes (LinePairs).

A block's lines (interpolated frequency, dB over the floor) are worked out only when a line
test asks for them, and once: while the comb hears a drone, no line test runs, and then
finding the lines would only cost time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgenode.detect.acoustic_params import AcousticParams
from edgenode.detect.rank import detrended_spread, median, row_median

_ABSENT = -1e9  # log frequency / log ratio of an absent line: fails every comparison
TRACK_GATE = 0.08  # log f: blocks whose f0 (or lower line) is this close belong to one track


class LineHistory:
    """The last `width` blocks' whitened spectra (dB over the floor) and free tonal peaks."""

    def __init__(self, width: int, bins: int, first_bin: int, df: float, min_db: float,
                 most: int) -> None:
        self.width = width
        self._white = np.zeros((width, bins))
        self._free = np.zeros((width, bins), dtype=bool)
        self._lines: list[list[tuple[float, float]] | None] = [None] * width
        self._row = -1
        self._first_bin, self._df = first_bin, df
        self._min_db, self._most = min_db, most

    def push(self, white: np.ndarray, free: np.ndarray) -> None:
        self._row = (self._row + 1) % self.width
        self._white[self._row] = white
        self._free[self._row] = free
        self._lines[self._row] = None

    def lines(self, age: int) -> list[tuple[float, float]]:
        """(interpolated frequency in Hz, dB over the floor) of the strongest free lines over
        min_db, at most `most` of them, in rising frequency, of the block `age` hops before
        the newest."""
        row = (self._row - age) % self.width
        found = self._lines[row]
        if found is None:
            found = self._lines[row] = self._strongest(self._white[row], self._free[row])
        return found

    def _strongest(self, white: np.ndarray, free: np.ndarray) -> list[tuple[float, float]]:
        strong = np.flatnonzero(free & (white > self._min_db))
        if len(strong) > self._most:
            top = np.argpartition(white[strong], -self._most)[-self._most:]
            strong = np.sort(strong[top])
        if len(strong) == 0:
            return []
        b = np.minimum(np.maximum(strong, 1), len(white) - 2)
        lines = []
        for i, a, m, c in zip(b.tolist(), white[b - 1].tolist(), white[b].tolist(),
                              white[b + 1].tolist(), strict=True):
            denom = a - 2.0 * m + c
            delta = 0.0 if denom >= 0 else min(max(0.5 * (a - c) / denom, -0.5), 0.5)
            lines.append(((i + self._first_bin + delta) * self._df, m))
        return lines


@dataclass(frozen=True)
class LinePair:
    """Two lines that wandered together at a fixed ratio over the pair window."""

    low_hz: float
    high_hz: float
    f0_hz: float  # the common fundamental where the ratio is one of small harmonics, else low
    strength: float  # same units as the comb score
    presence: float  # share of the window's blocks that held the pair
    wander: float  # detrended spread of the low line's log frequency
    ratio_tolerance: float  # log-ratio gate the pair held, from the frequency resolution


class LinePairs:
    """Co-wandering line pairs: the strongest free lines of each block over pair_window_s.

    Two lines from one rotating shaft (two harmonics of a blade-pass, or a blade-pass and a
    motor line) keep their frequency ratio while the shaft speeds up and slows down; lines of
    independent sources wander independently, and machinery does not wander at all. A pair
    counts when, in most blocks of the window, a line near the lower one has a partner at the
    same ratio within what the frequency resolution can measure, and the lower line wanders by
    at least twice that tolerance (else the ratio test proves nothing) and by wander_min.
    """

    def __init__(self, p: AcousticParams, hop_s: float, df: float) -> None:
        self.p = p
        self.df = df
        self.width = max(3, round(p.pair_window_s / hop_s))
        self.k = p.pair_lines
        # Every pair (lower i, upper j) of a block's lines, sorted by frequency: (W, C) arrays
        # of the lower line's log frequency, the log ratio and the pair's dB over threshold.
        lower, upper = np.triu_indices(self.k, 1)
        self.combos = list(zip(lower.tolist(), upper.tolist(), strict=True))
        shape = (self.width, len(self.combos))
        self.low = np.full(shape, _ABSENT)
        self.ratio = np.full(shape, _ABSENT)
        self.gain = np.zeros(shape)
        self.with_pairs = np.zeros(self.width, dtype=bool)  # blocks that held two lines
        self.row = -1
        self.filled = 0
        self.min_log_ratio = math.log(p.pair_min_ratio)
        self.pending = np.zeros(self.width, dtype=bool)  # blocks whose pairs are not taken

    def push(self) -> None:
        """A new block is in the history; its pairs are taken when best() needs them."""
        self.row = (self.row + 1) % self.width
        self.filled = min(self.filled + 1, self.width)
        self.pending[self.row] = True

    def _record(self, row: int, lines: list[tuple[float, float]]) -> None:
        """The pairs of a block's strong free lines, in that block's row."""
        self.pending[row] = False
        m = len(lines)
        self.with_pairs[row] = m >= 2
        if m < 2:  # no pair in this block
            self.low[row] = _ABSENT
            self.ratio[row] = _ABSENT
            self.gain[row] = 0.0
            return
        logf = [math.log(f) for f, _ in lines]
        level = [min(db, 20.0) for _, db in lines]
        offset = 2.0 * (self.p.peak_db - 1.0)
        low, ratio, gain = [], [], []
        for i, j in self.combos:  # a dozen pairs: plain Python
            if j < m:
                low.append(logf[i])
                ratio.append(logf[j] - logf[i])
                gain.append(level[i] + level[j] - offset)
            else:
                low.append(_ABSENT)
                ratio.append(_ABSENT)
                gain.append(0.0)
        self.low[row] = low
        self.ratio[row] = ratio
        self.gain[row] = gain

    def best(self, history: LineHistory) -> LinePair | None:
        """The strongest pair that held over the whole window, or None."""
        p = self.p
        if self.filled < self.width:
            return None
        for row in np.flatnonzero(self.pending).tolist():
            self._record(row, history.lines((self.row - row) % self.width))
        # Cheap necessary condition first: enough blocks held two strong lines at all.
        if np.count_nonzero(self.with_pairs) < p.pair_presence * self.width:
            return None
        low, ratio = self.low[self.row], self.ratio[self.row]
        keep = np.flatnonzero(ratio >= self.min_log_ratio)
        if len(keep) == 0:
            return None
        low, ratio = low[keep], ratio[keep]
        # Ratio precision: each interpolated line is good to ~pair_precision_bins of a bin.
        tol = p.pair_precision_bins * self.df * (np.exp(-low) + np.exp(-low - ratio))
        order = (self.row + 1 + np.arange(self.width)) % self.width  # oldest first
        past_low, past_ratio = self.low[order], self.ratio[order]  # (W, C)
        err = np.abs(past_ratio[None] - ratio[:, None, None])  # (P, W, C)
        err[(err >= tol[:, None, None])
            | (np.abs(past_low[None] - low[:, None, None]) >= TRACK_GATE)] = np.inf
        pick = np.argmin(err, axis=2)  # (P, W): the best-fitting pair in each block
        held = err.min(axis=2) < np.inf
        presence = np.add.reduce(held, axis=1) / self.width
        candidates = np.flatnonzero(presence >= p.pair_presence)
        if len(candidates) == 0:
            return None
        rows = np.arange(self.width)
        # Strength like the comb score: the median over the window of the pair's dB over the
        # peak threshold, counting blocks without the pair as zero.
        gain = np.where(held[candidates], self.gain[order][rows, pick[candidates]], 0.0)
        strength = row_median(gain) / (p.block_hits * 4.0)
        for c in np.argsort(-strength, kind="stable"):  # strongest first; the first that
            q = candidates[c]                            # also wanders is the answer
            hit = held[q]
            track = past_low[rows[hit], pick[q][hit]]
            wander = detrended_spread(rows[hit].tolist(), track.tolist())
            if wander < max(p.wander_min, 2.0 * float(tol[q])):
                continue
            low_hz = math.exp(float(low[q]))
            # The window's median ratio: steadier than one block's for naming the harmonics.
            held_ratio = median(past_ratio[rows[hit], pick[q][hit]])
            return LinePair(low_hz=low_hz, high_hz=low_hz * math.exp(float(ratio[q])),
                            f0_hz=common_fundamental(low_hz, held_ratio, float(tol[q]),
                                                      p.harmonics),
                            strength=float(strength[c]), presence=float(presence[q]),
                            wander=wander, ratio_tolerance=float(tol[q]))
        return None


def common_fundamental(low_hz: float, log_ratio: float, tol: float, harmonics: int) -> float:
    """low / k for the smallest k that makes both lines harmonics k and m of one fundamental
    (m <= harmonics); the lower line itself where no such k exists."""
    ratio = math.exp(log_ratio)
    for k in range(1, harmonics):
        m = round(k * ratio)
        if m <= harmonics and abs(math.log(m / (k * ratio))) < 2.0 * tol:
            return low_hz / k
    return low_hz
