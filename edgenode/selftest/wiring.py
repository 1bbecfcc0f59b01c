"""Does the array's sound fit its geometry? A swapped pair of microphones or a reversed one.

The cross-spectral matrix of the array between 0.8 and 3.8 kHz (below the UMA-16's spatial
aliasing) is dominated by a few far sources, so its signal subspace holds their steering
vectors, computed from the configured geometry. `fit` is how well the best steering vector
lies in that subspace (1.0: perfectly), averaged over the band. With two microphones swapped
or one reversed, no steering vector fits as well, but the same data with that swap (or sign)
undone does: trying every pair and every sign names the culprit. numpy and scipy.fft (not
scipy.signal: ~25 MB of resident memory in the daemon for one STFT); no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft as sfft

SPEED_OF_SOUND = 343.0
BAND_HZ = (800.0, 3800.0)
NFFT = 256
SUBSPACE = 3
DIRECTIONS = 600
FRAMES_AT_ONCE = 64


@dataclass(frozen=True)
class WiringFit:
    fit: float  # as wired
    coherent_share: float  # of the array's power in the strongest source, mean over the band
    best_swap: tuple[int, int]
    swap_fit: float
    best_flip: int
    flip_fit: float


def _sphere(n: int) -> np.ndarray:
    k = np.arange(n) + 0.5
    z = 1 - 2 * k / n
    phi = np.pi * (1 + 5 ** 0.5) * k
    r = np.sqrt(1 - z * z)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def _band_stft(x: np.ndarray, fs: int) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, spectra (channels, bins, frames)) of `x` (channels, samples) in BAND_HZ:
    periodic Hann windows of NFFT, half overlapping, half a window of zeros at each end.
    In float32 and FRAMES_AT_ONCE frames at a time: the whole 2 s window at once in float64
    was a 90 MB spike in the daemon every self-test."""
    hop = NFFT // 2
    padded = np.pad(x.astype(np.float32), ((0, 0), (hop, hop + (-x.shape[1]) % hop)))
    frames = np.lib.stride_tricks.sliding_window_view(padded, NFFT, axis=1)[:, ::hop]
    f = np.fft.rfftfreq(NFFT, 1.0 / fs)
    sel = (f >= BAND_HZ[0]) & (f <= BAND_HZ[1])
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(NFFT) / NFFT)).astype(np.float32)
    z = np.empty((x.shape[0], int(sel.sum()), frames.shape[1]), np.complex128)
    for at in range(0, frames.shape[1], FRAMES_AT_ONCE):
        spectra = sfft.rfft(frames[:, at:at + FRAMES_AT_ONCE] * window, axis=2)
        z[:, :, at:at + FRAMES_AT_ONCE] = np.transpose(spectra[:, :, sel], (0, 2, 1))
    return f[sel], z / float(window.sum())


def wiring_fit(samples: np.ndarray, positions_m: np.ndarray, fs: int) -> WiringFit:
    """`samples` (frames, mics) in geometry order; `positions_m` (mics, 3)."""
    x = np.asarray(samples, dtype=np.float32)
    m = x.shape[1]
    f, z = _band_stft(x.T, fs)
    # Equal gain per channel: a quiet or loud microphone is the level checks' business.
    z = z / (np.sqrt(np.mean(np.abs(z) ** 2, axis=(1, 2)))[:, None, None] + 1e-30)
    csm = np.einsum("mft,nft->fmn", z, z.conj()) / z.shape[2]
    eigvals, vecs = np.linalg.eigh(csm)
    share = float(np.mean(eigvals[:, -1] / np.maximum(eigvals.sum(axis=1), 1e-30)))
    basis = vecs[:, :, -SUBSPACE:]
    tau = -(_sphere(DIRECTIONS) @ np.asarray(positions_m, float).T) / SPEED_OF_SOUND
    pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
    ii = np.array([p[0] for p in pairs])
    jj = np.array([p[1] for p in pairs])
    fit = np.zeros(len(f))
    swaps = np.zeros((len(f), len(pairs)))
    flips = np.zeros((len(f), m))
    for b, fb in enumerate(f):
        a_h = np.exp(2j * np.pi * fb * tau) / np.sqrt(m)  # rows: conj steering vectors
        es = basis[b]
        proj = a_h @ es
        fit[b] = (np.abs(proj) ** 2).sum(axis=1).max()
        # Swapping rows i and j of the basis is a rank-one change of the projection.
        swapped = proj[:, None, :] + (a_h[:, ii] - a_h[:, jj])[:, :, None] * (es[jj] - es[ii])
        swaps[b] = (np.abs(swapped) ** 2).sum(axis=2).max(axis=0)
        flipped = proj[:, None, :] - 2 * a_h[:, :, None] * es[None]
        flips[b] = (np.abs(flipped) ** 2).sum(axis=2).max(axis=0)
    swap_mean, flip_mean = swaps.mean(axis=0), flips.mean(axis=0)
    k, q = int(np.argmax(swap_mean)), int(np.argmax(flip_mean))
    return WiringFit(float(fit.mean()), share, pairs[k], float(swap_mean[k]), q,
                     float(flip_mean[q]))
