"""A second drone while one is heard: a faint comb judged away from the heard rotor.

While the block paths follow one rotor, the faint path (faint.py) keeps quiet: its 8 s
average holds that rotor's lines, and a second, distant drone's comb drowns among them. This
path keeps its own long average for the second one and keeps the heard rotor out of it in
every way the heard rotor shows itself:

- Direction: the average is of the beams at least `away_beams` beams from the best one (the
  one the heard rotor won). On an 18 cm array this buys little below ~1 kHz, so
- Frequency: the heard rotor's comb peak bins (and one either side, where the window spreads
  a line) are frozen in the average for `freeze_s` after each block that heard them, and the
  comb judge takes no f0 at 1/3, 1/2, 1, 2 or 3 times the heard one: the heard rotor's own
  comb and its subharmonic readings.
- Bearing: the wavefront common to the snapshots is taken after projecting out the heard
  direction (a rank-4 null: its azimuth +-null_half_deg at two elevations, which on a planar
  array also spans the first terms of a wavefront's change with elevation), so what is left
  at the judged bins is the other source's. On the small array the projection leaves a
  source and its opposite (azimuth + 180) alike at low frequencies; the bins at or above
  `mirror_hz` decide between them. A bearing within `min_separation_deg` of the heard one is
  the heard rotor leaking past the null, not a second drone.

Cost (it runs on every hop while a rotor is heard): the average stops at `top_hz` and its
away beams are formed in `away_parts` turns; the null is looked at only where some
direction away from the heard one fits the comb's own wavefronts; the same comb rejected
again is looked at less often.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgenode.detect.doa import SPEED_OF_SOUND_MPS, DoaEstimator, unit_vectors
from edgenode.detect.faint import FaintLines, extend_run
from edgenode.detect.lines import TRACK_GATE
from edgenode.detect.rank import max3

COARSE_DEG = 5.0
OWN_SPARE = 0.02  # the fine scan's best fits at most this much better than the coarse one's


@dataclass(frozen=True)
class SecondRotorParams:
    away_beams: int = 3  # beams (30 degrees each) between the best beam and those averaged
    freeze_s: float = 0.5
    # A rotor counts as heard this long after the blocks last heard it: as long as the
    # faint path's average holds it (and keeps that path quiet), a near drone heard in
    # bursts is still there between them.
    heard_memory_s: float = 8.0
    heard_window_s: float = 3.0
    # Of the heard rotor's fundamental (folded into one octave): its octaves, and the
    # twelfths the comb may read.
    same_ratios: tuple[float, ...] = (0.25, 1.0 / 3.0, 0.5, 2.0 / 3.0, 1.0, 4.0 / 3.0, 2.0,
                                      8.0 / 3.0, 3.0, 4.0)
    same_gate: float = 0.05  # log f: the heard rotor's median f0 is known this well
    # A null's residue points anywhere and hops; a source holds its direction: a bearing
    # is given only when the judgement before gave one this close.
    consistent_deg: float = 10.0
    consistent_within: int = 3  # judgements back; a rejection and the one it skips between
    own_ratio: float = 1.0  # the lines fit the found direction this much better than the
    own_min: float = 0.25  # heard one, and at least this well (0..1)
    retry_judgements: int = 2
    max_retry_judgements: int = 8  # the same comb rejected in a row: 2, 3, 5, 9 (4 s)
    null_half_deg: float = 4.0
    null_elevations_deg: tuple[float, float] = (0.0, 30.0)
    scan_elevations_deg: tuple[float, float] = (0.0, 20.0)
    mirror_hz: float = 700.0
    min_separation_deg: float = 20.0
    max_error_deg: float = 15.0
    doa_s: float = 4.0  # the bearing is taken over this much of the average, as faint's
    # The average's top: a distant rotor's harmonics above a few kHz are lost to air
    # absorption (~12 dB at 8 kHz over 150 m) and its spectral slope, while the seven away
    # beams there cost most of the path (bins are even in frequency).
    top_hz: float = 4000.0
    # ... so the floor's spread, the judge's unit, is measured on the average's upper half,
    # where lines are rare (below ~2 kHz both rotors' lines and their leakage fill it).
    quiet_half: bool = True
    # The away beams are formed in turns, one part of them per hop, and the average takes
    # the parts' mean once every part is in: half the products, and at 8 s the average
    # barely notices that a beam's hop is missing (the small array's beams are much alike
    # where the lines are).
    away_parts: int = 2


@dataclass(frozen=True)
class SecondBearing:
    azimuth_deg: float  # node frame
    error_deg: float
    f0_hz: float
    score: float


# The detector's comb: evidence (bins) -> strength per f0 candidate, with the roll-off rule.
Comb = Callable[[np.ndarray], np.ndarray]


class SecondRotor:
    """Feed every hop's away-beam power; tell it what the block paths heard; ask it for a
    bearing when it has judged a comb of its own."""

    def __init__(self, *, bins: int, first_bin: int, df: float, hop_s: float,
                 floor_span: int, comb: Comb, f0_grid: np.ndarray, comb_index: np.ndarray,
                 threshold: float, prefer_low: float, unit: float, low_harmonics: int,
                 doa: DoaEstimator | None,
                 p: SecondRotorParams | None = None) -> None:
        self.p = p = p or SecondRotorParams()
        # The bins averaged: from first_bin up to top_hz.
        self.averaged_bins = min(bins, max(9, round(p.top_hz / df) - first_bin))
        self._spread_from = self.averaged_bins // 2 if p.quiet_half else 0
        self._floor_span = floor_span
        self._updated_t = -math.inf
        self._lo, self._df, self._hop = first_bin, df, hop_s
        self.faint = self._new_average()
        self.part = 0  # which part of the away beams the next hop forms
        self._parts = np.zeros(self.averaged_bins)  # their sum so far
        self._comb, self._grid, self._index = comb, f0_grid, comb_index
        self._log_grid = np.log(f0_grid)
        self._log_same = np.log(np.array(p.same_ratios))
        self._threshold, self._prefer_low, self._unit = threshold, prefer_low, unit
        self._low_harmonics = low_harmonics
        self._doa = doa
        self._frozen_until = np.full(bins, -math.inf)
        self._frozen = np.zeros(bins, dtype=bool)
        self._heard_t = -math.inf
        self._heard_f0: float | None = None  # folded into 128-256 Hz
        self._heard: deque[tuple[float, float]] = deque()  # (t, log2 f0 mod 1)
        self.heard_azimuth: float | None = None  # node frame, from the block path's bearings
        self._bearings: deque[tuple[float, float]] = deque()  # (t, azimuth) of those
        self._run: deque[float] = deque(maxlen=self.faint.p.confirm)
        self.f0: float | None = None  # the confirmed second comb, if any
        self.score = 0.0
        self.bins: list[int] = []  # its harmonic bins (absolute), for the bearing
        self._evidence = np.zeros(bins + 1)  # the last slot: where out-of-band harmonics point
        self._judgements = 0
        self._retry = 0  # the judgement from which a bearing is worth looking for again
        self._rejected: tuple[float, int] | None = None  # (f0, wait) of the last rejection
        self._previous: tuple[int, float] | None = None  # (judgement, azimuth) last found
        self._coarse_az = np.arange(0.0, 360.0, COARSE_DEG)
        # The coarse scan's wavefronts per bin (from first_bin), made as bins are judged.
        self._coarse = np.empty((0, 0, 0), dtype=np.complex128)
        self._coarse_norms = np.empty((0, 0))
        self._coarse_made = np.zeros(0, dtype=bool)

    def _new_average(self) -> FaintLines:
        return FaintLines(self.averaged_bins, self._hop * self.p.away_parts, self._floor_span,
                          spread_from=self._spread_from)

    def hear(self, t: float, f0: float, peak_bins: list[int]) -> None:
        """The block paths heard a rotor at f0 with these comb peak bins (absolute)."""
        # The blocks read one rotor an octave (or a stray fifth) off from block to block; the
        # rotor is the median of their readings over a few seconds, each folded into one
        # octave (the exclusions below cover the octaves).
        self._heard.append((t, math.log2(f0) % 1.0))
        self._heard_t = t
        while self._heard[0][0] < t - self.p.heard_window_s:  # bounded here, judged or not
            self._heard.popleft()
        for b in peak_bins:
            i = b - self._lo
            self._frozen_until[max(i - 1, 0): i + 2] = t + self.p.freeze_s

    def heard_at(self, t: float, azimuth_deg: float) -> None:
        """The block path's bearing on the heard rotor (node frame). The heard direction is
        the median of those over heard_window_s: now and then a block's comb takes the
        other drone's lines, and a null put there would hide it for as long as it stood."""
        self._bearings.append((t, azimuth_deg))
        while self._bearings[0][0] < t - self.p.heard_window_s:
            self._bearings.popleft()
        ref = self._bearings[-1][1]
        offsets = sorted(_wrap(a - ref) for _, a in self._bearings)
        self.heard_azimuth = (ref + offsets[len(offsets) // 2]) % 360.0

    def active(self, t: float) -> bool:
        return (t - self._heard_t <= self.p.heard_memory_s and bool(self._heard)
                and self.heard_azimuth is not None)

    def _heard_rotor(self, t: float) -> float:
        """The heard rotor's fundamental, folded into 128-256 Hz: the median of the blocks'
        readings over heard_window_s (or the last ones)."""
        while len(self._heard) > 1 and self._heard[0][0] < t - self.p.heard_window_s:
            self._heard.popleft()
        folds = sorted(f for _, f in self._heard)
        mid = folds[len(folds) // 2]
        # Circular in the octave: readings either side of the fold line belong together.
        folds = sorted((f - mid + 0.5) % 1.0 for f in folds)
        return float(2.0 ** (7.0 + mid - 0.5 + folds[len(folds) // 2]))

    def wanted(self, t: float) -> bool:
        """Whether to feed it this hop: only while a rotor is heard (the average starts
        over when the blocks hear one again; without one the faint path listens)."""
        return t - self._heard_t <= self.p.heard_memory_s

    def update(self, t: float, away_power: np.ndarray, blocked: np.ndarray) -> bool:
        """One hop: the mean power of the away beams' part `part` at the first
        averaged_bins bins, the blocked bins of the band. True when a second comb is
        confirmed and was judged at this hop."""
        if t - self._updated_t > 1.0:
            self.faint = self._new_average()
            self.part = 0
        self._updated_t = t
        if self.part == 0:
            np.copyto(self._parts, away_power)
        else:
            self._parts += away_power
        self.part = (self.part + 1) % self.p.away_parts
        if self.part:
            return False
        if self.p.away_parts > 1:
            away_power = self._parts / self.p.away_parts
        np.greater(self._frozen_until, t, out=self._frozen)
        active = self.active(t)
        if not active:
            self._run.clear()
            self.f0 = None
        n = self.averaged_bins
        evidence = self.faint.update(away_power, blocked[:n], self._frozen[:n], judge=active)
        if evidence is None:
            return False
        self._heard_f0 = self._heard_rotor(t)
        self._evidence[:n] = max3(evidence)  # above top_hz it stays 0
        self._judge(self._evidence[:-1])
        return self.f0 is not None

    def _judge(self, evidence: np.ndarray) -> None:
        assert self._heard_f0 is not None
        self._judgements += 1
        strength = self._comb(evidence)
        # A distant rotor loses its upper harmonics first: a comb with none of its low ones
        # is lines from elsewhere that a low f0 happens to fit (the heard drone's other
        # rotors, high up where they spread apart).
        low = self._index[: self._low_harmonics]
        strength[~np.logical_or.reduce(self._evidence[low] > 0, axis=0)] = 0.0
        # Not the heard rotor again, nor its comb read an octave or a twelfth off.
        offset = self._log_grid - math.log(self._heard_f0)
        same = np.abs(offset[:, None] - self._log_same[None, :]) < self.p.same_gate
        strength[np.logical_or.reduce(same, axis=1)] = 0.0
        best = int(strength.argmax())
        keep = self.faint.p.keep if self.f0 is not None else 1.0
        f0: float | None = None
        if float(strength[best]) >= self._threshold * keep * self._unit:
            best = int((strength >= self._prefer_low * strength[best]).argmax())
            f0 = float(self._grid[best])
        last = self._run[-1] if self._run else None
        if last is not None:
            # A faint comb's best f0 hops between its readings (f0, f0 / 2, a neighbour
            # that borrows a noise peak): while the one followed still scores, keep it.
            d = np.abs(self._log_grid - math.log(last))
            kept = np.where((d < TRACK_GATE) | (np.abs(d - math.log(2.0)) < TRACK_GATE),
                            strength, 0.0)
            k = int(kept.argmax())
            # ... but not once another comb explains clearly more (it locked onto a
            # neighbour reading, a fifth or a fourth off, that shares some of the lines).
            if kept[k] >= max(self._threshold * self.faint.p.keep * self._unit,
                              self._prefer_low * float(strength.max())):
                best, f0 = k, float(self._grid[k])
        score = float(strength[best]) / self._unit
        # The bearing's bins: a comb read an octave low (the judge takes the lowest f0 that
        # explains nearly as much) holds at its odd harmonics whatever lines lie there, the
        # heard rotor's among them, and a bearing from them mixes both drones. Where the
        # comb an octave up explains nearly as much on its own, its bins are the rotor's.
        lines = best
        for _ in range(2):
            target = self._log_grid[lines] + math.log(2.0)
            up = min(int(np.searchsorted(self._log_grid, target)), len(self._grid) - 1)
            if up > 0 and target - self._log_grid[up - 1] < self._log_grid[up] - target:
                up -= 1
            if (abs(self._log_grid[up] - target) >= TRACK_GATE
                    or strength[up] < self._prefer_low * float(strength[lines])
                    or strength[up] < self._threshold * self.faint.p.keep * self._unit):
                break
            lines = up
        centre = self._index[:, lines]
        self.bins = (centre[self._evidence[centre] > 0] + self._lo).tolist()
        extend_run(self._run, f0)
        confirmed = len(self._run) >= self.faint.p.confirm
        self.f0 = f0 if confirmed else None
        self.score = score if confirmed else 0.0

    def bearing(self, snaps: np.ndarray, rows: list[int]) -> SecondBearing | None:
        """The second comb's direction from the snapshot rows (newest first; (hops, mics,
        bins from first_bin)), the heard direction nulled; None when unknown or too close to
        the heard rotor to tell from it."""
        if (self._doa is None or self.f0 is None or self.heard_azimuth is None
                or self._judgements < self._retry):
            return None
        top = self._lo + snaps.shape[2] - 1
        bins = np.array(sorted({b + d for b in self.bins for d in (-1, 0, 1)
                                if self._lo <= b + d <= top
                                and not self._frozen[b + d - self._lo]}), dtype=int)
        recent = min(len(rows), round(self.p.doa_s / self._hop))
        if len(bins) < 4 or recent < 2:
            return None
        cross = cross_spectra(snaps, bins, rows[:recent], self._lo)
        # The comb's lines, not nulled, must come from there rather than from the heard
        # rotor: a lone drone's smeared lines make combs too, and the null's residue then
        # points anywhere, but their own wavefronts still point at the drone. Where no
        # direction far enough from the heard one fits them better (on the coarse scan,
        # with OWN_SPARE for the fine one), the null need not be looked at.
        u = np.linalg.eigh(cross)[1][:, :, -1]  # (B, M)
        need = max(self.p.own_ratio * float(self._own_fit(u, bins, self.heard_azimuth)),
                   self.p.own_min)
        found = (self._nulled_wavefront(cross, bins, recent)
                 if self._best_away_fit(u, bins) * (1.0 + OWN_SPARE) > need else None)
        if (found is None or found[1] > self.p.max_error_deg
                or abs(_wrap(found[0] - self.heard_azimuth)) < self.p.min_separation_deg
                or not self._own_fit(u, bins, found[0]) > need):
            # Mostly the heard rotor's lines: the next judgements' average holds the same
            # lines, so it is not worth their cost to look again at once; and the same comb
            # rejected again waits twice as long, up to the bearing's span (a lone drone's
            # own comb that the judge cannot exclude is looked at every few seconds, not at
            # every other judgement).
            same = (self._rejected is not None and self.f0 is not None
                    and _same_comb(self.f0, self._rejected[0]))
            wait = min(2 * self._rejected[1] if same and self._rejected else 1,
                       self.p.max_retry_judgements)
            self._rejected = (self.f0, wait)
            self._retry = self._judgements + self.p.retry_judgements - 1 + wait
            return None
        self._rejected = None
        azimuth, error = found
        # A source holds its direction from one judgement to the next; a residue hops. The
        # one before may be a few judgements back: one skipped after a rejection (the
        # heard rotor's lines, or the comb read an octave low for a moment) must not cost
        # the next bearing too, or a tentative track waits longer than it may (span / 2).
        before, self._previous = self._previous, (self._judgements, azimuth)
        if (before is None or before[0] < self._judgements - self.p.consistent_within
                or abs(_wrap(azimuth - before[1])) > self.p.consistent_deg):
            return None
        return SecondBearing(azimuth_deg=azimuth, error_deg=error, f0_hz=self.f0,
                             score=self.score)

    def _own_fit(self, u: np.ndarray, bins: np.ndarray, azimuth: float) -> float:
        """How well the bins' own (not nulled) principal wavefronts u (B, M) fit a source at
        `azimuth`, 0..1 (the best of the scanned elevations)."""
        assert self._doa is not None
        az = np.array([azimuth])
        freqs = bins * self._df
        a = np.concatenate([_steering(self._doa.positions, freqs, az, el)
                            for el in self.p.scan_elevations_deg], axis=1)  # (B, E, M)
        f = np.abs(a.conj() @ u[:, :, None])[..., 0] ** 2 / self._doa.mics
        return float(f.mean(axis=0).max())

    def _best_away_fit(self, u: np.ndarray, bins: np.ndarray) -> float:
        """The best _own_fit on the coarse scan over directions min_separation_deg or more
        from the heard one."""
        assert self._doa is not None and self.heard_azimuth is not None
        coarse, _ = self._coarse_steering(bins)
        f = np.abs(coarse @ u.conj()[:, :, None])[..., 0] ** 2 / self._doa.mics
        f = f.mean(axis=0).reshape(len(self.p.scan_elevations_deg), -1).max(axis=0)
        away = np.abs((self._coarse_az - self.heard_azimuth + 180.0) % 360.0 - 180.0)
        return float(f[away >= self.p.min_separation_deg].max())

    def _nulled_wavefront(self, cross: np.ndarray, bins: np.ndarray,
                          hops: int) -> tuple[float, float] | None:
        """(azimuth, one-sigma error) of the wavefront common to the cross-spectral matrices
        (B, M, M) of `hops` snapshots once the heard direction is projected out."""
        assert self._doa is not None and self.heard_azimuth is not None
        doa = self._doa
        freqs = bins * self._df
        q, rest = _null_basis(doa.positions, freqs, self.heard_azimuth, self.p)
        # The data projected onto the heard subspace's complement, in the complement's own
        # basis: (B, M - K, M - K), the same eigenvalues as P C P for a smaller eigh.
        nulled = _hermitian(rest) @ cross @ rest
        values, vectors = np.linalg.eigh(nulled)
        v = (rest @ vectors[:, :, -1:])[:, :, 0]  # (B, M): in P's range
        power = np.maximum(np.trace(nulled, axis1=1, axis2=2).real, 1e-30)
        coherence = float(np.mean(np.maximum(values[:, -1], 0.0) / power))
        # v and q side by side: a wavefront's products with both are one BLAS call.
        basis = np.ascontiguousarray(np.concatenate([v[:, :, None], q], axis=2).conj())
        elevations = len(self.p.scan_elevations_deg)
        # Coarse, then 1 degree around the best and around its opposite: the projection
        # leaves a direction and its opposite alike where the array is small against the
        # wavelength, and the higher bins tell them apart.
        coarse, norms = self._coarse_steering(bins)
        fit = _projected_fit(coarse, norms, basis).reshape(len(bins), elevations, -1)
        i = int(fit.max(axis=1).mean(axis=0).argmax())
        fine = np.arange(-COARSE_DEG, COARSE_DEG + 0.5, 1.0)
        centre = float(self._coarse_az[i])
        az = np.concatenate([centre + fine, centre + 180.0 + fine])
        a = np.concatenate([_steering(doa.positions, freqs, az, el)
                            for el in self.p.scan_elevations_deg], axis=1)  # (B, E * D, M)
        fit = _projected_fit(a, np.einsum("bdm,bdm->bd", a, a.conj()).real, basis)
        fit = fit.reshape(len(bins), elevations, 2, len(fine)).max(axis=1)
        high = freqs >= self.p.mirror_hz
        candidates = []
        for side in range(2):
            total = fit[:, side].mean(axis=0)
            k = int(total.argmax())
            judge = float(fit[high, side, k].mean()) if high.any() else float(total[k])
            step = (_parabolic3(total[k - 1], total[k], total[k + 1])
                    if 0 < k < len(fine) - 1 else 0.0)
            candidates.append((judge, float(az[side * len(fine) + k] + step)))
        az_best = max(candidates)[1]
        looks = max(1, len(bins) // 3) * max(1, hops // 2)
        error = max(1.0, doa.error_deg(coherence, looks, freqs))
        return az_best % 360.0, error

    def _coarse_steering(self, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The coarse scan's wavefronts at the bins, (B, E * D, M), and their squared norms
        (B, E * D): each bin's made once, when first judged (the exponentials cost more than
        the fit), then gathered."""
        assert self._doa is not None
        top = int(bins.max()) - self._lo + 1
        if len(self._coarse_made) < top:
            grown = max(top, 2 * len(self._coarse_made))
            shape = (grown, len(self.p.scan_elevations_deg) * len(self._coarse_az),
                     self._doa.mics)
            coarse = np.empty(shape, dtype=np.complex128)
            norms = np.empty(shape[:2])
            made = np.zeros(grown, dtype=bool)
            if len(self._coarse_made):
                coarse[: len(self._coarse)] = self._coarse
                norms[: len(self._coarse)] = self._coarse_norms
                made[: len(self._coarse_made)] = self._coarse_made
            self._coarse, self._coarse_norms, self._coarse_made = coarse, norms, made
        rows = bins - self._lo
        new = np.unique(rows[~self._coarse_made[rows]])
        if len(new):
            freqs = (new + self._lo) * self._df
            a = np.concatenate([_steering(self._doa.positions, freqs, self._coarse_az, el)
                                for el in self.p.scan_elevations_deg], axis=1)
            self._coarse[new] = a
            self._coarse_norms[new] = np.einsum("bdm,bdm->bd", a, a.conj()).real
            self._coarse_made[new] = True
        return self._coarse[rows], self._coarse_norms[rows]


def cross_spectra(snaps: np.ndarray, bins: np.ndarray, rows: list[int],
                  first_bin: int) -> np.ndarray:
    """(B, M, M) cross-spectral matrices of the rows at the bins, less the ambient one.

    Ambient sound arriving from elsewhere fills the line bins as well as their neighbours
    (it is broadband); their cross-spectral matrix, subtracted, leaves the lines' own."""
    top = first_bin + snaps.shape[2] - 1
    near = np.array([[min(max(b + d, first_bin), top) for d in (-5, -4, 4, 5)]
                     for b in bins.tolist()])
    near[np.isin(near, bins)] = -1
    near = np.where(near < 0, bins[:, None], near) - first_bin
    # Each bin's cross matrix once (neighbours are shared), from only the rows and bins it
    # needs: bins first, hops last, so each bin's (M, hops) block is contiguous and its
    # cross matrix one BLAS product.
    rel = bins - first_bin
    needed, which = np.unique(np.concatenate([rel, near.ravel()]), return_inverse=True)
    held = np.ascontiguousarray(snaps[rows][:, :, needed].transpose(2, 1, 0))  # (U, M, hops)
    cross = held @ _hermitian(held)
    ambient = cross[which[len(rel):].reshape(near.shape)].mean(axis=1)
    return (cross[which[: len(rel)]] - ambient).astype(np.complex128)


def _hermitian(x: np.ndarray) -> np.ndarray:
    """The conjugate transpose of a stack of matrices, laid out for BLAS (a strided view
    sends matmul to a loop ten times slower)."""
    return np.ascontiguousarray(x.conj().transpose(0, 2, 1))


def _steering(positions: np.ndarray, freqs: np.ndarray, az: np.ndarray,
              el: float) -> np.ndarray:
    """(B, D, M) wavefronts (as the microphones hear them) from the directions."""
    u = unit_vectors(az, np.full_like(az, el))  # (D, 3)
    lead = u @ positions.T / SPEED_OF_SOUND_MPS  # (D, M)
    return np.exp(2j * np.pi * freqs[:, None, None] * lead[None])


def _null_basis(positions: np.ndarray, freqs: np.ndarray, azimuth: float,
                p: SecondRotorParams) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal bases per bin of the heard direction's wavefronts (B, M, K) and of their
    complement (B, M, M - K)."""
    az = np.array([azimuth - p.null_half_deg, azimuth + p.null_half_deg])
    a = np.concatenate([_steering(positions, freqs, az, el) for el in p.null_elevations_deg],
                       axis=1)  # (B, K, M)
    q, _ = np.linalg.qr(a.transpose(0, 2, 1), mode="complete")
    k = a.shape[1]
    return q[:, :, :k], np.ascontiguousarray(q[:, :, k:])


def _projected_fit(a: np.ndarray, norms: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """(B, D): how well each wavefront a (B, D, M), projected as the data were, matches the
    nulled principal vector v: |<P a, v>|^2 / |P a|^2, 0..1. `basis` (B, M, 1 + K) holds
    conj(v), then conj(q), the heard subspace's orthonormal basis; `norms` |a|^2 (B, D).

    v lies in P's range (P v = v), so <P a, v> = <a, v>, and |P a|^2 = |a|^2 - |q^H a|^2:
    neither needs the projected wavefronts."""
    r = a @ basis  # (B, D, 1 + K)
    p = r.real**2 + r.imag**2
    den = np.maximum(norms - p[..., 1:].sum(axis=-1), 1e-30)
    return p[..., 0] / den


def _same_comb(a: float, b: float) -> bool:
    """One comb's readings: f0 within TRACK_GATE, or an octave off (as extend_run)."""
    d = abs(math.log(a / b))
    return d < TRACK_GATE or abs(d - math.log(2.0)) < TRACK_GATE


def _parabolic3(a: float, b: float, c: float) -> float:
    denom = a - 2.0 * b + c
    return 0.0 if denom == 0 else min(max(0.5 * (a - c) / denom, -0.5), 0.5)


def _wrap(deg: float) -> float:
    return (deg + 180.0) % 360.0 - 180.0
