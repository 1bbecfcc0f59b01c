"""The ground reflection's comb: broad ripple crests are not a rotor's lines.

An array on a mast hears a source in the sky twice, directly and off the ground, later by the
path difference d (about 2 x mast height x sin(elevation)). The sum is the source's spectrum
times |1 + r exp(-j 2 pi f d / c)|: crests every s = c / d Hz (65-650 Hz for a 3 m mast at
5-60 deg). Noise peaks riding those crests make a harmonic comb at f0 = s, or at 2s or 3s
where the odd crests are masked, whatever the source (white noise, a helicopter, an
aircraft). An array lying flat cannot tell the two paths apart by direction: the reflection
comes from the mirrored elevation, and on a horizontal plane of microphones its wavefront is
the direct one's. Nor does the spacing tell them apart without the range and the mast's
height: c / d moves by 10-30 % with either, which would excuse half the f0 range.

What does tell them apart is the crests' shape. In amplitude the ripple is
|1 + r exp(-j theta)| = sqrt(1 + r^2 + 2 r cos theta) (theta = 2 pi f / s): a smooth wave with
broad crests and narrower troughs. Folded at its period, its cosine coefficients are c1 > 0 and
c2 = -0.07 to -0.19 c1 (r = 0.3 to 0.9). A rotor's harmonics are lines, narrow against their
spacing: folded at f0 their c1 and c2 are both positive (a pulse train has them all alike).
Measured on doa_synth's renderings (20 dB, 10-45 deg, 35-120 m): tracks of white noise from
the sky and of halmstad's helicopters c2 / c1 -0.09 to 0.05 (5th to 90th percentile), the
halmstad drones without the reflection 0.2 and more in 95 % of their drone decisions (median
0.56). The fold is of amplitude, not decibels (in decibels a strong wandering line's skirts fill
its period, and the line looks broad) nor power (there the whitening's median and the noise
put c2 / c1 of the ripple at 0.14, close to the rotors' lower tail).

The comb's f0 is that of the ripple's crests (s), or 2s or 3s where the odd crests are masked,
or half a rotor's (its odd harmonics filled by noise peaks); so the spectrum is folded at
2 f0, f0, f0 / 2, f0 / 3 and f0 / 4. The period with the largest c1 is the comb's own, and
where its c2 falls below RIPPLE_SHAPE x c1 the comb is the reflection's ripple, not a rotor.
Summed over the f0 track's blocks (half a second): one block's noise peaks on a crest are as
sharp as a line, but the noise averages out of the fold. Bins of stationary lines count as
the floor: a generator's lines are neither crests nor the rotor's.

A drone heard only through that ripple (its broadband sound, rotor lines too weak) is lost
with it: what the comb then shows is the geometry, not a rotor (docs/detection.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from edgenode.detect.lines import TRACK_GATE

RIPPLE_SHAPE = 0.15  # c2 / c1 under this: broad crests, the ground's ripple
RIPPLE_TOP_HZ = 4000.0  # the fold runs over the band up to here
RIPPLE_ORDERS = 4  # periods down to f0 / this (a comb read at 2-4 x the crest spacing)
RIPPLE_EXPONENT = 0.05  # the fold is of 10 ** (this x whitened dB): amplitude
RIPPLE_MIN_HZ = 50.0  # no period shorter: c / (2 x 3.4 m), a crest spacing at the zenith
# Periods 2 f0 / j: 2 f0 (a rotor whose f0 the comb read an octave low), f0, f0 / 2 .. f0 / 4.
_PERIODS = (1, 2, *range(4, 2 * RIPPLE_ORDERS + 1, 2))


class GroundComb:
    """Per block the fold of the whitened spectrum's amplitude at the comb's f0; per f0
    track, whether those blocks' comb is the ground's ripple."""

    def __init__(self, freqs: np.ndarray) -> None:
        top = int(np.searchsorted(freqs, RIPPLE_TOP_HZ))
        self._freqs = np.asarray(freqs[:top], dtype=np.float64)
        # Coefficients at frequencies n / (2 f0) for the n the periods 2 f0 / j need: n = j
        # (their c1) and 2 j (their c2). _index[n] is n's row.
        self._needed = sorted({n for j in _PERIODS for n in (j, 2 * j)})
        self._index = {n: i for i, n in enumerate(self._needed)}
        # How each row follows from two before it: n = a + b, and a - b's row (or -1: 0).
        self._recipe = []
        for row, n in enumerate(self._needed[1:], start=1):
            a = max(m for m in self._needed[:row] if n - m in self._index and m >= n - m)
            self._recipe.append((row, self._index[a], self._index[n - a],
                                 self._index.get(2 * a - n, -1)))
        self._cos = np.empty((len(self._needed), top))
        self._amp = np.empty(top)

    def fold(self, white: np.ndarray, f0: float,
             steady: np.ndarray | None = None) -> np.ndarray:
        """Cosine coefficients of the whitened spectrum's amplitude over the band up to
        RIPPLE_TOP_HZ at frequencies n / (2 f0) (phase zero at the comb's harmonics), for
        the n the periods need; `steady` bins (stationary lines) count as the floor."""
        w = self._amp
        np.exp(white[: len(w)] * (RIPPLE_EXPONENT * math.log(10.0)), out=w)
        if steady is not None:
            w[steady[: len(w)]] = 1.0  # a machine's lines are neither crests nor the rotor's
        w -= float(np.add.reduce(w)) / len(w)
        # Twice the cosines, each from two before it by one product and one difference
        # (2 cos(a + b) = 2 cos a 2 cos b - 2 cos(a - b)): cheaper than taking cosines.
        c = self._cos
        np.cos(self._freqs * (math.pi / f0), out=c[0])
        c[0] *= 2.0
        for row, a, b, d in self._recipe:
            np.multiply(c[a], c[b], out=c[row])
            c[row] -= c[d] if d >= 0 else 2.0  # a = b: 2 cos 0
        return c @ w / (2 * len(w))

    def is_ripple(self, history: Sequence[tuple[float, float | None]],
                  folds: Sequence[np.ndarray | None]) -> bool:
        """Whether the f0 track over `history` ((score, f0) per block, as the detector keeps
        it) is the ground's ripple: the blocks on the track (f0 within TRACK_GATE of the
        median) have their folds summed; of the periods 2 f0 / j, the one with the largest c1
        decides, ripple when its c2 < RIPPLE_SHAPE x c1."""
        f0s = sorted(f for _, f in history if f is not None)
        if len(f0s) < 3:
            return False
        ref = f0s[len(f0s) // 2]
        total = np.zeros(len(self._needed))
        for (_, f), c in zip(history, folds, strict=True):
            if f is not None and c is not None and abs(math.log(f / ref)) < TRACK_GATE:
                total += c
        periods = [j for j in _PERIODS if 2.0 * ref / j >= RIPPLE_MIN_HZ]
        j = max(periods, key=lambda k: total[self._index[k]])
        c1, c2 = float(total[self._index[j]]), float(total[self._index[2 * j]])
        return c1 > 0.0 and c2 < RIPPLE_SHAPE * c1
