"""Direction of arrival by SRP-PHAT over the detected harmonic bins only.

Node frame: x along the mast heading, y to its LEFT, z up. Azimuth is clockwise from x (as a
compass bearing is), so a source on the right (negative y) is at +90 degrees:
azimuth = atan2(-y, x). Elevation is up from the horizontal. A planar horizontal array cannot
tell up from down, so it reports no elevation.

A plane wave arriving from unit direction u reaches the microphone at r earlier by r.u / c, so
its spectrum there is S(f) exp(+j 2 pi f r.u / c). The steered response sums the
phase-only (PHAT) spectra after undoing that shift; its maximum over directions is the DOA.
Costs scale with directions x mics x harmonic bins, so the search runs coarse, then fine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SPEED_OF_SOUND_MPS = 343.0
# Leave-one-out needs four bins: three leave two, whose low-frequency beam has several lobes.
LOO_MIN_BINS = 4


@dataclass(frozen=True)
class DoaEstimate:
    azimuth_deg: float  # node frame, clockwise from x, [0, 360)
    elevation_deg: float | None  # None where the geometry cannot tell
    error_deg: float  # one-sigma azimuth uncertainty
    power: float  # normalised steered power at the peak, 0..1
    # With leave_one_out: how far the azimuth moves, at most, when any one bin is left out
    # (0 below LOO_MIN_BINS). One source moves it little; two sources' bins mixed, far.
    spread_deg: float = 0.0


def unit_vectors(az_deg: np.ndarray, el_deg: np.ndarray) -> np.ndarray:
    """(..., 3) unit vectors towards (azimuth clockwise from x, elevation up)."""
    az = np.radians(az_deg)
    el = np.radians(el_deg)
    return np.stack([np.cos(el) * np.cos(az), -np.cos(el) * np.sin(az), np.sin(el)], axis=-1)


def azimuth_of(vector: np.ndarray) -> float:
    """Node-frame azimuth of a direction vector: atan2(-y, x), clockwise from x."""
    return float(np.degrees(np.arctan2(-vector[1], vector[0])) % 360.0)


class DoaEstimator:
    """SRP-PHAT on a given array geometry for one FFT size and sample rate."""

    def __init__(self, positions_m: np.ndarray, sample_rate_hz: int, n_fft: int,
                 *, speed_of_sound_mps: float = SPEED_OF_SOUND_MPS,
                 max_freq_hz: float = 8000.0) -> None:
        pos = np.asarray(positions_m, dtype=np.float64)
        if pos.ndim != 2 or pos.shape[1] != 3 or len(pos) < 2:
            raise ValueError(f"DOA: positions must be (M>=2, 3), got {pos.shape}")
        self.positions = pos - pos.mean(axis=0)  # phase centre: smaller steering phases
        self.mics = len(pos)
        self.df = sample_rate_hz / n_fft
        self.c = speed_of_sound_mps
        extent = np.ptp(self.positions, axis=0)
        aperture = float(np.max(np.linalg.norm(
            self.positions[:, None, :] - self.positions[None, :, :], axis=-1)))
        self.aperture_m = aperture
        # Elevation is observable only with vertical extent beyond ~5 % of the aperture.
        self.has_elevation = bool(extent[2] > 0.05 * aperture)
        self.coarse_step = 10.0
        coarse_az = np.arange(0.0, 360.0, self.coarse_step)
        coarse_el = (np.array([-30.0, 0.0, 30.0, 60.0]) if self.has_elevation
                     else np.array([0.0, 45.0]))
        az, el = np.meshgrid(coarse_az, coarse_el, indexing="ij")
        self._coarse = (az.ravel(), el.ravel())
        # delay (s) of each mic for each coarse direction: (G, M)
        self._coarse_delay = unit_vectors(*self._coarse) @ self.positions.T / self.c
        # Coarse steering vectors for every bin up to max_freq_hz, built once: (B, G, M).
        # A few MB for 16 mics, and the per-block search no longer evaluates exponentials.
        self._table_bins = min(n_fft // 2 + 1, int(max_freq_hz / self.df) + 2)
        f = np.arange(self._table_bins) * self.df
        self._coarse_table = np.exp(
            -2j * np.pi * f[:, None, None] * self._coarse_delay[None, :, :]).astype(np.complex64)
        # Delays of the fine azimuth row around every coarse direction: (G, A, M).
        self._fine_offsets = np.arange(-self.coarse_step, self.coarse_step + 0.01, 1.0)
        fine_az = self._coarse[0][:, None] + self._fine_offsets[None, :]
        fine_el = np.broadcast_to(self._coarse[1][:, None], fine_az.shape)
        self._fine_delay = unit_vectors(fine_az, fine_el) @ self.positions.T / self.c
        self._fine_delay32 = self._fine_delay.astype(np.float32)  # as _steer takes it

    def estimate(self, spectrum: np.ndarray, bins: np.ndarray, first_bin: int = 0, *,
                 leave_one_out: bool = False) -> DoaEstimate | None:
        """spectrum: (F, channels) rfft of the block, or the part of it from first_bin on;
        bins: the harmonic bins to use (indices of the full rfft). leave_one_out: also find
        spread_deg, from the per-bin powers the search computes anyway."""
        # A dozen bins: a Python set is cheaper than np.unique.
        bins = np.array(sorted({int(b) for b in np.asarray(bins).ravel().tolist()}), dtype=int)
        if len(bins) == 0 or spectrum.shape[1] < self.mics:
            return None
        x = spectrum[bins - first_bin, : self.mics]
        mag = np.abs(x)
        if not float(mag.min()) > 0:
            return None
        # PHAT: phase only, every bin and mic weighs the same
        x = (x / mag).astype(np.complex64, copy=False)
        freqs = bins * self.df
        # Spatial aliasing: bins above c / (2 d_min) still help, the coarse grid tolerates it.
        if bins[-1] < self._table_bins:
            beam = np.matmul(self._coarse_table[bins], x[:, :, None])[..., 0]
            per_bin = beam.real**2 + beam.imag**2
        else:
            per_bin = self._steer_bins(x, freqs, self._coarse_delay)
        power = np.add.reduce(per_bin, axis=0)
        g = int(power.argmax())
        az0, el0 = self._coarse[0][g], self._coarse[1][g]
        # Fine azimuth at the coarse elevation, then elevation at the fine azimuth: the two
        # are nearly separable near the peak, and this costs tens of directions, not hundreds.
        fine_bins = self._steer_bins(x, freqs, self._fine_delay32[g])
        fine_total = np.add.reduce(fine_bins, axis=0, dtype=np.float64)
        row = fine_total / (len(freqs) * self.mics**2)
        i = int(row.argmax())
        best_az = float(az0 + self._fine_offsets[i] + _parabolic(row, i) * 1.0)
        peak = float(row[i])
        spread = 0.0
        if leave_one_out and len(bins) >= LOO_MIN_BINS:
            spread = float(self._shifts(power - per_bin, fine_total - fine_bins, az0,
                                        best_az).max())
        elevation: float | None = None
        if self.has_elevation:
            fine_el = np.clip(el0 + np.arange(-30.0, 30.01, 2.5), -90.0, 90.0)
            delay = (unit_vectors(np.full_like(fine_el, best_az), fine_el)
                     @ self.positions.T / self.c)
            col = self._steer(x, freqs, delay)
            j = int(col.argmax())
            elevation = float(np.clip(fine_el[j] + _parabolic(col, j) * 2.5, -90.0, 90.0))
            peak = max(peak, float(col[j]))
        # A flat array's coarse grid still spans elevations (delays shrink with cos el), so
        # its azimuth is not biased by a raised source; the sign of elevation stays unknown.
        return DoaEstimate(azimuth_deg=best_az % 360.0, elevation_deg=elevation,
                           error_deg=self.error_deg(peak, len(bins), freqs), power=peak,
                           spread_deg=spread)

    def _shifts(self, coarse_without: np.ndarray, fine_without: np.ndarray, az0: float,
                best_az: float) -> np.ndarray:
        """How far the azimuth moves without each bin, from the leave-one-out powers (B, G)
        and (B, A): on the coarse grid where another lobe wins, else on the fine row."""
        coarse_az = self._coarse[0][coarse_without.argmax(axis=1)]
        far = np.abs((coarse_az - az0 + 180.0) % 360.0 - 180.0)
        i = fine_without.argmax(axis=1)
        rows = np.arange(len(i))
        inner = np.clip(i, 1, fine_without.shape[1] - 2)  # an edge peak keeps offset 0
        a, b, c = (fine_without[rows, inner - 1], fine_without[rows, inner],
                   fine_without[rows, inner + 1])
        denom = a - 2.0 * b + c
        safe = np.where(denom == 0, 1.0, denom)
        offset = np.where((denom == 0) | (inner != i), 0.0,
                          np.clip(0.5 * (a - c) / safe, -0.5, 0.5))
        near = np.abs(az0 + self._fine_offsets[i] + offset - best_az)
        return np.where(far > self.coarse_step, far, near)

    def _steer_bins(self, x: np.ndarray, freqs: np.ndarray, delay: np.ndarray) -> np.ndarray:
        """Steered power of each bin (B, G) for each direction row of delay (G, M)."""
        # undo the arrival phase exp(+j 2 pi f tau): multiply by exp(-j 2 pi f tau)
        phase = np.multiply.outer((-2.0 * np.pi * freqs).astype(np.float32),
                                  delay.astype(np.float32, copy=False))
        steer = np.empty(phase.shape, dtype=np.complex64)  # (B, G, M)
        np.cos(phase, out=steer.real)  # float32 cos/sin: several times faster than complex exp
        np.sin(phase, out=steer.imag)
        beam = np.matmul(steer, x[:, :, None])[..., 0]  # (B, G)
        return beam.real**2 + beam.imag**2

    def _steer(self, x: np.ndarray, freqs: np.ndarray, delay: np.ndarray) -> np.ndarray:
        """Normalised SRP (0..1) for each direction row of delay (G, M)."""
        power = np.add.reduce(self._steer_bins(x, freqs, delay), axis=0, dtype=np.float64)
        return power / (len(freqs) * self.mics**2)

    def error_deg(self, peak: float, n_bins: int, freqs: np.ndarray) -> float:
        """One-sigma azimuth error: beamwidth shrunk by coherence and the number of bins.

        A coherent plane wave gives peak -> 1; noise drives it towards 1/M. The effective SNR
        follows from that, and the Cramer-Rao-like scaling beamwidth / sqrt(2 M B SNR).
        """
        f_mean = math.sqrt(float(np.dot(freqs, freqs)) / len(freqs))
        beamwidth = math.degrees(self.c / max(f_mean * self.aperture_m, 1e-9))
        floor = 1.0 / self.mics
        coherence = min(max((peak - floor) / (1.0 - floor), 1e-3), 0.999)
        snr = coherence / (1.0 - coherence)
        sigma = beamwidth / math.sqrt(2.0 * self.mics * n_bins * snr)
        return min(max(sigma, 0.2), 90.0)


def _parabolic(values: np.ndarray, i: int) -> float:
    """Sub-step offset (-0.5..0.5) of a peak at index i from its two neighbours."""
    if i <= 0 or i >= len(values) - 1:
        return 0.0
    a, b, c = values[i - 1:i + 2].tolist()
    denom = a - 2 * b + c
    return 0.0 if denom == 0 else min(max(0.5 * (a - c) / denom, -0.5), 0.5)
