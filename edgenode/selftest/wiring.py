"""Does the array's sound fit its geometry? A swapped pair of microphones or a reversed one.

The cross-spectral matrix of the array between 0.8 and 3.8 kHz (below the UMA-16's spatial
aliasing) is dominated by a few far sources, so its signal subspace holds their steering
vectors, computed from the configured geometry. `fit` is how well the best steering vector
lies in that subspace (1.0: perfectly), averaged over the band. With two microphones swapped
or one reversed, no steering vector fits as well, but the same data with that swap (or sign)
undone does: trying every pair and every sign names the culprit. numpy only (scipy.signal's STFT
was ~25 MB of resident memory in the daemon); no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SPEED_OF_SOUND = 343.0
BAND_HZ = (800.0, 3800.0)
NFFT = 256
SUBSPACE = 3
DIRECTIONS = 600
FRAMES_AT_ONCE = 16  # numpy.fft.rfft takes ~100 kB of temporaries a frame


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


def _band_csm(x: np.ndarray, cols: list[int], fs: int) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, cross-spectral matrices (bins, mics, mics)) of the columns `cols` of `x`
    (samples, channels) in BAND_HZ: periodic Hann windows of NFFT, half overlapping, frames
    wholly inside the window. Summed FRAMES_AT_ONCE frames at a time, in float32, from the
    caller's array: a copy of it (or of its spectra) is several MB on top of the daemon's
    resident set every self-test."""
    hop = NFFT // 2
    f = np.fft.rfftfreq(NFFT, 1.0 / fs)
    sel = (f >= BAND_HZ[0]) & (f <= BAND_HZ[1])
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(NFFT) / NFFT)).astype(np.float32)
    frames = (len(x) - NFFT) // hop + 1
    csm = np.zeros((int(sel.sum()), len(cols), len(cols)), np.complex128)
    for at in range(0, frames, FRAMES_AT_ONCE):
        k = min(FRAMES_AT_ONCE, frames - at)
        rows = x[at * hop:(at + k - 1) * hop + NFFT, cols]
        chunk = np.lib.stride_tricks.sliding_window_view(rows, NFFT, axis=0)[::hop]
        spectra = np.fft.rfft(chunk * window, axis=2)[:, :, sel].astype(np.complex128)
        csm += np.einsum("tmf,tnf->fmn", spectra, spectra.conj())
    return f[sel], csm / max(frames, 1)


def wiring_fit(samples: np.ndarray, positions_m: np.ndarray, fs: int,
               cols: list[int] | None = None) -> WiringFit:
    """`samples` (frames, channels) in geometry order; `cols` the microphones to judge (all
    when None), `positions_m` (len(cols), 3) theirs."""
    x = np.asarray(samples, dtype=np.float32)
    cols = list(range(x.shape[1])) if cols is None else list(cols)
    m = len(cols)
    f, csm = _band_csm(x, cols, fs)
    # Equal gain per channel (a quiet or loud microphone is the level checks' business): the
    # cross-spectra of unit-power channels.
    power = np.real(np.einsum("fmm->m", csm)) / len(f)
    gain = 1.0 / (np.sqrt(power) + 1e-30)
    csm = csm * (gain[:, None] * gain[None, :])
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
        power = (np.abs(proj) ** 2).sum(axis=1)
        fit[b] = power.max()
        # Swapping rows i and j of the basis adds d * (e_j - e_i) to the projection, with
        # d = a_i - a_j: |p + d e|^2 = |p|^2 + 2 Re(d conj(p).e) + |d|^2 |e|^2, per direction
        # and pair without the (directions, pairs, subspace) array.
        d, e = a_h[:, ii] - a_h[:, jj], es[jj] - es[ii]
        swapped = (power[:, None] + 2 * np.real(d * (proj.conj() @ e.T))
                   + np.abs(d) ** 2 * (np.abs(e) ** 2).sum(axis=1))
        swaps[b] = swapped.max(axis=0)
        # Reversing microphone k subtracts 2 a_k e_k from it.
        flipped = (power[:, None] - 4 * np.real(a_h * (proj.conj() @ es.T))
                   + 4 * np.abs(a_h) ** 2 * (np.abs(es) ** 2).sum(axis=1))
        flips[b] = flipped.max(axis=0)
    swap_mean, flip_mean = swaps.mean(axis=0), flips.mean(axis=0)
    k, q = int(np.argmax(swap_mean)), int(np.argmax(flip_mean))
    return WiringFit(float(fit.mean()), share, pairs[k], float(swap_mean[k]), q,
                     float(flip_mean[q]))
