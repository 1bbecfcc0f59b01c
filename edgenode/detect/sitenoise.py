"""Synthetic site noise and rotor sound for tests and benchmarks (pure numpy, chunked).

Site: mains hum (50 Hz and harmonics, a transformer's 100 Hz strongest), a pump line at
120 Hz with harmonics, wind (low-passed noise whose level gusts), and a broadband floor.
The machine lines drift as real ones do (the grid's frequency by a few hundredths of a hertz,
a pump by a fraction of a per mille), which is still far steadier than a rotor.

Rotor: a blade-pass comb whose fundamental wanders (the flight controller trimming thrust).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class _Comb:
    """A harmonic series on one drifting fundamental, phase-continuous across chunks."""

    def __init__(self, f0_hz: float, amps: np.ndarray, rng: np.random.Generator) -> None:
        self.f0 = f0_hz
        self.amps = np.asarray(amps, dtype=np.float32)
        self.offsets = rng.uniform(0, 2 * np.pi, len(self.amps))
        self.phase = 0.0

    def render(self, n: int, rate: int, scale: np.ndarray) -> np.ndarray:
        """scale: per-sample frequency factor (drift) of the fundamental."""
        phase = self.phase + np.cumsum(2 * np.pi * self.f0 * scale / rate)
        self.phase = float(phase[-1] % (2 * np.pi))
        out = np.zeros(n, dtype=np.float32)
        for k, (amp, offset) in enumerate(zip(self.amps, self.offsets, strict=True), start=1):
            # Wrap in float64, then a float32 sine: fast, and exact enough for a test signal.
            out += amp * np.sin(((k * phase + offset) % (2 * np.pi)).astype(np.float32))
        return out


def site_noise(seconds: float, rate: int, *, chunk_s: float = 10.0, seed: int = 0,
               channels: int = 1) -> Iterator[np.ndarray]:
    """Yield float32 (frames, channels) chunks of site noise, total `seconds` long."""
    rng = np.random.default_rng(seed)
    mains = _Comb(50.0, np.array([0.3, 1.0, 0.5, 0.3, 0.2, 0.15, 0.1, 0.08]) * 0.02, rng)
    pump = _Comb(120.0, np.array([1.0, 0.7, 0.5, 0.35, 0.25, 0.15]) * 0.015, rng)
    wind_state = np.zeros(2)
    gust = 0.5
    total = int(seconds * rate)
    done = 0
    while done < total:
        n = min(int(chunk_s * rate), total - done)
        t = (done + np.arange(n)) / rate
        grid = 1.0 + 0.0004 * np.sin(2 * np.pi * t / 97.0)  # +-0.02 Hz at 50 Hz
        load = 1.0 + 0.0005 * np.sin(2 * np.pi * t / 41.0 + 1.0)
        tonal = mains.render(n, rate, grid) + pump.render(n, rate, load)
        # Wind: noise through two one-pole low-passes (~40 Hz), level gusting over seconds.
        white = rng.standard_normal(n)
        a = np.exp(-2 * np.pi * 40.0 / rate)
        wind = _one_pole(_one_pole(white, a, wind_state, 0), a, wind_state, 1)
        steps = max(2, int(n / rate * 2) + 1)
        targets = np.clip(gust + rng.normal(0, 0.35, steps).cumsum() * 0.3, 0.1, 1.5)
        envelope = np.interp(np.arange(n), np.linspace(0, n, steps), targets)
        gust = float(targets[-1])
        wind *= envelope * 0.05 / max(np.std(wind), 1e-9) * 3.0
        floor = rng.standard_normal((n, channels), dtype=np.float32) * np.float32(0.002)
        out = (tonal + wind.astype(np.float32))[:, None] + floor
        done += n
        yield out.astype(np.float32)


def _one_pole(x: np.ndarray, a: float, state: np.ndarray, i: int) -> np.ndarray:
    from scipy.signal import lfilter

    y, _ = lfilter([1 - a], [1, -a], x, zi=[state[i] * a])
    state[i] = y[-1]
    return y


def rotor_sound(seconds: float, rate: int, *, f0_hz: float = 180.0, harmonics: int = 12,
                wander: float = 0.02, seed: int = 1) -> np.ndarray:
    """Mono float64 rotor comb: harmonics falling 2 dB each, f0 wandering by `wander` (rms)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * rate)
    # Wander: smoothed random walk with a ~0.3 s correlation, a few per cent in size.
    steps = int(seconds * 20) + 8
    walk = rng.standard_normal(steps)
    walk = np.convolve(walk, np.ones(6) / 6, mode="same")
    walk = walk / max(np.std(walk), 1e-9) * wander
    f = f0_hz * (1.0 + np.interp(np.arange(n), np.linspace(0, n, steps), walk))
    phase = 2 * np.pi * np.cumsum(f) / rate
    k = np.arange(1, harmonics + 1)
    amps = 10 ** (-2.0 * (k - 1) / 20)
    out = np.zeros(n)
    for kk, amp in zip(k, amps, strict=True):
        if kk * f0_hz * 1.05 < rate / 2:
            out += amp * np.sin(kk * phase + rng.uniform(0, 2 * np.pi))
    return out
