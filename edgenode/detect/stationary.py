"""The stationary-line mask: short-spectrum bins that hold a steady line (machinery, mains,
governed rotors), and the helicopter main-rotor veto, from a slow fine spectrum."""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft

from edgenode.detect.acoustic_params import AcousticParams
from edgenode.detect.rank import max3, row_median

# A line between two short bins splits its power between them: a quarter bin or more off
# the nearer bin's centre, the two levels differ by under 3 dB (Hann), and noise decides
# which one peaks. Such a line is masked in both once it held its fine bin (+-1) over three
# refreshes in a row (held share 1 - 0.8^3 ~ 0.49): every line at once would also hide two
# short bins for a minute wherever a rotor's line stood out for a moment.
SPLIT_BINS = 0.25
SPLIT_HELD = 0.45


def segment_interp(n: int, seg: int) -> tuple[np.ndarray, np.ndarray]:
    """For np.interp(arange(n), centres, values) over the centres of the n // seg (two or
    more) segments of seg bins: each position's left centre and its distance from it, zero
    outside the centres, where np.interp holds the end values."""
    centres = (np.arange(n // seg) + 0.5) * seg
    position = np.arange(n, dtype=np.float64)
    left = np.clip(np.searchsorted(centres, position, side="right") - 1, 0, None)
    inside = (position > centres[0]) & (position < centres[-1])
    return left, np.where(inside, position - centres[left], 0.0)


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
        place = fine_freqs / df - lo  # in short bins
        short = np.rint(place).astype(int)
        self.in_band = (short >= 0) & (short < hi - lo)
        self.to_short = np.clip(short, 0, hi - lo - 1)
        # The other short bin a line between two of them also peaks in (SPLIT_BINS): masked
        # in the nearer alone, it peaked free in the other about half the time, and a
        # drifting generator's 4th harmonic made a drone comb with two noise peaks.
        offset = place - short
        beside = np.where(np.abs(offset) > SPLIT_BINS, np.sign(offset).astype(int), 0)
        self.to_beside = np.clip(short + beside, 0, hi - lo - 1)
        f_rotor = np.arange(p.heli_f0_hz[0], p.heli_f0_hz[1], 0.1)
        k = np.arange(1, p.heli_harmonics + 1)
        self.heli_index = np.clip(np.rint(f_rotor[:, None] * k[None, :] / self.fine_df).astype(int)
                                  - self.lo_fine, 0, self.hi_fine - self.lo_fine - 1)
        self.heli_hits = 0
        self.heli_span = int(self.heli_index.max()) + 2
        self._floor_interp: tuple[np.ndarray, np.ndarray] | None = None
        self.heli_until = 0.0  # seconds of helicopter veto left
        self.window = np.hanning(self.n).astype(np.float32)
        self.ring = np.zeros(self.n, dtype=np.float32)
        self.windowed = np.empty(self.n, dtype=np.float32)
        self.filled = 0
        self.since = 0.0
        self.avg: np.ndarray | None = None
        self.alpha = min(1.0, p.line_every_s / p.line_average_s)
        self.seg = max(8, round(25.0 / self.fine_df))  # floor in ~25 Hz segments
        self.clock = 0.0  # seconds of audio seen
        self.expiry = np.zeros(hi - lo)  # clock at which each short bin's mask lapses
        self.pos = 0  # next write position in the ring
        self.mask = np.zeros(hi - lo, dtype=bool)
        self.held = np.zeros(self.hi_fine - self.lo_fine)  # share of recent refreshes with a line
        self.held_alpha = min(1.0, p.line_every_s / p.line_held_s)
        self.held_expiry = np.zeros(hi - lo)

    def update(self, new_samples: np.ndarray, elapsed_s: float) -> np.ndarray:
        m = len(new_samples)
        if m >= self.n:
            self.ring[:] = new_samples[-self.n:]
            self.pos = 0
        else:  # circular: written in place, put in time order only when a spectrum is taken
            first = min(m, self.n - self.pos)
            self.ring[self.pos:self.pos + first] = new_samples[:first]
            self.ring[: m - first] = new_samples[first:]
            self.pos = (self.pos + m) % self.n
        self.filled += m
        self.since += elapsed_s
        self.clock += elapsed_s
        self.heli_until = max(0.0, self.heli_until - elapsed_s)
        if self.filled >= self.n and self.since >= self.p.line_every_s:
            self.since = 0.0
            self._refresh()
        self.mask = self.expiry > self.clock
        return self.mask

    @property
    def held_mask(self) -> np.ndarray:
        return self.held_expiry > self.clock

    @property
    def helicopter(self) -> bool:
        return self.heli_until > 0

    def _refresh(self) -> None:
        # The ring windowed in time order, without first copying it into that order.
        tail = self.n - self.pos
        np.multiply(self.ring[self.pos:], self.window[:tail], out=self.windowed[:tail])
        np.multiply(self.ring[:self.pos], self.window[tail:], out=self.windowed[tail:])
        spec = sfft.rfft(self.windowed)[self.lo_fine:self.hi_fine]
        power = spec.real**2 + spec.imag**2
        self.avg = power if self.avg is None else self.avg + self.alpha * (power - self.avg)
        level = 10.0 * np.log10(self.avg + float(self.avg.max()) * 1e-12 + 1e-30)
        # Coarse floor: median per segment, interpolated; cheap on thousands of fine bins.
        nseg = len(level) // self.seg
        if nseg < 2:
            return
        meds = row_median(level[: nseg * self.seg].reshape(nseg, self.seg)).astype(np.float64)
        if self._floor_interp is None:
            self._floor_interp = segment_interp(len(level), self.seg)
        left, offset = self._floor_interp
        # np.interp's arithmetic (slope times offset plus the left value), its search done once;
        # the appended zero slope holds the last value beyond the last centre.
        slope = np.append(np.diff(meds) / float(self.seg), 0.0)
        white = level - (slope[left] * offset + meds[left])
        local_max = np.empty(len(white), dtype=bool)  # against both neighbours, circularly
        np.greater_equal(white[1:], white[:-1], out=local_max[1:])
        local_max[0] = white[0] >= white[-1]
        local_max[:-1] &= white[:-1] >= white[1:]
        local_max[-1] &= white[-1] >= white[0]
        line = (white > self.p.line_db) & local_max & self.in_band
        if line.any():
            self.expiry[self.to_short[line]] = self.clock + self.p.stationary_memory_s
        # Held lines: a rotor line also stands out for a moment where its wander turns, and
        # the mask above then hides it for a minute; the faint path only masks lines that
        # held their fine bin (+-1) over line_held_s.
        self.held += self.held_alpha * (max3(line) - self.held)
        held = line & (self.held > self.p.line_held)
        if held.any():
            self.held_expiry[self.to_short[held]] = self.clock + self.p.stationary_memory_s
        split = line & (self.held > SPLIT_HELD)
        if split.any():
            self.expiry[self.to_beside[split]] = self.clock + self.p.stationary_memory_s
        # Main-rotor comb: most of the first harmonics of a 8-30 Hz blade-pass present.
        # Only the low bins the rotor comb can reach (plus the neighbour the max needs).
        low = self.heli_span
        tonal = max3((local_max[:low] & (white[:low] > self.p.heli_db)).astype(np.int8))
        self.heli_hits = int(np.add.reduce(tonal[self.heli_index], axis=1).max())
        if self.heli_hits >= self.p.heli_hits:
            self.heli_until = self.p.heli_hold_s
