"""Acoustic drone detector: wandering rotor harmonics in a whitened spectrum.

Physics it rests on, none of it tied to one recording:
- A multirotor radiates its blade-pass frequency (about 80-800 Hz) and many harmonics. Its flight
  controller changes rotor speeds all the time to hold attitude, so the lines wander.
- Level is not evidence. Each spectrum is divided by its own noise floor (an ordered-statistic
  CFAR reference: the running median across frequency), so a sound 12 dB louder or quieter, or
  a noisier site, gives the same whitened spectrum and the same false-alarm rate.
- Site machinery (mains hum at 50/100/150 Hz, pumps, compressors, transformers) and a
  helicopter's governed rotors sing lines that do not move. A slow, fine spectrum (1 s windows,
  1 Hz bins, averaged over seconds) shows them as narrow lines; their bins are masked for a
  minute, so only moving harmonic energy counts. A rotor line wanders across many fine bins
  and stays below that mask, and the f0 track must wander too.
- A helicopter's main rotor (blade-pass 10-25 Hz) fills the low band with a dense comb. When
  most of the first twelve harmonics of some 8-30 Hz fundamental stand out in the fine
  spectrum, drone decisions are vetoed for a few seconds; a drone comb (f0 >= 80 Hz) can fill
  at most four of those twelve places.

Per block: tonal peaks (local maxima peak_db over the floor) outside the masks are the
evidence; a harmonic sum over candidate f0 (80-800 Hz, 16 harmonics, missing low harmonics
penalised so f0/2 does not win) gives the block's strength and f0. Over persist_s the blocks
whose f0 agrees form a track; the score is their median strength (1.0 ~ three harmonics 4 dB
over the peak threshold), and a drone needs score >= threshold, a track that wanders, and no
helicopter veto. A clip is a drone when any block says so (edgenode eval).

A second, independent path catches rotors whose comb the 80-800 Hz search cannot see (a small
or racing quad's blade-pass above 800 Hz, or a close-in recording dominated by a few high
rotor lines): two strong lines that wander together at a fixed frequency ratio, whatever the
ratio, over pair_window_s (LinePairs). One shaft holds the ratio of its lines while its speed
changes; independent sources do not, and machinery does not wander. The ratio must hold more
tightly than the frequency resolution allows a chance match, and the lines must wander by more
than that tolerance, so steady or independently wandering lines never qualify. The f0 reported
is their common fundamental where the ratio is one of small harmonics (7/4: the 4th and 7th).
A higher comb also reaches the 80-800 Hz search through a subharmonic, so its f0 may then be
reported as 1/2 to 1/4 of the true blade-pass.

A third path (edgenode/detect/comoving.py) keeps LinePairs' proof for a partner line that is
there only one block in three: the ratio to a line that holds stays far steadier than the
lines wander.

A fourth path hears what no single block shows (a drone 100-150 m out): the power averaged
over seconds, judged against that average's own spread (edgenode/detect/faint.py), with its
bearing from the wavefront common to the averaged snapshots.

On an array of four or more microphones with a known geometry, the spectrum analysed is
that of the best of a bank of delay-and-sum beams on the horizon (BeamBank) instead of the
channels' summed power: the same CFAR and comb, with array gain against noise that differs
between microphones. Fewer microphones (a stereo recorder) keep the summed power.

One analysis per hop; the detector buffers whatever block size the audio port delivers. Cost
(16 channels at 48 kHz must stay under 2 % of one core): the Hann window is applied in the
frequency domain on the band only, the comb is one gather over a (harmonics, candidates)
table, the few-element steps run in plain Python, and a bearing is computed at most once per
window length.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sfft

from edgenode.detect.acoustic_params import AcousticParams
from edgenode.detect.beams import BeamBank, channel_power
from edgenode.detect.comoving import CoMoving, CoMovingLines
from edgenode.detect.doa import DoaEstimate, DoaEstimator
from edgenode.detect.faint import FaintLines, extend_run
from edgenode.detect.lines import TRACK_GATE, LineHistory, LinePair, LinePairs, common_fundamental
from edgenode.detect.rank import (
    detrended_spread,
    max3,
    running_median,
    small_median,
)
from edgenode.detect.second_rotor import SecondRotor
from edgenode.detect.stationary import StationaryLines
from edgenode.detect.types import AcousticBearing

log = logging.getLogger(__name__)

_NEIGHBOURS2 = np.arange(-2, 3)
FAINT_DOA_S = 4.0  # the faint comb's bearing is taken over this much of its average
FAINT_MAX_ERROR_DEG = 15.0
OWN_SHARE = 0.6  # of a block's comb peaks on the track's comb, for the block's bearing
# A block's bearing must not move by more than this when any one of its bins is left out.
ONE_DIRECTION_SIGMAS = 2.0
ONE_DIRECTION_MIN_DEG = 6.0


@dataclass(frozen=True)
class AcousticResult:
    """One analysis block: t is the block centre (the caller's clock, seconds)."""

    t: float
    drone: bool
    score: float
    f0_hz: float | None
    bearings: list[AcousticBearing] = field(default_factory=list)


class AcousticDetector:
    """Feed PCM blocks, get one AcousticResult per analysis hop.

    `positions_m` (M, 3) in the node frame enables direction finding; `heading_deg` turns node
    azimuths into true bearings. Channels beyond the geometry are ignored for DOA.
    """

    def __init__(self, sample_rate_hz: int, channels: int, *,
                 positions_m: np.ndarray | None = None, heading_deg: float = 0.0,
                 params: AcousticParams | None = None) -> None:
        if not 8000 <= sample_rate_hz <= 192000:
            raise ValueError(f"acoustic detector: sample rate {sample_rate_hz} Hz out of range")
        if channels < 1:
            raise ValueError(f"acoustic detector: {channels} channels")
        self.p = p = params or AcousticParams()
        self.rate = sample_rate_hz
        self.channels = channels
        self.n = sfft.next_fast_len(round(p.window_s * sample_rate_hz), real=True)
        self.hop = max(1, round(self.n * p.hop_fraction))
        self.hop_s = self.hop / sample_rate_hz
        self.df = sample_rate_hz / self.n
        lo = max(1, int(p.band_hz[0] / self.df))
        hi = min(self.n // 2 - 1, int(min(p.band_hz[1], 0.45 * sample_rate_hz) / self.df))
        self.lo, self.hi = lo, hi
        self.freqs = np.arange(lo, hi) * self.df
        span = int(p.floor_span_hz / self.df) | 1
        self.floor_span = max(span, 9)
        self._floor_buf = np.empty(hi - lo)
        self._store = np.zeros((3 * self.n, channels), dtype=np.float32)
        self._start = self._end = 0  # the unread samples are _store[_start:_end]
        self._t_next: float | None = None  # time of the buffer's first sample
        self.holes = 0  # times samples were lost between blocks (see hole())
        self._prev_p: np.ndarray | None = None
        nb = hi - lo
        self._occ = np.zeros(nb)
        self._free = np.zeros(nb, dtype=bool)
        self._steady = np.zeros(nb, dtype=bool)
        self._alpha_occ = self.hop_s / p.occupancy_s
        self._lines = StationaryLines(sample_rate_hz, p, self.lo, self.hi, self.df)
        self._blocks = 0
        self._warmup_blocks = int(np.ceil(p.warmup_s / self.hop_s))
        self._history: deque[tuple[float, float | None]] = deque(
            maxlen=max(2, round(p.persist_s / self.hop_s)))
        self._comb_index, self._comb_valid, self._f0_grid = self._build_comb()
        self._low_in_band = self._comb_valid[:, : p.miss_harmonics].sum(axis=1)
        self._ev_buf = np.zeros(self.hi - self.lo + 1)
        self._k = np.arange(1, p.harmonics + 1, dtype=np.float64)
        # Per candidate, for _refine_f0: its harmonics' bins, which of them lie off the band's
        # edges, and each one's neighbourhood (two bins each side, kept inside the band).
        self._cand_bins = self._comb_index.T.copy()
        self._cand_inner = (self._cand_bins >= 1) & (self._cand_bins < hi - lo - 1)
        self._cand_near = np.minimum(np.maximum(self._cand_bins[:, :, None] + _NEIGHBOURS2, 0),
                                     hi - lo - 1)
        self.doa = (DoaEstimator(positions_m, sample_rate_hz, self.n)
                    if positions_m is not None and len(positions_m) >= 2 else None)
        self._beams = (BeamBank(positions_m, self.freqs, p, self.hop_s)
                       if positions_m is not None and channels >= len(positions_m)
                       and len(positions_m) >= p.beam_min_mics else None)
        self.heading_deg = heading_deg
        self._next_bearing_t = -math.inf
        self._peak_bins: list[int] = []
        self.last_wander = 0.0  # for diagnostics: the track's wander at the last block
        self._pairs = LinePairs(p, self.hop_s, self.df)
        self.last_pair: LinePair | None = None  # the pair that decided the last block, if any
        self._comoving = CoMovingLines(self.hop_s, p.pair_lines)
        self.last_comoving: CoMoving | None = None  # what decided the last block, if it did
        self._line_history = LineHistory(max(self._pairs.width, self._comoving.width),
                                         hi - lo, lo, self.df, p.pair_db, p.pair_lines)
        self._faint = FaintLines(hi - lo, self.hop_s, self.floor_span)
        self._faint_run: deque[float] = deque(maxlen=self._faint.p.confirm)
        self._faint_f0: float | None = None
        self._faint_score = 0.0
        self._faint_bins: list[int] = []
        # The band's lower bins of every hop the faint average spans, for its bearings:
        # (hops, mics, bins), channels-major as the band is, so storing a hop is a row copy.
        self._snaps = (np.zeros((self._faint.hops, self.doa.mics,
                                 min(hi - lo, int(2000.0 / self.df))), dtype=np.complex64)
                       if self.doa is not None and channels >= self.doa.mics else None)
        self._snap_count = 0
        # A second drone beside the one the blocks hear (arrays with beams only).
        self._second = (SecondRotor(bins=hi - lo, first_bin=lo, df=self.df,
                                    hop_s=self.hop_s, floor_span=self.floor_span,
                                    comb=lambda ev: self._comb(ev, roll_off=True),
                                    f0_grid=self._f0_grid, comb_index=self._comb_index,
                                    threshold=p.threshold, prefer_low=p.prefer_low,
                                    unit=p.block_hits * 4.0,
                                    low_harmonics=p.miss_harmonics, doa=self.doa)
                        if p.second_drone and self._beams is not None
                        and self._snaps is not None else None)
        self._block_heard_t = -math.inf  # when the block comb or the line pair last decided

    def _build_comb(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bin indices (relative to lo; one past the band where a harmonic is outside it) of
        each candidate f0's harmonics, (harmonics, candidates); validity; the candidates."""
        p = self.p
        # Fine enough that the highest harmonic inside the band lands within one bin of its
        # line: a step of 2 bins over that harmonic's number (a high f0 has fewer in band).
        top = self.hi * self.df
        grid = []
        f = p.f0_min_hz
        while f < p.f0_max_hz:
            grid.append(f)
            f += 2.0 * self.df / max(1, min(p.harmonics, int(top / f)))
        f0 = np.asarray(grid)
        k = np.arange(1, p.harmonics + 1)
        bins = np.rint(f0[:, None] * k[None, :] / self.df).astype(int) - self.lo
        valid = (bins >= 0) & (bins < self.hi - self.lo)
        return np.where(valid, bins, self.hi - self.lo).T.copy(), valid, f0

    def hole(self) -> None:
        """Samples were lost before the next block (an overrun; a block the daemon dropped
        while behind): drop the ones held, since a frame across the hole would mix two
        moments and carry a time late by the hole ever after; the next block starts afresh
        at its own time."""
        self._start = self._end
        self.holes += 1

    def process(self, samples: np.ndarray, t_start: float) -> list[AcousticResult]:
        """Take a (frames, channels) float block whose first sample is at t_start."""
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim == 1:
            x = x[:, None]
        if x.shape[1] != self.channels:
            raise ValueError(f"acoustic detector: block has {x.shape[1]} channels, "
                             f"expected {self.channels}")
        held = self._end - self._start
        if self._t_next is None or held == 0:
            self._t_next = t_start - held / self.rate
        # Samples accumulate in one store, copied once on arrival; the unread tail moves to
        # the front only when the store runs out (not the whole buffer on every block).
        m = len(x)
        if self._end + m > len(self._store):
            if held + m > len(self._store):
                grown = np.zeros((held + m + self.n, self.channels), dtype=np.float32)
                grown[:held] = self._store[self._start:self._end]
                self._store = grown
            else:
                self._store[:held] = self._store[self._start:self._end]
            self._start, self._end = 0, held
        self._store[self._end:self._end + m] = x
        self._end += m
        results = []
        while self._end - self._start >= self.n:
            frame = self._store[self._start:self._start + self.n]
            t_centre = self._t_next + 0.5 * self.n / self.rate
            results.append(self._analyse(frame, t_centre))
            self._start += self.hop
            self._t_next += self.hop / self.rate
        return results

    def _analyse(self, frame: np.ndarray, t: float) -> AcousticResult:
        p = self.p
        # Hann window applied after the transform, on the band only: a periodic Hann is the
        # spectral kernel (-1/4, 1/2, -1/4), which is cheaper than windowing every channel.
        # Scaled by 4 (-1, 2, -1): the whitening and PHAT are blind to a constant gain.
        # Channels-major (channels, bins): beams and channel power then reduce over the
        # channel axis, row by row, which numpy does far faster than short inner sums.
        raw = sfft.rfft(frame.T, axis=1)
        band = raw[:, self.lo:self.hi] * np.float32(2.0)
        band -= raw[:, self.lo - 1:self.hi - 1]
        band -= raw[:, self.lo + 1:self.hi + 1]
        masked = self._lines.update(frame[self.n - min(self.hop, self.n):, 0], self.hop_s)
        power = (self._beams.power(band, self._steady, self._free)
                 if self._beams is not None else channel_power(band))
        # Two hops averaged: a steadier floor and peaks, still faster than rotor wander.
        smooth = power if self._prev_p is None else 0.5 * (power + self._prev_p)
        self._prev_p = power
        tiny = float(smooth.max()) * 1e-12 + 1e-30  # relative: silence is not a level cue
        level = 10.0 * np.log10(smooth + tiny)
        white = level - running_median(level, self.floor_span, self._floor_buf)
        peaks = np.zeros(len(white), dtype=bool)
        inner = white[1:-1]
        peaks[1:-1] = (inner > p.peak_db) & (inner >= white[:-2]) & (inner >= white[2:])
        # Lines that sit in one short bin most of the time are steady at this resolution too.
        self._occ += self._alpha_occ * (peaks - self._occ)
        occupied = max3(self._occ) > p.occupancy_level
        # Stationary lines: kept out of the beam's choice (the next block's).
        steady = self._steady = masked | occupied
        free = self._free = peaks & ~steady
        evidence = max3(np.where(free, np.minimum(white, 20.0) - p.peak_db + 1.0, 0.0))
        self._blocks += 1
        f0: float | None = None
        self._peak_bins = []
        n_free = int(np.count_nonzero(free))
        strength = self._comb(evidence) if n_free >= p.block_hits else None
        best_strength = 0.0
        if strength is not None:
            best = int(strength.argmax())
            best_strength = float(strength[best])
        if best_strength > 0:
            # The lowest fundamental that explains nearly as much: not a multiple of the truth.
            best = int((strength >= p.prefer_low * best_strength).argmax())  # the first
            best_strength = float(strength[best])
            f0 = self._refine_f0(white, best)
        self._history.append((best_strength / (p.block_hits * 4.0), f0))
        score, f0_track, wander = self._integrated()
        self.last_wander = wander
        warm = self._blocks > self._warmup_blocks
        drone = (warm and score >= p.threshold and wander >= p.wander_min
                 and not self._lines.helicopter)
        f0 = f0_track
        # A second, independent piece of evidence: two strong lines that wander together at a
        # fixed frequency ratio (one rotating shaft), whatever their ratio or band. It decides
        # only where the comb did not, so it is evaluated only then.
        self._line_history.push(white, free)
        self._pairs.push()
        self._comoving.push()
        self.last_pair = None
        self.last_comoving = None
        if warm and not drone and not self._lines.helicopter:
            pair = self._pairs.best(self._line_history)
            if pair is not None and pair.strength >= p.threshold:
                self.last_pair = pair
                drone = True
                score = max(score, pair.strength)
                f0 = pair.f0_hz
                self._peak_bins = [round(pair.low_hz / self.df), round(pair.high_hz / self.df)]
        # A third, for a shaft whose partner lines come and go (CoMovingLines): it waits a
        # window after the comb or the pair last heard a drone, as it adds nothing then.
        if drone:
            self._block_heard_t = t
            if self._second is not None and f0 is not None:
                self._second.hear(t, f0, self._peak_bins)
        moving = (self._comoving.best(self._line_history, p.wander_min)
                  if (warm and not drone and not self._lines.helicopter
                      and t - self._block_heard_t > self._comoving.p.window_s) else None)
        if moving is not None:
            self.last_comoving = moving
            drone = True
            score = max(score, (moving.level_db - 2.0 * (p.peak_db - 1.0)) / (p.block_hits * 4.0))
            low, high = sorted((moving.reference_hz, moving.partner_hz))
            tol = p.pair_precision_bins * self.df * (1.0 / low + 1.0 / high)
            f0 = common_fundamental(low, math.log(high / low), tol, p.harmonics)
            # No bearing: the partner is missing from most blocks, so one block's phases at
            # its bin are mostly noise.
            self._peak_bins = []
        # A fourth: a comb too faint for any one block, in the power averaged over seconds.
        # Judged only from a little before it may decide (below): the judgements before
        # that could not act, and cost a comb each.
        soon = (t - self._block_heard_t
                > self._faint.p.average_s - (self._faint.p.confirm + 1) * self._faint.p.every_s)
        if not soon:
            self._faint_run.clear()
            self._faint_f0 = None
        faint = self._faint.update(power, self._lines.held_mask | occupied, judge=soon)
        if faint is not None:
            self._judge_faint(max3(faint))
        # The faint path is for what only the average hears: while the blocks hear a drone,
        # its 8 s average holds that drone (moving, or two mixed) and adds only blur.
        faint_decides = (warm and not drone and not self._lines.helicopter
                         and self._faint_f0 is not None
                         and t - self._block_heard_t > self._faint.p.average_s)
        if faint_decides:
            drone, score, f0 = True, max(score, self._faint_score), self._faint_f0
            self._peak_bins = self._faint_bins
        if self._snaps is not None:
            self._snaps[self._snap_count % len(self._snaps)] = band[: self._snaps.shape[1],
                                                                    : self._snaps.shape[2]]
            self._snap_count += 1
        bearings: list[AcousticBearing] = []
        if faint_decides:
            # One block's phases are mostly noise here: a bearing per judgement, from them all
            # (where there is an array to take it with).
            if faint is not None and f0 is not None and self._snaps is not None:
                bearings = self._faint_bearings(f0, t, score)
        # One bearing per window length: half-overlapping windows share half their samples,
        # so a bearing from every hop adds little information for twice the cost.
        elif (drone and self.doa is not None and f0 is not None
                and t >= self._next_bearing_t):
            bearings = self._bearings(band.T, f0, t, score)
            if bearings:
                self._next_bearing_t = t + self.n / self.rate - 0.5 * self.hop_s
                if self._second is not None:
                    self._second.heard_at(t, (bearings[0].azimuth_deg - self.heading_deg) % 360.0)
        if self._second is not None and self._second.wanted(t):
            bearings += self._second_bearings(band, occupied, t)
        return AcousticResult(t=t, drone=drone, score=round(score, 4),
                              f0_hz=None if f0 is None else round(f0, 2), bearings=bearings)

    def _second_bearings(self, band: np.ndarray, occupied: np.ndarray,
                         t: float) -> list[AcousticBearing]:
        """The second rotor's path (second_rotor.py): every hop, on the beams away from the
        heard one; a bearing when it holds a comb of its own."""
        assert self._second is not None and self._beams is not None
        assert self._snaps is not None
        away = self._beams.away_power(band, self._second.p.away_beams,
                                      self._second.averaged_bins, self._second.part,
                                      self._second.p.away_parts)
        if not self._second.update(t, away, self._lines.held_mask | occupied):
            return []
        held = min(self._snap_count, len(self._snaps))
        newest = self._snap_count - 1
        rows = [(newest - i) % len(self._snaps) for i in range(held)]
        found = self._second.bearing(self._snaps, rows)
        if found is None:
            return []
        return [AcousticBearing(t=t, azimuth_deg=(self.heading_deg + found.azimuth_deg) % 360.0,
                                elevation_deg=None, error_deg=found.error_deg,
                                f0_hz=found.f0_hz, score=found.score,
                                span_s=self._second.p.doa_s)]

    def _judge_faint(self, evidence: np.ndarray) -> None:
        """The faint comb decides once it held one f0 over `confirm` judgements in a row."""
        p = self.p
        strength = self._comb(evidence, roll_off=True)
        best = int(strength.argmax())
        score = float(strength[best]) / (p.block_hits * 4.0)
        f0: float | None = None
        # Hysteresis: a comb already decided on holds down to keep x threshold, so a
        # marginal one is not dropped and re-confirmed on every dip.
        keep = self._faint.p.keep if self._faint_f0 is not None else 1.0
        if score >= p.threshold * keep:
            best = int((strength >= p.prefer_low * strength[best]).argmax())  # the first
            f0 = float(self._f0_grid[best])
        extend_run(self._faint_run, f0)
        confirmed = len(self._faint_run) >= self._faint.p.confirm
        self._faint_f0 = f0 if confirmed else None
        self._faint_score = score if confirmed else 0.0
        centre = self._comb_index[:, best]
        self._faint_bins = (centre[self._ev_buf[centre] > 0] + self.lo).tolist()

    def _faint_bearings(self, f0: float, t: float, score: float) -> list[AcousticBearing]:
        """The faint comb's direction from the snapshots the average holds: per harmonic bin
        (and its neighbours), the wavefront common to the snapshots, i.e. the principal
        eigenvector of their cross-spectral matrix, through the same SRP-PHAT search as one
        block's spectrum. Taken over the last FAINT_DOA_S (a moving drone's bearing is not
        an 8 s mean) and over them all; where the two disagree, the drone moved, and the
        disagreement is the bearing's uncertainty."""
        assert self.doa is not None and self._snaps is not None
        top = self.lo + self._snaps.shape[2] - 1
        bins = np.array(sorted({b + d for b in self._faint_bins for d in (-1, 0, 1)
                                if self.lo <= b + d <= top}), dtype=int)
        held = min(self._snap_count, len(self._snaps))
        recent = min(held, round(FAINT_DOA_S / self.hop_s))
        if len(bins) < 4 or recent < 2:
            return []
        newest = self._snap_count - 1
        rows = [(newest - i) % len(self._snaps) for i in range(held)]
        last = self._wavefront(bins, rows[:recent])
        whole = self._wavefront(bins, rows)
        if last is None or whole is None:
            return []
        azimuth, error = last
        error = max(error, abs((whole[0] - azimuth + 180.0) % 360.0 - 180.0))
        if error > FAINT_MAX_ERROR_DEG:
            return []  # a faint source's direction is worth reporting only when it is known
        return [AcousticBearing(t=t, azimuth_deg=(self.heading_deg + azimuth) % 360.0,
                                elevation_deg=None, error_deg=error,
                                f0_hz=f0, score=score, span_s=FAINT_DOA_S)]

    def _wavefront(self, bins: np.ndarray, rows: list[int]) -> tuple[float, float] | None:
        """(azimuth, one-sigma error) of the wavefront common to the snapshot rows."""
        assert self.doa is not None and self._snaps is not None
        top = self.lo + self._snaps.shape[2] - 1
        # Ambient sound arriving from elsewhere fills the line bins as well as their
        # neighbours (it is broadband); their cross-spectral matrix, subtracted, leaves the
        # line's own wavefront.
        near = np.array([[min(max(b + d, self.lo), top) for d in (-5, -4, 4, 5)]
                         for b in bins.tolist()])
        near[np.isin(near, bins)] = -1
        snaps = self._snaps[rows]
        x = snaps[:, :, bins - self.lo]
        cross = np.einsum("hmb,hnb->bmn", x, x.conj())
        ref = snaps[:, :, np.where(near < 0, bins[:, None], near) - self.lo]
        ambient = np.einsum("hmbk,hnbk->bmn", ref, ref.conj()) / near.shape[1]
        values, vectors = np.linalg.eigh(cross - ambient)
        spectrum = np.zeros((top - self.lo + 1, self.doa.mics), dtype=np.complex64)
        spectrum[bins - self.lo] = vectors[:, :, -1]
        est = self.doa.estimate(spectrum, bins, first_bin=self.lo)
        if est is None:
            return None
        # The uncertainty follows from how much of the bins' power that one wavefront holds
        # (1 for a lone source, 1/M for noise) and from how many independent looks the
        # eigenvector integrates: the harmonics times the half-overlapping snapshots.
        power = np.maximum(np.trace(cross, axis1=1, axis2=2).real, 1e-30)
        coherence = float(np.mean(values[:, -1] / power))
        looks = max(1, len(bins) // 3) * max(1, len(rows) // 2)
        return est.azimuth_deg, max(1.0, self.doa.error_deg(coherence, looks, bins * self.df))

    @staticmethod
    def _one_direction(est: DoaEstimate) -> bool:
        return est.spread_deg <= max(ONE_DIRECTION_SIGMAS * est.error_deg,
                                     ONE_DIRECTION_MIN_DEG)

    def _comb(self, evidence: np.ndarray, roll_off: bool = False) -> np.ndarray:
        """Harmonic-sum strength of every candidate f0 over the unmasked tonal evidence.

        roll_off: only harmonics missing below the highest present one count as misses (far
        away, air absorption and the rotor's spectral slope take the upper ones first)."""
        p = self.p
        self._ev_buf[:-1] = evidence  # the last slot stays 0: where out-of-band harmonics point
        comb = self._ev_buf[self._comb_index]  # (harmonics, candidates): rows sum fast
        present = comb > 0
        hits = np.add.reduce(present, axis=0)
        # A missing low harmonic counts against a candidate: f0/2 explains every line of f0
        # but leaves its odd harmonics empty.
        low = present[: p.miss_harmonics]
        if roll_off:
            below = np.logical_or.accumulate(low[::-1], axis=0)[::-1]
            misses = np.add.reduce(below & ~low & self._comb_valid.T[: p.miss_harmonics], axis=0)
        else:
            misses = self._low_in_band - np.add.reduce(low, axis=0)
        strength = np.add.reduce(comb, axis=0)
        strength -= p.miss_penalty * misses
        np.maximum(strength, 0.0, out=strength)
        strength[hits < p.block_hits] = 0.0
        return strength

    def _refine_f0(self, white: np.ndarray, candidate: int) -> float:
        """Least-squares f0 from the interpolated frequencies of the harmonics of the comb
        candidate that hit (the evidence _comb left in _ev_buf); keeps their peak bins for
        direction finding."""
        f0 = float(self._f0_grid[candidate])
        last = len(white) - 1
        centre = self._cand_bins[candidate]  # out-of-band harmonics point at a zero slot
        hit = (self._ev_buf[centre] > 0) & self._cand_inner[candidate]
        self._peak_bins = []
        if not hit.any():
            return f0
        k, centre = self._k[hit].tolist(), centre[hit]
        # Each hit's neighbourhood at once; the dozen harmonics are then cheaper in plain
        # Python than in numpy calls.
        near = white[self._cand_near[candidate][hit]].tolist()
        num = den = 0.0
        for kk, c, v in zip(k, centre.tolist(), near, strict=True):
            # The strongest of the centre bin and its neighbours (kept off the band's edges).
            j = 1 if c - 1 < 1 else 0
            for i in range(j + 1, 2 if c + 1 > last - 1 else 3):
                if v[i + 1] > v[j + 1]:  # the first of equal maxima wins
                    j = i
            a, m, cc = v[j], v[j + 1], v[j + 2]
            denom = a - 2.0 * m + cc
            delta = 0.0 if denom >= 0 else min(max(0.5 * (a - cc) / denom, -0.5), 0.5)
            b = c - 1 + j
            self._peak_bins.append(b + self.lo)
            # Weighted by SNR (dB above floor): strong lines are measured more precisely.
            num += m * kk * (b + self.lo + delta) * self.df
            den += m * kk * kk
        return num / den if den else f0

    def _integrated(self) -> tuple[float, float | None, float]:
        """Score, f0 and wander over the persistence window.

        Blocks count when their f0 agrees with the window's median f0 (one continuous rotor
        track); wander is the detrended spread of log f0 on that track, which a governed or
        mains-locked machine does not have and a flying multirotor always has.
        """
        # A dozen entries: plain Python beats numpy's per-call overhead here.
        f0s = sorted([f for _, f in self._history if f is not None])
        if len(f0s) < 3:
            return 0.0, None, 0.0
        ref = f0s[len(f0s) // 2]
        scores, track, times = [], [], []
        for i, (s, f) in enumerate(self._history):
            if f is not None and abs(math.log(f / ref)) < TRACK_GATE:
                scores.append(s)
                track.append(math.log(f))
                times.append(float(i))
            else:
                scores.append(0.0)
        score = small_median(scores)
        if len(track) < 3:
            return score, ref, 0.0
        # Robust spread (MAD): one mis-picked block must not make a steady machine wander.
        spread = detrended_spread(times, track)
        return score, math.exp(track[-1]), spread

    def _bearings(self, spec: np.ndarray, f0: float, t: float,
                  score: float) -> list[AcousticBearing]:
        assert self.doa is not None
        # Only peaks on the detected comb (k * f0, within 1.5 bins) carry the drone's phase: a
        # stray tonal peak elsewhere can pull the search to another direction.
        # A dozen bins: plain Python beats numpy's per-call overhead.
        # Nor do bins beside a stationary line: the window spreads a machine's line over its
        # neighbours, and their phase is then the machine's as much as the drone's.
        # (Lines that held their fine bin only: a rotor's low harmonics can sit in one short
        # bin, or stand out in the fine spectrum for a moment, and losing them widens the
        # bearing.)
        near = max3(max3(self._lines.held_mask))
        clear = [b for b in self._peak_bins if not near[b - self.lo]]
        bins = [b for b in clear
                if (k := round(b * self.df / f0)) >= 1 and abs(b - k * f0 / self.df) <= 1.5]
        # Nor a block whose comb is mostly another source's: the track's f0 is the median of
        # the last blocks', a second drone can win a block, and a low f0's comb (1.5 bins
        # either side of every harmonic) holds some of anyone's peaks.
        if len(bins) < max(2, OWN_SHARE * len(clear)):
            return []
        # One direction only: a second source's lines among the bins (two quads whose combs
        # share lines: blade-pass 180 and 240 Hz meet every 720 Hz) put the bearing between
        # the two, where it hangs on which bins the block holds and would start a track of
        # its own in the gap. No bearing is better than that.
        est = self.doa.estimate(spec, np.array(bins), first_bin=self.lo, leave_one_out=True)
        if est is None or not self._one_direction(est):
            return []
        return [AcousticBearing(t=t, azimuth_deg=(self.heading_deg + est.azimuth_deg) % 360.0,
                                elevation_deg=est.elevation_deg, error_deg=est.error_deg,
                                f0_hz=f0, score=score)]
