"""What each kind of source sounds like at 1 m, as a function of emission time.

Tonal parts are evaluated at the emission time of every sample, so propagation delay and
Doppler come out of the geometry; broadband parts are coloured noise (their delay is
invisible). All outputs are pressure in Pa at 1 m from the source.
"""

from __future__ import annotations

import math

import numpy as np

from hal.sim.acoustics import ShapedNoise, a_weight, air_absorption_db_per_m, db_to_pa
from hal.sim.scenario import Ambient, Machinery, Target


class Wander:
    """A slowly wandering factor around 1 (rotor speed as a flight controller works), with
    its exact integral so the phase of a harmonic stays continuous."""

    def __init__(self, pct: float, rng: np.random.Generator,
                 nu_hz: tuple[float, float] = (0.05, 0.6)):
        self.w = pct / 100.0
        self.nu = rng.uniform(nu_hz[0], nu_hz[1], 3)
        c = rng.uniform(0.2, 1.0, 3)
        self.c = c / c.sum()
        self.phi = rng.uniform(0, 2 * math.pi, 3)

    def cycles(self, f0: float, t: np.ndarray) -> np.ndarray:
        """Integral of f0 * (1 + w * sum c sin(2 pi nu t + phi)) dt: cycles since t = 0."""
        terms = self.c[:, None] * np.cos(2 * math.pi * self.nu[:, None] * t + self.phi[:, None]) \
            / (2 * math.pi * self.nu[:, None])
        return f0 * (t - self.w * terms.sum(axis=0))


class Source:
    """A point source: tonal part at emission times, broadband part as noise."""

    def __init__(self, fs: int, rng: np.random.Generator, ambient: Ambient):
        self.fs = fs
        self.rng = rng
        self.ambient = ambient
        self.noise: ShapedNoise | None = None
        self.noise_pa = 0.0

    def tonal(self, te: np.ndarray, distance_m: float) -> np.ndarray:
        return np.zeros_like(te)

    def broadband(self, t: np.ndarray) -> np.ndarray:
        if self.noise is None or self.noise_pa <= 0:
            return np.zeros_like(t)
        return self.noise.generate(t.shape[0])[0] * self.noise_pa

    def _absorb(self, freqs: np.ndarray, distance_m: float) -> np.ndarray:
        alpha = air_absorption_db_per_m(freqs, self.ambient.temperature_c,
                                        self.ambient.humidity_pct)
        return 10 ** (-alpha * max(distance_m - 1.0, 0.0) / 20)


class HarmonicSource(Source):
    """Rotors (blade-pass harmonics with wandering speed) or machinery (steady lines)."""

    def __init__(self, fs: int, rng: np.random.Generator, ambient: Ambient, *,
                 fundamentals_hz: list[float], harmonics: int, slope_db: float,
                 level_dba: float, tonal_share: float, wander_pct: float,
                 broadband: str | None, levels_db: list[float] | None = None,
                 wander_hz: tuple[float, float] = (0.05, 0.6)):
        super().__init__(fs, rng, ambient)
        self.f0 = fundamentals_hz
        self.k = np.arange(1, harmonics + 1)
        rel = (10 ** (np.asarray(levels_db, dtype=float) / 20) if levels_db is not None
               else 10 ** (slope_db * (self.k - 1) / 20))
        p_a = db_to_pa(level_dba)
        tonal_power_a = sum(float(np.sum(rel**2 / 2 * a_weight(self.k * f) ** 2))
                            for f in self.f0)
        self.amp = rel * p_a * math.sqrt(tonal_share / tonal_power_a)
        self.wander = [Wander(wander_pct, rng, wander_hz) for _ in self.f0]
        self.phase0 = rng.uniform(0, 2 * math.pi, (len(self.f0), harmonics))
        if broadband:
            self.noise = ShapedNoise(broadband, fs, rng)
            self.noise_pa = p_a * math.sqrt(1 - tonal_share)

    def tonal(self, te: np.ndarray, distance_m: float) -> np.ndarray:
        out = np.zeros_like(te)
        nyquist = self.fs / 2
        for f0, wander, phase0 in zip(self.f0, self.wander, self.phase0, strict=True):
            cycles = wander.cycles(f0, te)
            keep = self.k * f0 * 1.1 < nyquist
            amps = self.amp * self._absorb(self.k * f0, distance_m)
            base = 2 * math.pi * cycles
            for k, a, p in zip(self.k[keep], amps[keep], phase0[keep], strict=True):
                out += a * np.sin(k * base + p)
        return out


class BirdSource(Source):
    """Calls (short frequency-swept chirps at random times) and wing-beat swishes."""

    CALL_S = 0.15

    def __init__(self, fs: int, rng: np.random.Generator, ambient: Ambient, target: Target,
                 seed: int):
        super().__init__(fs, rng, ambient)
        self.target = target
        self.seed = seed
        p_a = db_to_pa(target.level)
        self.call_amp = p_a * math.sqrt(2) / float(a_weight(target.call_hz))
        self.noise = ShapedNoise("wing", fs, rng)
        self.noise_pa = p_a * 10 ** (-18 / 20)
        self.flap_phase = rng.uniform(0, 2 * math.pi)

    def _calls(self, slot: int) -> np.ndarray:
        r = np.random.default_rng([self.seed, slot])
        n = r.poisson(self.target.call_rate_per_s)
        return slot + np.sort(r.uniform(0, 1, n))

    def tonal(self, te: np.ndarray, distance_m: float) -> np.ndarray:
        out = np.zeros_like(te)
        if self.target.call_rate_per_s <= 0:
            return out
        first, last = math.floor(te[0] - self.CALL_S) - 1, math.floor(te[-1]) + 1
        fc = self.target.call_hz
        absorb = self._absorb(np.array([fc, 2 * fc]), distance_m)
        for slot in range(first, last + 1):
            for tc in self._calls(slot):
                tau = te - tc
                on = (tau >= 0) & (tau < self.CALL_S)
                if not on.any():
                    continue
                x = tau[on] / self.CALL_S
                env = np.sin(math.pi * x) ** 2
                # Frequency rising by 30 % over the call: integrate for the phase.
                ph = 2 * math.pi * fc * (tau[on] + 0.15 * self.CALL_S * x * x)
                out[on] += self.call_amp * env * (absorb[0] * np.sin(ph)
                                                  + 0.3 * absorb[1] * np.sin(2 * ph))
        return out

    def broadband(self, t: np.ndarray) -> np.ndarray:
        swish = super().broadband(t)
        flap = 0.5 * (1 + np.cos(2 * math.pi * self.target.wingbeat_hz * t + self.flap_phase))
        return swish * flap**2 * 2


def make_target_source(target: Target, fs: int, rng: np.random.Generator, ambient: Ambient,
                       seed: int) -> Source:
    if target.kind == "bird":
        return BirdSource(fs, rng, ambient, target, seed)
    if target.kind == "car":
        # Tyre/road noise dominates a passing car; engine firing lines below it.
        return HarmonicSource(fs, rng, ambient, fundamentals_hz=[45.0], harmonics=6,
                              slope_db=-4.0, level_dba=target.level, tonal_share=0.15,
                              wander_pct=8.0, broadband="road")
    # Propellers: blade-pass frequency = rpm / 60 * blades, one series per rotor, each rotor
    # at its own slightly different speed.
    bpf = target.rpm / 60.0 * target.blades
    spread = np.linspace(-0.02, 0.02, target.rotors) if target.rotors > 1 else np.zeros(1)
    fundamentals = [float(bpf * (1 + s)) for s in spread]
    return HarmonicSource(fs, rng, ambient, fundamentals_hz=fundamentals, harmonics=12,
                          slope_db=-2.5, level_dba=target.level, tonal_share=0.8,
                          wander_pct=target.rpm_wander_pct, broadband="pink")


def make_machinery_source(machine: Machinery, fs: int, rng: np.random.Generator,
                          ambient: Ambient) -> Source:
    # The drift: three slow sines around the drift period, drift_pct at their peak.
    nu = 1.0 / machine.drift_period_s
    levels = machine.relative_levels_db
    return HarmonicSource(fs, rng, ambient, fundamentals_hz=[machine.fundamental_hz],
                          harmonics=len(levels), slope_db=0.0,
                          level_dba=machine.source_level_dba_1m, tonal_share=0.9,
                          wander_pct=machine.drift_pct, broadband="brown", levels_db=levels,
                          wander_hz=(0.5 * nu, 2.0 * nu))
