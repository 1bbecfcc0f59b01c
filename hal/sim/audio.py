"""The microphone array: every source's sound at every microphone, as the array samples it.

Each source's pressure is computed at the array's reference point (propagation delay, Doppler,
spherical spreading, air absorption), then delayed to each microphone by the true geometry
with a windowed-sinc fractional delay. Ambient noise arrives as a few distant plane waves
(so it is partly coherent across the array, as a real sound field is) plus each microphone's
own self-noise and wind noise at its port.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from hal.sim.acoustics import PA_TO_FS, ShapedNoise, db_to_pa, speed_of_sound
from hal.sim.scenario import Scenario
from hal.sim.sounds import Source, make_machinery_source, make_target_source
from hal.sim.world import World

HALF_TAPS = 16
# MEMS array microphones: about 65 dB SNR re 94 dB SPL, so 29 dB(A) of self-noise.
MIC_SELF_NOISE_DBA = 29.0
AMBIENT_DIRECTIONS = 4

Position = Callable[[float], np.ndarray | None]


_WINDOW = np.kaiser(2 * HALF_TAPS + 1, 8.0)
_WINDOW_AT = np.arange(-HALF_TAPS, HALF_TAPS + 1)
_TAPS_AT = np.arange(2 * HALF_TAPS) - (HALF_TAPS - 1)


def fractional_delay_taps(mu: float) -> np.ndarray:
    """Windowed-sinc taps delaying by (HALF_TAPS - 1 + mu) samples, 0 <= mu < 1."""
    j = _TAPS_AT - mu
    # Sample the window at the fractional positions so it stays centred on the delay.
    return np.sinc(j) * np.interp(j, _WINDOW_AT, _WINDOW)


class _Channelled:
    """A source with its per-microphone delay line."""

    def __init__(self, source: Source | ShapedNoise, position: Position | None,
                 direction: np.ndarray | None, history: int, level_pa: float = 1.0):
        self.source = source
        self.position = position
        self.direction = direction
        self.level_pa = level_pa
        self.history = np.zeros(history)


class ArrayRenderer:
    """Renders blocks of (frames, microphones) float32 PCM for scenario time t0 on."""

    def __init__(self, scenario: Scenario, world: World, mic_node_m: np.ndarray, fs: int,
                 seed: int = 0):
        self.scenario, self.world, self.fs = scenario, world, fs
        self.mics_node = np.asarray(mic_node_m, dtype=float)
        self.mics_rel_enu = world.node_dir_to_enu(self.mics_node)
        self.ref = world.array_enu
        self.c = speed_of_sound(scenario.ambient.temperature_c)
        max_d = math.ceil(float(np.max(np.linalg.norm(self.mics_node, axis=1))) * fs / self.c)
        self.centre = HALF_TAPS + 1 + max_d
        self.hist = self.centre + max_d + HALF_TAPS + 2
        rng = np.random.default_rng([scenario.seed, seed])
        amb = scenario.ambient
        self.sources: list[_Channelled] = []
        for i, body in enumerate(world.bodies):
            src = make_target_source(body.target, fs, rng, amb, body.seed)
            self.sources.append(_Channelled(src, self._body_position(i), None, self.hist))
        for machine in scenario.machinery:
            pos = np.array([*machine.position_m, machine.height_m], dtype=float)
            src = make_machinery_source(machine, fs, rng, amb)
            self.sources.append(_Channelled(src, lambda _t, p=pos: p, None, self.hist))
        # 80 % of the ambient power from distant directions, the rest diffuse (uncorrelated).
        p_amb = db_to_pa(amb.level_dba)
        for k in range(AMBIENT_DIRECTIONS):
            az = math.radians(45 + 360 * k / AMBIENT_DIRECTIONS + rng.uniform(-20, 20))
            el = math.radians(rng.uniform(0, 15))
            u = np.array([math.sin(az) * math.cos(el), math.cos(az) * math.cos(el),
                          math.sin(el)])
            self.sources.append(_Channelled(
                ShapedNoise(amb.spectrum, fs, rng), None, u, self.hist,
                level_pa=p_amb * math.sqrt(0.8 / AMBIENT_DIRECTIONS)))
        m = len(self.mics_node)
        self.diffuse = ShapedNoise(amb.spectrum, fs, rng, channels=m)
        self.diffuse_pa = p_amb * math.sqrt(0.2)
        self.self_noise = ShapedNoise("white", fs, rng, channels=m)
        self.self_noise_pa = db_to_pa(MIC_SELF_NOISE_DBA)
        self.wind = ShapedNoise("brown", fs, rng, channels=m)
        self.gust = np.random.default_rng([scenario.seed, 7]).uniform(0, 2 * math.pi, 2)

    def _body_position(self, index: int) -> Position:
        body = self.world.bodies[index]

        def position(t: float) -> np.ndarray | None:
            st = body.state(self.world.scenario_time(t))
            return None if st is None else st[0]

        return position

    def _wind_pa(self, t: float) -> float:
        wind = self.scenario.wind
        if wind.speed_mps < 0.3:
            return 0.0
        gust = 1 + wind.gust_pct / 100 * 0.5 * (math.sin(0.3 * t + self.gust[0])
                                                 + math.sin(0.071 * t + self.gust[1]))
        # Wind at a foam-covered port: ~40 dB(A) at 5 m/s, rising 30 dB per decade of speed.
        return db_to_pa(40 + 30 * math.log10(max(wind.speed_mps * gust, 0.1) / 5))

    def render(self, t0: float, n: int) -> np.ndarray:
        """Scenario time t0 .. t0 + n/fs at every microphone, float32 full scale 1.0."""
        t = t0 + np.arange(n) / self.fs
        m = len(self.mics_node)
        out = np.zeros((m, n))
        for ch in self.sources:
            x, delays = self._at_reference(ch, t0, t)
            buf = np.concatenate([ch.history, x])
            ch.history = buf[-self.hist:]
            if delays is None:
                continue
            for mic in range(m):
                d = self.centre + delays[mic] * self.fs
                whole = math.floor(d)
                taps = fractional_delay_taps(d - whole)
                start = self.hist - whole - HALF_TAPS
                seg = buf[start:start + n + 2 * HALF_TAPS - 1]
                out[mic] += np.convolve(seg, taps, mode="valid")
        out += self.diffuse.generate(n) * self.diffuse_pa
        out += self.self_noise.generate(n) * self.self_noise_pa
        wind_pa = self._wind_pa(t0)
        if wind_pa:
            out += self.wind.generate(n) * wind_pa
        return (out.T * PA_TO_FS).astype(np.float32)

    def _at_reference(self, ch: _Channelled, t0: float,
                      t: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        n = t.shape[0]
        if ch.direction is not None:
            assert isinstance(ch.source, ShapedNoise)
            x = ch.source.generate(n)[0] * ch.level_pa
            return x, -(self.mics_rel_enu @ ch.direction) / self.c
        assert ch.position is not None and isinstance(ch.source, Source)
        p0, p1 = ch.position(t0), ch.position(t0 + n / self.fs)
        if p0 is None or p1 is None:
            return np.zeros(n), None
        r0 = float(np.linalg.norm(p0 - self.ref))
        r1 = float(np.linalg.norm(p1 - self.ref))
        r = np.maximum(r0 + (r1 - r0) * (t - t0) * self.fs / n, 0.5)
        te = t - r / self.c
        mid = (p0 + p1) / 2
        x = (ch.source.tonal(te, float(r.mean())) + ch.source.broadband(t)) / r
        r_mid = float(np.linalg.norm(mid - self.ref))
        mics = self.ref + self.mics_rel_enu
        delays = (np.linalg.norm(mid - mics, axis=1) - r_mid) / self.c
        return x, delays
