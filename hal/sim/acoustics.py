"""Acoustic physics for the twin: levels, A-weighting, air absorption, shaped noise.

Digital full scale: a sine of amplitude 1.0 is 120 dB SPL (a MEMS microphone's acoustic
overload point is about there), so `pascal * PA_TO_FS` is the sample value.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import signal

P_REF_PA = 20e-6
PA_TO_FS = 1.0 / (P_REF_PA * 10 ** (120 / 20) * math.sqrt(2))


def speed_of_sound(temperature_c: float) -> float:
    return 331.3 * math.sqrt(1 + temperature_c / 273.15)


def db_to_pa(level_db: float) -> float:
    """RMS pressure of a level in dB re 20 uPa."""
    return P_REF_PA * 10 ** (level_db / 20)


def a_weight(f: np.ndarray | float) -> np.ndarray:
    """A-weighting as a linear amplitude factor (IEC 61672-1), 1.0 at 1 kHz."""
    f2 = np.asarray(f, dtype=float) ** 2
    ra = (12194.0**2 * f2**2) / ((f2 + 20.6**2) * np.sqrt((f2 + 107.7**2) * (f2 + 737.9**2))
                                 * (f2 + 12194.0**2))
    return ra * 10 ** (2.0 / 20)


def air_absorption_db_per_m(f: np.ndarray | float, temperature_c: float,
                            humidity_pct: float) -> np.ndarray:
    """Atmospheric absorption coefficient (ISO 9613-1:1993, at sea-level pressure)."""
    f = np.asarray(f, dtype=float)
    t = temperature_c + 273.15
    t0, t01 = 293.15, 273.16
    psat = 10 ** (-6.8346 * (t01 / t) ** 1.261 + 4.6151)
    h = humidity_pct * psat
    fro = 24 + 4.04e4 * h * (0.02 + h) / (0.391 + h)
    frn = (t / t0) ** -0.5 * (9 + 280 * h * math.exp(-4.170 * ((t / t0) ** (-1 / 3) - 1)))
    f2 = f * f
    return 8.686 * f2 * (1.84e-11 * (t / t0) ** 0.5 + (t / t0) ** -2.5 * (
        0.01275 * math.exp(-2239.1 / t) / (fro + f2 / fro)
        + 0.1068 * math.exp(-3352.0 / t) / (frn + f2 / frn)))


# IIR shapes for ambient and broadband sources (b, a).
_PINK = ([0.049922035, -0.095993537, 0.050612699, -0.004408786],
         [1.0, -2.494956002, 2.017265875, -0.522189400])


def _shape(spectrum: str, fs: int) -> tuple[np.ndarray, np.ndarray]:
    if spectrum == "white":
        return np.array([1.0]), np.array([1.0])
    if spectrum == "pink":
        return np.array(_PINK[0]), np.array(_PINK[1])
    if spectrum == "brown":
        # Leaky integrator: -6 dB/octave above ~20 Hz.
        pole = math.exp(-2 * math.pi * 20 / fs)
        return np.array([1.0 - pole]), np.array([1.0, -pole])
    if spectrum == "road":
        # Tyre/road noise: a broad hump around 1 kHz on a pink floor.
        b, a = signal.butter(1, [500, 2000], btype="bandpass", fs=fs)
        pb, pa = np.array(_PINK[0]), np.array(_PINK[1])
        return np.convolve(b, pb), np.convolve(a, pa)
    if spectrum == "wing":
        b, a = signal.butter(2, [250, 3000], btype="bandpass", fs=fs)
        return b, a
    raise ValueError(f"noise spectrum '{spectrum}' unknown")


class ShapedNoise:
    """Continuous coloured noise, scaled so its A-weighted RMS is 1 Pa (multiply by the
    wanted pressure). `channels` independent streams."""

    def __init__(self, spectrum: str, fs: int, rng: np.random.Generator, channels: int = 1):
        self.b, self.a = _shape(spectrum, fs)
        self.rng = rng
        self.channels = channels
        freqs = np.linspace(1.0, fs / 2, 8192)
        _, resp = signal.freqz(self.b, self.a, worN=freqs, fs=fs)
        df = freqs[1] - freqs[0]
        power_a = float(np.sum((2.0 / fs) * np.abs(resp) ** 2 * a_weight(freqs) ** 2) * df)
        self.gain = 1.0 / math.sqrt(power_a)
        order = max(len(self.a), len(self.b)) - 1
        self.zi = np.zeros((channels, order))

    def generate(self, n: int) -> np.ndarray:
        """(channels, n) samples in Pa per 1 Pa(A) RMS."""
        white = self.rng.standard_normal((self.channels, n), dtype=np.float32)
        if self.zi.shape[1] == 0:
            return white * self.gain
        out, self.zi = signal.lfilter(self.b, self.a, white, axis=1, zi=self.zi)
        return out * self.gain
