"""Direction-finding cases made as ../shared/data/acoustic/doa-dev's were (its README's recipe),
from a drone clip's first channel, with fresh draws: the drone propagated in free field with air
absorption and a ground reflection to a flat 4x4 grid 3 m above ground; a steady generator tone
(fundamental 90-160 Hz, ten harmonics) 25 m away, 1 m above ground, as loud at the array as the
drone; broadband noise plus wind-like low-frequency noise at the stated SNR; +-1 dB gain spread
and ~1 mm position errors between microphones. With drone=False the same without the drone
(the machine-only cases). Used by the tests, never by the node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal

from hal.sim.acoustics import air_absorption_db_per_m

C = 343.0
ARRAY_HEIGHT_M = 3.0
GROUND_REFLECTION = 0.7  # grass and soil at a few hundred hertz


def grid16() -> np.ndarray:
    """The UMA-16 layout (doa-dev's grid16.toml): x forward, y left; channel order."""
    pitch = 0.042
    xs = [1.5 * pitch, 0.5 * pitch, -0.5 * pitch, -1.5 * pitch]
    return np.array([[x, y, 0.0] for x in xs for y in xs])


@dataclass(frozen=True)
class Case:
    azimuth_deg: float
    elevation_deg: float
    range_m: float
    snr_db: float
    machine_azimuth_deg: float | None
    machine_f0_hz: float = 0.0
    machine_drift_pct: float = 0.0


def _direction(az_deg: float, el_deg: float) -> np.ndarray:
    az, el = math.radians(az_deg), math.radians(el_deg)
    return np.array([math.cos(el) * math.cos(az), -math.cos(el) * math.sin(az), math.sin(el)])


def _propagate(src: np.ndarray, source_xyz: np.ndarray, mics: np.ndarray, fs: int,
               gains: np.ndarray) -> np.ndarray:
    """(mics, n) pressure at mics (z measured from the array) of a point source, with its
    ground image (ground at z = -ARRAY_HEIGHT_M), spreading and air absorption."""
    n = len(src)
    nfft = 2 * n
    spec = np.fft.rfft(src, nfft)
    f = np.fft.rfftfreq(nfft, 1.0 / fs)
    alpha = air_absorption_db_per_m(f, 15.0, 70.0)
    image = source_xyz.copy()
    image[2] = -2.0 * ARRAY_HEIGHT_M - source_xyz[2]
    out = np.zeros((len(mics), nfft // 2 + 1), dtype=complex)
    for pos, coef in ((source_xyz, 1.0), (image, GROUND_REFLECTION)):
        d = np.linalg.norm(mics - pos, axis=1)  # (M,)
        d_ref = float(np.linalg.norm(pos))
        # Delays relative to the array centre's path so the clip starts at once.
        tau = (d - d_ref) / C + (d_ref - float(np.linalg.norm(source_xyz))) / C
        att = coef * 10 ** (-alpha * d_ref / 20.0) / d[:, None]
        out += spec[None, :] * att * np.exp(-2j * np.pi * f[None, :] * tau[:, None])
    x = np.fft.irfft(out, nfft, axis=1)[:, :n]
    return x * gains[:, None]


def generator_tone(f0_hz: float, n: int, fs: int, rng: np.random.Generator,
                   drift_pct: float = 0.0) -> np.ndarray:
    """A generator: ten harmonics of f0, levels falling with a spread, random phases; its
    governor drifting by up to drift_pct over some tens of seconds."""
    t = np.arange(n) / fs
    period = rng.uniform(20.0, 60.0)
    # Phase of the fundamental: the integral of f0 (1 + d sin(2 pi t / period + phi)).
    phi = rng.uniform(0, 2 * np.pi)
    d = drift_pct / 100.0
    cycles = f0_hz * (t - d * period / (2 * np.pi) * (np.cos(2 * np.pi * t / period + phi)
                                                      - np.cos(phi)))
    out = np.zeros(n)
    for k in range(1, 11):
        amp = 10 ** ((-2.0 * (k - 1) + rng.uniform(-4.0, 4.0)) / 20.0)
        out += amp * np.sin(2 * np.pi * k * cycles + rng.uniform(0, 2 * np.pi))
    return out


def make_case(drone_clip: np.ndarray | None, clip_rate: int, case: Case, *, seed: int,
              fs: int = 24000, seconds: float = 6.0) -> np.ndarray:
    """(frames, 16) float32 for one case; drone_clip None: the machine and noise only (the
    noise then keeps the level it would have had with the drone)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    true = grid16() + rng.normal(0.0, 0.001, (16, 3))
    gains = 10 ** (rng.uniform(-1.0, 1.0, 16) / 20.0)
    if drone_clip is not None:
        mono = signal.resample_poly(drone_clip.astype(np.float64), fs, clip_rate)
        start = int(rng.integers(0, max(1, len(mono) - n)))
        src = mono[start:start + n]
    else:
        # The level reference only: a drone-like broadband signal that is never added.
        src = rng.standard_normal(n)
    src = np.pad(src, (0, n - len(src)))
    u = _direction(case.azimuth_deg, case.elevation_deg)
    drone = _propagate(src, u * case.range_m, true, fs, gains)
    p_drone = float(np.mean(drone**2))
    total = drone if drone_clip is not None else np.zeros_like(drone)
    if case.machine_azimuth_deg is not None:
        horizontal = _direction(case.machine_azimuth_deg, 0.0) * 25.0
        horizontal[2] = 1.0 - ARRAY_HEIGHT_M
        tone = generator_tone(case.machine_f0_hz, n, fs, rng, case.machine_drift_pct)
        machine = _propagate(tone, horizontal, true, fs, gains)
        total = total + machine * math.sqrt(p_drone / float(np.mean(machine**2)))
    p_noise = p_drone / 10 ** (case.snr_db / 10.0)
    white = rng.standard_normal((16, n))
    # Wind: brown noise below ~100 Hz, independent at every port, as strong as the broadband.
    wind = signal.lfilter([1.0 - 0.97], [1.0, -0.97], rng.standard_normal((16, n)), axis=1)
    wind *= 1.0 / math.sqrt(float(np.mean(wind**2)))
    noise = (white + wind) * math.sqrt(p_noise / 2.0)
    total = total + noise
    return (total.T / (8.0 * float(np.abs(total).max()))).astype(np.float32)


def random_cases(count: int, seed: int, *, machine_share: float = 0.7,
                 drift_pct: float = 0.0) -> list[Case]:
    """Cases drawn as doa-dev's: azimuth anywhere, elevation 10-45 deg, range 35-120 m, SNR 20
    or 6 dB, a machine in most, at least 20 deg from the drone (drift_pct: its governor's
    drift, none in doa-dev's recipe)."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(count):
        az = float(rng.uniform(0, 360))
        machine = None
        if rng.uniform() < machine_share:
            machine = float((az + rng.uniform(20, 340)) % 360)
        cases.append(Case(azimuth_deg=round(az, 2), elevation_deg=float(rng.uniform(10, 45)),
                          range_m=float(rng.uniform(35, 120)),
                          snr_db=20.0 if i % 2 == 0 else 6.0, machine_azimuth_deg=machine,
                          machine_f0_hz=float(rng.uniform(90, 160)),
                          machine_drift_pct=drift_pct))
    return cases
