"""Direction of arrival on synthetic array recordings with true fractional delays."""

from __future__ import annotations

import numpy as np
import pytest

from edgenode.detect.acoustic import AcousticDetector
from edgenode.detect.doa import SPEED_OF_SOUND_MPS, DoaEstimator, azimuth_of, unit_vectors
from edgenode.detect.sitenoise import rotor_sound
from hal.acoustic import load_geometry

RATE = 48000


def square4() -> np.ndarray:
    """A 4-mic square, 60 mm side, in the horizontal plane."""
    h = 0.03
    return np.array([[h, h, 0.0], [h, -h, 0.0], [-h, -h, 0.0], [-h, h, 0.0]])


def tetra() -> np.ndarray:
    """A non-planar array: a square with one microphone raised, as on a mast tripod."""
    return np.array([[0.05, 0.05, 0.0], [0.05, -0.05, 0.0], [-0.05, -0.05, 0.0],
                     [-0.05, 0.05, 0.0], [0.0, 0.0, 0.08]])


def plane_wave(signal: np.ndarray, positions: np.ndarray, azimuth_deg: float,
               elevation_deg: float) -> np.ndarray:
    """(frames, mics): each mic hears the wave earlier by r.u/c, applied as a frequency-domain
    phase shift, so delays are exact fractions of a sample."""
    u = unit_vectors(np.array(azimuth_deg), np.array(elevation_deg))
    lead_s = positions @ u / SPEED_OF_SOUND_MPS
    spec = np.fft.rfft(signal)
    f = np.fft.rfftfreq(len(signal), 1.0 / RATE)
    shifted = spec[None, :] * np.exp(2j * np.pi * f[None, :] * lead_s[:, None])
    return np.fft.irfft(shifted, n=len(signal)).T


def noisy(clean: np.ndarray, snr_db: float, f0_hz: float, seed: int) -> np.ndarray:
    """Add independent white noise per mic so that the SNR within the harmonic bands (+-1 bin
    of 11 Hz around each of the first harmonics) is snr_db."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(clean.shape)
    f = np.fft.rfftfreq(len(clean), 1.0 / RATE)
    band = np.zeros(len(f), dtype=bool)
    for k in range(1, 13):
        band |= np.abs(f - k * f0_hz) < 0.03 * k * f0_hz + 11.0
    ps = (np.abs(np.fft.rfft(clean[:, 0]))[band] ** 2).sum()
    pn = (np.abs(np.fft.rfft(noise[:, 0]))[band] ** 2).sum()
    return clean + noise * np.sqrt(ps / pn / 10 ** (snr_db / 10))


def bearings_through_detector(positions: np.ndarray, azimuth_deg: float, *,
                              elevation_deg: float = 0.0, heading_deg: float = 0.0,
                              snr_db: float = 12.0, seed: int = 0) -> list:
    source = rotor_sound(4.0, RATE, f0_hz=170.0, wander=0.02, seed=seed)
    pcm = noisy(plane_wave(source, positions, azimuth_deg, elevation_deg), snr_db, 170.0, seed)
    det = AcousticDetector(RATE, len(positions), positions_m=positions, heading_deg=heading_deg)
    results = []
    for start in range(0, len(pcm), 1024):
        results += det.process(pcm[start:start + 1024].astype(np.float32), start / RATE)
    return [b for r in results for b in r.bearings]


def angle_error(a: float, b: float) -> float:
    return (a - b + 180.0) % 360.0 - 180.0


def test_azimuth_is_clockwise_from_x_with_y_to_the_left() -> None:
    assert azimuth_of(np.array([1.0, 0.0, 0.0])) == pytest.approx(0.0)
    assert azimuth_of(np.array([0.0, -1.0, 0.0])) == pytest.approx(90.0)  # right
    assert azimuth_of(np.array([0.0, 1.0, 0.0])) == pytest.approx(270.0)  # left
    assert azimuth_of(unit_vectors(np.array(123.0), np.array(10.0))) == pytest.approx(123.0)


@pytest.mark.parametrize("true_az", [0.0, 37.0, 90.0, 161.0, 222.5, 270.0, 318.0])
def test_uma16_bearing_error_rms_within_3_degrees_at_12_db(true_az: float) -> None:
    positions = load_geometry("uma16").positions_m
    bearings = bearings_through_detector(positions, true_az, elevation_deg=15.0, seed=7)
    assert len(bearings) >= 10, "the drone was not detected, so no bearings"
    errors = np.array([angle_error(b.azimuth_deg, true_az) for b in bearings])
    assert np.sqrt(np.mean(errors**2)) <= 3.0
    assert all(b.elevation_deg is None for b in bearings), "a flat array has no elevation sign"
    assert all(0 < b.error_deg < 10 for b in bearings)


def test_true_bearing_adds_the_mast_heading() -> None:
    positions = load_geometry("uma16").positions_m
    bearings = bearings_through_detector(positions, 300.0, heading_deg=75.0, seed=3)
    assert bearings
    errors = [angle_error(b.azimuth_deg, (75.0 + 300.0) % 360.0) for b in bearings]
    assert np.sqrt(np.mean(np.square(errors))) <= 3.0


@pytest.mark.parametrize("true_az", [20.0, 135.0, 250.0])
def test_four_mic_square_finds_the_bearing_less_sharply(true_az: float) -> None:
    """A 60 mm square has a third of the UMA-16's aperture: wider beams, and it says so."""
    bearings = bearings_through_detector(square4(), true_az, snr_db=15.0, seed=11)
    assert len(bearings) >= 10
    errors = np.array([angle_error(b.azimuth_deg, true_az) for b in bearings])
    assert np.sqrt(np.mean(errors**2)) <= 8.0
    wide = np.median([b.error_deg for b in bearings])
    uma = bearings_through_detector(load_geometry("uma16").positions_m, true_az, snr_db=15.0,
                                    seed=11)
    assert wide > np.median([b.error_deg for b in uma])


def test_non_planar_array_reports_elevation_with_its_sign() -> None:
    positions = tetra()
    n = 8192
    source = rotor_sound(n / RATE, RATE, f0_hz=400.0, wander=0.0, harmonics=8)
    est = DoaEstimator(positions, RATE, n)
    for el in (25.0, -20.0):
        spec = np.fft.rfft(plane_wave(source, positions, 60.0, el) * np.hanning(n)[:, None],
                           axis=0)
        bins = np.rint(400.0 * np.arange(1, 9) / (RATE / n)).astype(int)
        found = est.estimate(spec, bins)
        assert found is not None and found.elevation_deg is not None
        assert abs(angle_error(found.azimuth_deg, 60.0)) < 3.0
        assert found.elevation_deg == pytest.approx(el, abs=4.0)


def test_phase_of_noise_alone_gives_a_wide_uncertainty() -> None:
    positions = load_geometry("uma16").positions_m
    rng = np.random.default_rng(0)
    spec = rng.standard_normal((2049, 16)) + 1j * rng.standard_normal((2049, 16))
    est = DoaEstimator(positions, RATE, 4096).estimate(spec, np.arange(20, 200, 15))
    assert est is not None and est.error_deg > 5.0


def test_leaving_out_a_bin_moves_one_source_little_and_two_mixed_far() -> None:
    """Six harmonics from one direction, then two of them replaced by another source's lines
    60 degrees away (two quads whose combs share lines): the bearing then depends on which
    bins are in, and spread_deg says so."""
    positions = load_geometry("uma16").positions_m
    n = 4096
    df = RATE / n
    here = rotor_sound(n / RATE, RATE, f0_hz=400.0, wander=0.0, harmonics=6)
    there = rotor_sound(n / RATE, RATE, f0_hz=500.0, wander=0.0, harmonics=6, seed=2)
    window = np.hanning(n)[:, None]
    est = DoaEstimator(positions, RATE, n)
    one = np.fft.rfft(plane_wave(here, positions, 30.0, 0.0) * window, axis=0)
    bins = np.rint(400.0 * np.arange(1, 7) / df).astype(int)
    alone = est.estimate(one, bins, leave_one_out=True)
    assert alone is not None and abs(angle_error(alone.azimuth_deg, 30.0)) < 2.0
    assert alone.spread_deg < 3.0
    mixed = one + np.fft.rfft(plane_wave(there, positions, 90.0, 0.0) * window, axis=0)
    theirs = np.rint(500.0 * np.array([4, 5]) / df).astype(int)  # 2000 and 2500 Hz
    both = est.estimate(mixed, np.concatenate([bins[:4], theirs]), leave_one_out=True)
    assert both is not None and both.spread_deg > 10.0
    assert est.estimate(one, bins).spread_deg == 0.0, "computed only when asked"
