"""Long integration for a distant drone whose lines never clear the per-block threshold.

At 150 m a small quad's harmonics stand a few dB over a 45 dB(A) background in one 90 ms
spectrum: below peak_db in every block, yet always there. Averaging the same spectra over
seconds leaves each line's mean where it was while the noise floor's spread shrinks with the
square root of the number of spectra (5.6 dB for one, ~0.7 dB for sixty), so the lines come
out. The threshold is set in units of that spread, measured on the averaged spectrum itself
(median absolute deviation across frequency), so it follows the averaging and the site.

What the long average cannot show is wander, the per-block path's proof that a line is a
rotor and not a machine. The 1 Hz spectrum carries that here: a machine's line holds its
fine bin for seconds on end (StationaryLines.held_mask), a rotor's line only dwells for a
moment where its wander turns, and bins blocked during the average carry no evidence.
The caller (AcousticDetector) lets this path decide only while the per-block path has heard
nothing for an average's length: it is for drones too far for the blocks.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from edgenode.detect.lines import TRACK_GATE
from edgenode.detect.rank import MAD_TO_SIGMA, median, running_median


@dataclass(frozen=True)
class FaintParams:
    average_s: float = 8.0  # time constant of the power average
    every_s: float = 0.5  # how often the average is judged
    z_min: float = 3.0  # a line stands this many floor spreads above the floor
    z_cap: float = 12.0  # evidence per line saturates: one loud line is not a comb
    confirm: int = 4  # consecutive judgements with one f0 before it decides
    keep: float = 0.7  # of the comb threshold: what a decided comb must keep scoring


class FaintLines:
    """Exponentially averaged power spectrum, judged every `every_s`: per-bin evidence in
    the comb's units (0 = none, 1 = just over z_min) for line peaks over the floor that no
    mask blocked at any time during the average (the caller spreads it over neighbours, as
    for a block's peaks)."""

    def __init__(self, bins: int, hop_s: float, floor_span: int,
                 p: FaintParams | None = None, spread_from: int = 0) -> None:
        """`spread_from`: the floor's spread is measured from this bin up (where the average
        holds few lines; by default the whole band)."""
        self.p = p = p or FaintParams()
        self._spread_from = spread_from
        self._alpha = min(1.0, hop_s / p.average_s)
        self._avg = np.zeros(bins)
        self._blocked = np.zeros(bins)  # decays like the average: a masked line's energy too
        self._hops = 0
        self.hops = self._warm_hops = math.ceil(p.average_s / hop_s)  # the average's span
        self._every = max(1, round(p.every_s / hop_s))
        self._floor_span = floor_span
        self._floor = np.empty(bins)

    def update(self, power: np.ndarray, blocked: np.ndarray,
               frozen: np.ndarray | None = None, judge: bool = True) -> np.ndarray | None:
        """Take one hop's power spectrum and its blocked bins; evidence when due, else None.
        `frozen` bins keep their average (another source's lines pass there now); with
        `judge` False the average is kept up but not judged (nobody would act on it)."""
        a = self._alpha
        if frozen is None:
            self._avg *= 1.0 - a
            self._avg += a * power
        else:
            np.copyto(self._avg, (1.0 - a) * self._avg + a * power, where=~frozen)
        self._blocked *= 1.0 - a
        np.add(self._blocked, a, out=self._blocked, where=blocked)
        self._hops += 1
        if not judge or self._hops < self._warm_hops or self._hops % self._every:
            return None
        level = 10.0 * np.log10(self._avg + float(self._avg.max()) * 1e-12 + 1e-30)
        white = level - running_median(level, self._floor_span, self._floor)
        quiet = white[self._spread_from:]
        spread = MAD_TO_SIGMA * median(np.abs(quiet - median(quiet)))
        if not spread > 0:
            return None
        z = white / spread
        peaks = np.zeros(len(z), dtype=bool)
        inner = z[1:-1]
        peaks[1:-1] = (inner > self.p.z_min) & (inner >= z[:-2]) & (inner >= z[2:])
        # A bin masked for a tenth of the average's memory held a steady line then.
        peaks &= self._blocked < 0.1
        return np.where(peaks, np.minimum(z, self.p.z_cap) - self.p.z_min + 1.0, 0.0)


def extend_run(run: deque[float], f0: float | None) -> None:
    """Add a judgement's f0 to `run`, the judgements in a row that heard one rotor: within
    TRACK_GATE of the last in log f, or an octave off it (the comb scores f0 and f0 / 2
    alike). No f0, or another rotor's, starts the run over."""
    last = run[-1] if run else None
    if f0 is None or (last is not None and abs(math.log(f0 / last)) >= TRACK_GATE
                      and abs(abs(math.log(f0 / last)) - math.log(2.0)) >= TRACK_GATE):
        run.clear()
    if f0 is not None:
        run.append(f0)
