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

One analysis per hop; the detector buffers whatever block size the audio port delivers.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy import fft as sfft
from scipy.ndimage import maximum_filter1d, median_filter

from edgenode.detect.doa import DoaEstimator
from edgenode.detect.types import AcousticBearing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AcousticResult:
    """One analysis block: t is the block centre (the caller's clock, seconds)."""

    t: float
    drone: bool
    score: float
    f0_hz: float | None
    bearings: list[AcousticBearing] = field(default_factory=list)


@dataclass(frozen=True)
class AcousticParams:
    """Physical settings of the detector; defaults suit small multirotors."""

    window_s: float = 0.09  # ~11 Hz bins: resolves an 80 Hz comb, follows wandering lines
    hop_fraction: float = 0.5  # of the window
    f0_min_hz: float = 80.0
    f0_max_hz: float = 800.0
    band_hz: tuple[float, float] = (60.0, 8000.0)
    harmonics: int = 16
    floor_span_hz: float = 250.0  # CFAR reference window across frequency
    peak_db: float = 6.0  # a tonal peak stands this far above the local floor
    line_window_s: float = 1.0  # fine spectrum for the stationary-line mask (1 Hz bins)
    line_every_s: float = 0.5
    line_average_s: float = 3.0
    line_db: float = 10.0  # a stationary line stands this far above its fine floor
    stationary_memory_s: float = 60.0  # how long a stationary line stays masked
    # Helicopter: a dense low comb (main-rotor blade-pass 8-30 Hz) vetoes drone decisions.
    heli_f0_hz: tuple[float, float] = (8.0, 30.0)
    heli_harmonics: int = 12
    heli_db: float = 6.0
    heli_hits: int = 9  # of heli_harmonics; a drone comb (f0 >= 80 Hz) can fill at most 4
    heli_hold_s: float = 3.0
    # Short-bin occupancy: a line present in one 11 Hz bin most of the last 1.5 s is steady
    # at this resolution too (catches machines switching on before the fine mask forms).
    occupancy_s: float = 1.5
    occupancy_level: float = 0.5
    warmup_s: float = 2.0  # no decision before the stationary mask has formed
    persist_s: float = 0.5  # evidence is integrated over this long
    miss_harmonics: int = 8  # missing harmonics among the first 8 cost miss_penalty each
    miss_penalty: float = 1.0
    prefer_low: float = 0.8  # take the lowest f0 with this share of the best strength
    block_hits: int = 3  # harmonics that must carry an unmasked tonal peak
    threshold: float = 0.9  # on the integrated score
    wander_min: float = 0.003  # detrended rms of log f0 on the track (0.3 %)


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
        self.window = np.hanning(self.n).astype(np.float32)
        lo = max(1, int(p.band_hz[0] / self.df))
        hi = min(self.n // 2, int(min(p.band_hz[1], 0.45 * sample_rate_hz) / self.df))
        self.lo, self.hi = lo, hi
        self.freqs = np.arange(lo, hi) * self.df
        span = int(p.floor_span_hz / self.df) | 1
        self.floor_span = max(span, 9)
        self._buf = np.zeros((0, channels), dtype=np.float32)
        self._t_next: float | None = None  # time of the buffer's first sample
        self._prev_p: np.ndarray | None = None
        nb = hi - lo
        self._occ = np.zeros(nb)
        self._alpha_occ = self.hop_s / p.occupancy_s
        self._lines = StationaryLines(sample_rate_hz, p, self.lo, self.hi, self.df)
        self._blocks = 0
        self._warmup_blocks = int(np.ceil(p.warmup_s / self.hop_s))
        self._history: deque[tuple[float, float | None]] = deque(
            maxlen=max(2, round(p.persist_s / self.hop_s)))
        self._comb_index, self._comb_valid, self._f0_grid = self._build_comb()
        self._comb_low = self._comb_valid[:, : p.miss_harmonics]
        self.doa = (DoaEstimator(positions_m, sample_rate_hz, self.n)
                    if positions_m is not None and len(positions_m) >= 2 else None)
        self.heading_deg = heading_deg
        self._peak_bins: list[int] = []
        self.last_wander = 0.0  # for diagnostics: the track's wander at the last block

    def _build_comb(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bin indices (relative to lo) of each candidate f0's harmonics."""
        p = self.p
        # Fine enough that the highest harmonic lands within one bin of its line.
        f0 = np.arange(p.f0_min_hz, p.f0_max_hz, 2.0 * self.df / p.harmonics)
        k = np.arange(1, p.harmonics + 1)
        bins = np.rint(f0[:, None] * k[None, :] / self.df).astype(int) - self.lo
        valid = (bins >= 0) & (bins < self.hi - self.lo)
        return np.clip(bins, 0, self.hi - self.lo - 1), valid, f0

    def process(self, samples: np.ndarray, t_start: float) -> list[AcousticResult]:
        """Take a (frames, channels) float block whose first sample is at t_start."""
        x = np.asarray(samples, dtype=np.float32)
        if x.ndim == 1:
            x = x[:, None]
        if x.shape[1] != self.channels:
            raise ValueError(f"acoustic detector: block has {x.shape[1]} channels, "
                             f"expected {self.channels}")
        if self._t_next is None or len(self._buf) == 0:
            self._t_next = t_start - len(self._buf) / self.rate
        self._buf = np.concatenate([self._buf, x]) if len(self._buf) else x
        results = []
        while len(self._buf) >= self.n:
            frame = self._buf[:self.n]
            t_centre = self._t_next + 0.5 * self.n / self.rate
            results.append(self._analyse(frame, t_centre))
            self._buf = self._buf[self.hop:]
            self._t_next += self.hop / self.rate
        return results

    def _analyse(self, frame: np.ndarray, t: float) -> AcousticResult:
        p = self.p
        spec = sfft.rfft(frame * self.window[:, None], axis=0)
        band = np.ascontiguousarray(spec[self.lo:self.hi])
        flat = band.view(band.real.dtype)  # (F, 2M) real and imaginary parts side by side
        power = np.einsum("fm,fm->f", flat, flat).astype(np.float64)
        # Two hops averaged: a steadier floor and peaks, still faster than rotor wander.
        smooth = power if self._prev_p is None else 0.5 * (power + self._prev_p)
        self._prev_p = power
        tiny = float(smooth.max()) * 1e-12 + 1e-30  # relative: silence is not a level cue
        level = 10.0 * np.log10(smooth + tiny)
        white = level - median_filter(level, size=self.floor_span, mode="nearest")
        peaks = np.zeros(len(white), dtype=bool)
        inner = white[1:-1]
        peaks[1:-1] = (inner > p.peak_db) & (inner >= white[:-2]) & (inner >= white[2:])
        masked = self._lines.update(frame[self.n - min(self.hop, self.n):, 0], self.hop_s)
        # Lines that sit in one short bin most of the time are steady at this resolution too.
        self._occ += self._alpha_occ * (peaks - self._occ)
        masked = masked | (maximum_filter1d(self._occ, 3) > p.occupancy_level)
        free = peaks & ~masked
        evidence = np.where(free, np.minimum(white, 20.0) - p.peak_db + 1.0, 0.0)
        evidence = maximum_filter1d(evidence, 3)
        self._blocks += 1
        f0: float | None = None
        self._peak_bins = []
        strength = self._comb(evidence) if free.sum() >= p.block_hits else np.zeros(1)
        best = int(np.argmax(strength))
        if strength[best] > 0:
            # The lowest fundamental that explains nearly as much: not a multiple of the truth.
            near = np.flatnonzero(strength >= p.prefer_low * strength[best])
            best = int(near[0])
            f0 = self._refine_f0(white, evidence, float(self._f0_grid[best]))
        self._history.append((float(strength[best]) / (p.block_hits * 4.0), f0))
        score, f0_track, wander = self._integrated()
        self.last_wander = wander
        warm = self._blocks > self._warmup_blocks
        drone = (warm and score >= p.threshold and wander >= p.wander_min
                 and not self._lines.helicopter)
        f0 = f0_track
        bearings: list[AcousticBearing] = []
        if drone and self.doa is not None and f0 is not None:
            bearings = self._bearings(spec, f0, t, score)
        return AcousticResult(t=t, drone=drone, score=round(score, 4),
                              f0_hz=None if f0 is None else round(f0, 2), bearings=bearings)

    def _comb(self, evidence: np.ndarray) -> np.ndarray:
        """Harmonic-sum strength of every candidate f0 over the unmasked tonal evidence."""
        p = self.p
        comb = evidence[self._comb_index] * self._comb_valid
        present = comb > 0
        hits = present.sum(axis=1)
        # A missing low harmonic counts against a candidate: f0/2 explains every line of f0
        # but leaves its odd harmonics empty.
        misses = (~present[:, : p.miss_harmonics] & self._comb_low).sum(axis=1)
        strength = np.maximum(comb.sum(axis=1) - p.miss_penalty * misses, 0.0)
        strength[hits < p.block_hits] = 0.0
        return strength

    def _refine_f0(self, white: np.ndarray, evidence: np.ndarray, f0: float) -> float:
        """Least-squares f0 from the interpolated frequencies of the harmonics that hit; keeps
        their peak bins for direction finding."""
        num = den = 0.0
        self._peak_bins = []
        last = len(white) - 1
        for k in range(1, self.p.harmonics + 1):
            centre = round(k * f0 / self.df) - self.lo
            if centre < 1 or centre >= last or evidence[centre] <= 0:
                continue
            lo, hi = max(1, centre - 1), min(last - 1, centre + 1)
            b = lo + int(np.argmax(white[lo:hi + 1]))
            a, m, c = white[b - 1], white[b], white[b + 1]
            denom = a - 2 * m + c
            delta = 0.0 if denom >= 0 else float(np.clip(0.5 * (a - c) / denom, -0.5, 0.5))
            fk = (b + self.lo + delta) * self.df
            self._peak_bins.append(b + self.lo)
            # Weighted by SNR (dB above floor): strong lines are measured more precisely.
            weight = float(m)
            num += weight * k * fk
            den += weight * k * k
        return num / den if den else f0

    def _integrated(self) -> tuple[float, float | None, float]:
        """Score, f0 and wander over the persistence window.

        Blocks count when their f0 agrees with the window's median f0 (one continuous rotor
        track); wander is the detrended spread of log f0 on that track, which a governed or
        mains-locked machine does not have and a flying multirotor always has.
        """
        f0s = sorted(f for _, f in self._history if f is not None)
        if len(f0s) < 3:
            return 0.0, None, 0.0
        ref = f0s[len(f0s) // 2]
        scores, track, times = [], [], []
        for i, (s, f) in enumerate(self._history):
            if f is not None and abs(math.log(f / ref)) < 0.08:
                scores.append(s)
                track.append(math.log(f))
                times.append(i)
            else:
                scores.append(0.0)
        score = statistics.median(scores)
        if len(track) < 3:
            return score, ref, 0.0
        x = np.asarray(times, dtype=np.float64)
        y = np.asarray(track)
        x -= x.mean()
        slope = float((x * (y - y.mean())).sum() / (x * x).sum())
        resid = y - y.mean() - slope * x
        # Robust spread (MAD): one mis-picked block must not make a steady machine wander.
        spread = 1.4826 * float(np.median(np.abs(resid - np.median(resid))))
        return score, math.exp(track[-1]), spread

    def _bearings(self, spec: np.ndarray, f0: float, t: float,
                  score: float) -> list[AcousticBearing]:
        assert self.doa is not None
        if len(self._peak_bins) < 2:
            return []
        est = self.doa.estimate(spec, np.array(self._peak_bins))
        if est is None:
            return []
        return [AcousticBearing(t=t, azimuth_deg=(self.heading_deg + est.azimuth_deg) % 360.0,
                                elevation_deg=est.elevation_deg, error_deg=est.error_deg,
                                f0_hz=f0, score=score)]



class StationaryLines:
    """Mask of short-spectrum bins that hold a steady line (machinery, mains, governed rotors).

    Keeps the last line_window_s of channel 0; every line_every_s takes a fine spectrum,
    averages it over line_average_s, whitens it with a coarse median floor and marks narrow
    peaks line_db above it. A marked short bin stays masked for stationary_memory_s.
    """

    def __init__(self, rate: int, p: AcousticParams, lo: int, hi: int, df: float) -> None:
        self.p = p
        self.n = sfft.next_fast_len(round(p.line_window_s * rate), real=True)
        self.fine_df = rate / self.n
        # From a few hertz: the helicopter comb lives below the drone band.
        self.lo_fine = max(1, int(4.0 / self.fine_df))
        self.hi_fine = min(self.n // 2, int(hi * df / self.fine_df))
        fine_freqs = np.arange(self.lo_fine, self.hi_fine) * self.fine_df
        short = np.rint(fine_freqs / df).astype(int) - lo
        self.in_band = (short >= 0) & (short < hi - lo)
        self.to_short = np.clip(short, 0, hi - lo - 1)
        f_rotor = np.arange(p.heli_f0_hz[0], p.heli_f0_hz[1], 0.1)
        k = np.arange(1, p.heli_harmonics + 1)
        self.heli_index = np.clip(np.rint(f_rotor[:, None] * k[None, :] / self.fine_df).astype(int)
                                  - self.lo_fine, 0, self.hi_fine - self.lo_fine - 1)
        self.heli_hits = 0
        self.heli_until = 0.0  # seconds of helicopter veto left
        self.window = np.hanning(self.n).astype(np.float32)
        self.ring = np.zeros(self.n, dtype=np.float32)
        self.filled = 0
        self.since = 0.0
        self.avg: np.ndarray | None = None
        self.alpha = min(1.0, p.line_every_s / p.line_average_s)
        self.seg = max(8, round(25.0 / self.fine_df))  # floor in ~25 Hz segments
        self.memory = np.zeros(hi - lo)  # seconds of mask left per short bin
        self.mask = np.zeros(hi - lo, dtype=bool)

    def update(self, new_samples: np.ndarray, elapsed_s: float) -> np.ndarray:
        m = len(new_samples)
        if m >= self.n:
            self.ring[:] = new_samples[-self.n:]
        else:
            self.ring[:-m] = self.ring[m:]
            self.ring[-m:] = new_samples
        self.filled += m
        self.since += elapsed_s
        self.memory = np.maximum(self.memory - elapsed_s, 0.0)
        self.heli_until = max(0.0, self.heli_until - elapsed_s)
        if self.filled >= self.n and self.since >= self.p.line_every_s:
            self.since = 0.0
            self._refresh()
        self.mask = self.memory > 0
        return self.mask

    @property
    def helicopter(self) -> bool:
        return self.heli_until > 0

    def _refresh(self) -> None:
        spec = sfft.rfft(self.ring * self.window)[self.lo_fine:self.hi_fine]
        power = spec.real**2 + spec.imag**2
        self.avg = power if self.avg is None else self.avg + self.alpha * (power - self.avg)
        level = 10.0 * np.log10(self.avg + float(self.avg.max()) * 1e-12 + 1e-30)
        # Coarse floor: median per segment, interpolated; cheap on thousands of fine bins.
        nseg = len(level) // self.seg
        if nseg < 2:
            return
        meds = np.median(level[: nseg * self.seg].reshape(nseg, self.seg), axis=1)
        centres = (np.arange(nseg) + 0.5) * self.seg
        white = level - np.interp(np.arange(len(level)), centres, meds)
        local_max = (white >= np.roll(white, 1)) & (white >= np.roll(white, -1))
        line = (white > self.p.line_db) & local_max & self.in_band
        if line.any():
            self.memory[self.to_short[line]] = self.p.stationary_memory_s
        # Main-rotor comb: most of the first harmonics of a 8-30 Hz blade-pass present.
        tonal = maximum_filter1d((local_max & (white > self.p.heli_db)).astype(np.int8), 3)
        self.heli_hits = int(tonal[self.heli_index].sum(axis=1).max())
        if self.heli_hits >= self.p.heli_hits:
            self.heli_until = self.p.heli_hold_s
