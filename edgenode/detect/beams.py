"""Spectra that the acoustic detector analyses: the channels' summed power, or the best of a
bank of delay-and-sum beams on the horizon (arrays of four or more microphones)."""

from __future__ import annotations

import numpy as np

from edgenode.detect.acoustic_params import AcousticParams
from edgenode.detect.doa import SPEED_OF_SOUND_MPS, unit_vectors
from edgenode.detect.rank import max3


def channel_power(band: np.ndarray) -> np.ndarray:
    """Power per bin summed over the channels of a (M, F) complex spectrum."""
    flat = band.view(band.real.dtype)  # (M, 2F): real and imaginary parts side by side
    summed = np.add.reduce(flat * flat, axis=0)
    return (summed[0::2] + summed[1::2]).astype(np.float64)


OTHER_WEIGHT = 0.1  # weight of a bin that is no free tonal peak in a beam's evidence


class BeamBank:
    """Frequency-domain delay-and-sum beams on the horizon; the spectrum of the best one.

    Summing the microphones in phase towards a source keeps its lines whole while noise that
    differs between microphones (self-noise, wind at the ports, a diffuse field where the
    array spans a wavelength) partly cancels: up to 10 log10(M) dB. The array is small against
    a rotor's low harmonics, so the gain grows with frequency. The beam is chosen by the
    tonal evidence it carried over the last beam_select_s (lines standing peak_db over each
    beam's own median floor, below beam_select_hz), so a steady, loud noise direction does not
    win it and one unlucky block does not switch it; the whole band of that beam then goes
    through the same whitening and CFAR as a single microphone would. The comb then sees the
    best of `beams` looks rather than one, which the persistence and wander tests absorb:
    noise does not hold one beam's harmonic comb for persist_s.
    """

    def __init__(self, positions_m: np.ndarray, freqs: np.ndarray, p: AcousticParams,
                 hop_s: float) -> None:
        pos = np.asarray(positions_m, dtype=np.float64)
        pos = pos - pos.mean(axis=0)
        self.mics = len(pos)
        az = np.arange(p.beams) * 360.0 / p.beams
        u = unit_vectors(az, np.full_like(az, p.beam_elevation_deg))  # (B, 3)
        lead = u @ pos.T / SPEED_OF_SOUND_MPS  # (B, M): how much earlier each mic hears
        # A wave from u is exp(+j 2 pi f lead) at a mic; the weights undo it. (B, M, F)
        steer = (np.exp(-2j * np.pi * lead[:, :, None] * freqs[None, None, :])
                 / self.mics).astype(np.complex64)
        self.steer_beam = steer
        df = float(freqs[1] - freqs[0]) if len(freqs) > 1 else 1.0
        self.seg = max(9, round(p.floor_span_hz / df) | 1)
        n_sel = int(np.searchsorted(freqs, p.beam_select_hz))
        self.n_sel = max(self.seg, (n_sel // self.seg) * self.seg)
        self.n_sel = min(self.n_sel, (len(freqs) // self.seg) * self.seg)
        # The selection's bins as (F, M, B): all beams of a bin in one product.
        self.steer_sel = np.ascontiguousarray(steer[:, :, : self.n_sel].transpose(2, 1, 0))
        self.peak = 10 ** (p.peak_db / 10.0)
        self.every = max(1, p.beam_select_every)
        self.alpha = min(1.0, self.every * hop_s / p.beam_select_s)
        self.evidence = np.zeros(p.beams)
        self.best = 0
        self.blocks = 0
        self._away: np.ndarray | None = None  # away_power's products, kept between hops
        self._away_steer = np.zeros((0, 0, 0), dtype=np.complex64)

    def power(self, band: np.ndarray, steady: np.ndarray | None = None,
              peaks: np.ndarray | None = None) -> np.ndarray:
        """Power spectrum of the best beam for a (channels, F) band spectrum. `steady` (F,)
        marks bins of stationary lines (machinery): they never count as a beam's evidence, so
        a generator louder than the drone does not pull the beam onto itself."""
        x = band[: self.mics]
        n = self.n_sel
        self.blocks += 1
        if n >= self.seg and self.blocks % self.every == 1 % self.every:
            sel = np.matmul(x[:, :n].T[:, None, :], self.steer_sel)[:, 0, :].T  # (B, n)
            p = sel.real**2 + sel.imag**2
            self.evidence += self.alpha * (self._tonal(p, steady, peaks) - self.evidence)
            self.best = int(self.evidence.argmax())
        beam = np.add.reduce(x * self.steer_beam[self.best], axis=0)
        return (beam.real**2 + beam.imag**2).astype(np.float64)

    def away_power(self, band: np.ndarray, min_offset: int, bins: int | None = None,
                   part: int = 0, parts: int = 1) -> np.ndarray:
        """Mean power spectrum of the beams at least `min_offset` beams from the best one (the
        chosen beam's last choice), for a (channels, F) band spectrum: where a second source
        is looked for beside the one the best beam follows. The small array gives those beams
        little directivity below ~1 kHz, so the caller still keeps the first source's lines
        out of what it judges. `bins`: the first so many bins only. `part` of `parts`: every
        parts-th of those beams from the part-th on (a caller that averages over hops can
        take them in turn)."""
        n = len(self.steer_beam)
        f = self.steer_beam.shape[2] if bins is None else bins
        if self._away_steer.shape[2] != f:
            # The bank twice over, contiguous: the away beams, a run modulo the bank, are then
            # one strided slice (a product over a sliced bank is slower per element).
            self._away_steer = np.ascontiguousarray(
                np.concatenate([self.steer_beam, self.steer_beam])[:, :, :f])
        first = (self.best + min_offset) % n
        steer = self._away_steer[first + part: first + n - 2 * min_offset + 1: parts]
        if self._away is None or self._away.shape != steer.shape:
            self._away = np.empty(steer.shape, dtype=np.complex64)
        np.multiply(band[None, : self.mics, :f], steer, out=self._away)
        beams = np.add.reduce(self._away, axis=1)
        p = beams.real**2 + beams.imag**2
        return np.add.reduce(p, axis=0).astype(np.float64) / len(steer)

    def _tonal(self, p: np.ndarray, steady: np.ndarray | None,
               peaks: np.ndarray | None) -> np.ndarray:
        """Each beam's tonal evidence: lines standing peak_db over that beam's own floor. The
        free tonal peaks (lines that are not stationary, found in the last block) count in
        full, other bins at OTHER_WEIGHT, stationary lines not at all: a generator louder
        than the drone then cannot pull the beam onto itself, and a rotor too faint to give
        peaks still steers it through its lines' energy."""
        n = self.n_sel
        # Each beam's own floor: the median of each floor_span segment (a step floor,
        # enough to rank beams; the chosen beam is whitened properly later).
        seg = p.reshape(len(p), n // self.seg, self.seg)
        mid = self.seg // 2
        floor = np.partition(seg, mid, axis=2)[:, :, mid: mid + 1]
        tonal = np.log(np.maximum(seg / (floor * self.peak + 1e-30), 1.0)).reshape(len(p), n)
        weight = np.full(n, OTHER_WEIGHT)
        if peaks is not None:
            weight[peaks[:n]] = 1.0
        if steady is not None:  # and the bins beside them, where the window spreads them
            weight[max3(max3(steady[:n]))] = 0.0
        return tonal @ weight
