"""A second drone while one is heard (edgenode/detect/second_rotor.py): a faint rotor beside a
loud one is reported on its own bearing, and a lone drone's own rotors are not a second one."""

from __future__ import annotations

import numpy as np

from edgenode.detect.acoustic import AcousticDetector, AcousticResult
from edgenode.detect.acoustic_params import AcousticParams
from edgenode.detect.faint import FaintLines
from edgenode.detect.rank import max3
from edgenode.detect.second_rotor import (
    SecondRotor,
    SecondRotorParams,
    _null_basis,
    _projected_fit,
    _steering,
)
from edgenode.detect.sitenoise import rotor_sound
from hal.acoustic import load_geometry
from tests.detect.test_acoustic import arriving_on_uma16, run

RATE = 48000
SECONDS = 24.0


def _wrap(deg: float) -> float:
    return (deg + 180.0) % 360.0 - 180.0


def _detect(pcm: np.ndarray) -> list[AcousticResult]:
    det = AcousticDetector(RATE, 16, positions_m=load_geometry("uma16").positions_m,
                           params=AcousticParams(second_drone=True))
    return run(det, pcm.astype(np.float32))


def _long_bearings(results: list[AcousticResult]) -> list[float]:
    """Bearings taken over a long average (the faint and second-rotor paths): span_s > 0."""
    return [b.azimuth_deg for r in results for b in r.bearings if b.span_s > 0]


def test_a_faint_rotor_beside_a_heard_one_is_reported_on_its_own_bearing() -> None:
    rng = np.random.default_rng(3)
    loud = arriving_on_uma16(rotor_sound(SECONDS, RATE, f0_hz=180.0, seed=2), RATE, 0.0)
    faint = arriving_on_uma16(rotor_sound(SECONDS, RATE, f0_hz=210.0, seed=5), RATE, 90.0)
    pcm = 0.3 * loud + 0.05 * faint + 0.5 * rng.standard_normal(loud.shape)
    results = _detect(pcm)
    # The loud rotor is heard in the blocks, on its bearing ...
    blocks = [b.azimuth_deg for r in results for b in r.bearings if b.span_s == 0]
    assert len(blocks) > 100
    assert abs(_wrap(float(np.median([_wrap(a) for a in blocks])))) < 5.0
    # ... and the faint one, which no block hears beside it, on its own.
    second = _long_bearings(results)
    assert len(second) >= 3, second
    # Its bearings scatter by several degrees (17 of them at 86-101 deg here).
    assert abs(_wrap(float(np.median(second)) - 90.0)) < 5.0, second
    assert all(abs(_wrap(a - 90.0)) < 15.0 for a in second), second


def test_one_drone_with_its_rotors_spread_gives_no_second_bearing() -> None:
    """Four rotors 2 % apart in speed, each wandering on its own: their lines beside the
    heard comb's make combs of their own in the long average, from the heard direction."""
    rng = np.random.default_rng(3)
    mono = sum(rotor_sound(SECONDS, RATE, f0_hz=180.0 * (1.0 + s), wander=0.02, seed=10 + i)
               for i, s in enumerate(np.linspace(-0.02, 0.02, 4))) / 2.0
    pcm = 0.3 * arriving_on_uma16(mono, RATE, 30.0) + 0.5 * rng.standard_normal((len(mono), 16))
    results = _detect(pcm)
    assert sum(r.drone for r in results) > 0.5 * len(results)
    assert _long_bearings(results) == []


def test_the_nulled_fit_equals_the_projected_wavefronts_fit() -> None:
    """_projected_fit skips forming P a (v lies in P's range, |P a|^2 = |a|^2 - |q^H a|^2):
    the same numbers as projecting every wavefront."""
    rng = np.random.default_rng(1)
    positions = load_geometry("uma16").positions_m
    freqs = np.array([150.0, 400.0, 900.0, 1700.0])
    q, rest = _null_basis(positions, freqs, 40.0, SecondRotorParams())
    v = rest @ (rng.standard_normal((4, 12, 1)) + 1j * rng.standard_normal((4, 12, 1)))
    v = v[:, :, 0] / np.linalg.norm(v[:, :, 0], axis=1, keepdims=True)
    a = _steering(positions, freqs, np.arange(0.0, 360.0, 7.0), 10.0)  # (B, D, M)
    pa = a - (a @ q.conj()) @ q.transpose(0, 2, 1)
    explicit = (np.abs(pa.conj() @ v[:, :, None])[..., 0] ** 2
                / np.einsum("bdm,bdm->bd", pa, pa.conj()).real)
    basis = np.concatenate([v[:, :, None], q], axis=2).conj()
    fast = _projected_fit(a, np.einsum("bdm,bdm->bd", a, a.conj()).real, basis)
    assert np.allclose(fast, explicit, rtol=1e-6, atol=1e-9)


def test_the_away_beams_in_turns_are_every_away_beam() -> None:
    """The second path forms the away beams in parts, one per hop: together the parts are
    the beams at least away_beams from the best one, each once."""
    positions = load_geometry("uma16").positions_m
    det = AcousticDetector(RATE, 16, positions_m=positions)
    bank = det._beams
    assert bank is not None
    rng = np.random.default_rng(2)
    band = (rng.standard_normal((16, len(det.freqs)))
            + 1j * rng.standard_normal((16, len(det.freqs)))).astype(np.complex64)
    bank.best = 10
    away = [1, 2, 3, 4, 5, 6, 7]  # 3 or more beams from beam 10 of 12
    power = [np.abs((band * bank.steer_beam[b]).sum(axis=0)) ** 2 for b in away]
    assert np.allclose(bank.away_power(band, 3), np.mean(power, axis=0), rtol=1e-4)
    for part in (0, 1):
        got = bank.away_power(band, 3, 100, part, 2)
        assert np.allclose(got, np.mean(power[part::2], axis=0)[:100], rtol=1e-4)


def test_a_faint_average_judged_in_its_quiet_half_keeps_its_unit() -> None:
    """The second path's average stops at top_hz; its spread is measured on its upper half,
    where few lines are: a busy lower half (two rotors' lines and leakage) does not inflate
    the judge's unit, and a line there still counts."""
    rng = np.random.default_rng(4)
    bins = 300
    busy = np.ones(bins)
    busy[:200] = 10 ** (rng.normal(0.0, 0.3, 200))  # +-3 dB of structure below
    busy[:200:3] *= 2.0  # and lines
    busy[101] = 1.25 * max(busy[100], busy[102])  # the one to find, 1 dB over its neighbours
    judged = []
    for spread_from in (0, 200):
        lines = FaintLines(bins, 0.045, 23, spread_from=spread_from)
        last = None
        for _ in range(400):
            out = lines.update(busy * rng.exponential(1.0, bins) ** 0.1, np.zeros(bins, bool))
            last = out if out is not None else last
        assert last is not None
        judged.append(last)
    whole, quiet = judged
    assert quiet[101] > 3.0 * whole[101] > 0.0  # z capped at z_cap in the quiet unit


def _second_rotor() -> SecondRotor:
    det = AcousticDetector(RATE, 16, positions_m=load_geometry("uma16").positions_m,
                           params=AcousticParams(second_drone=True))
    assert det._second is not None
    return det._second


def test_a_comb_read_an_octave_low_takes_its_bearing_from_the_comb_an_octave_up() -> None:
    """The judge takes the lowest f0 that explains nearly as much: 110 Hz for a 220 Hz
    rotor, whose odd harmonics then take in the heard rotor's lines (here one at 330 Hz).
    The bearing's bins are those of the 220 Hz comb, which explains nearly as much alone."""
    second = _second_rotor()
    second._heard_f0 = 180.0
    evidence = np.zeros(len(second._evidence) - 1)
    for hz in [220.0 * k for k in range(1, 9)] + [330.0]:
        evidence[round(hz / second._df) - second._lo] = 5.0
    second._evidence[:-1] = max3(evidence)  # as update() spreads it
    second._judge(second._evidence[:-1])
    assert second._run and abs(second._run[-1] - 110.0) < 3.0  # read an octave low
    assert all(abs(b - 330.0 / second._df) > 1.0 for b in second.bins), second.bins
    assert len(second.bins) >= 6  # the 220 Hz comb's own lines


def test_a_bearing_after_a_rejection_needs_no_second_one_to_agree_with() -> None:
    """After a rejection the judge skips one judgement; the next one found agrees with the
    last found before the rejection: it is given at once (otherwise the gap outlasts a
    tentative track's wait, span / 2, and the track starts over)."""
    second = _second_rotor()
    second.f0, second.bins, second.heard_azimuth = 220.0, [40, 60, 80, 100], 0.0
    outcomes = iter([(90.0, 3.0), (91.0, 3.0), None, (90.5, 3.0)])
    second._nulled_wavefront = lambda cross, bins, hops: next(outcomes)  # type: ignore
    second._own_fit = lambda u, bins, azimuth: 0.9 if azimuth != 0.0 else 0.1  # type: ignore
    second._best_away_fit = lambda u, bins: 0.9  # type: ignore
    snaps = np.ones((100, 16, 180), dtype=np.complex64)
    given = []
    for judgement in range(1, 6):
        second._judgements = judgement
        given.append(second.bearing(snaps, list(range(100))))
    assert [g is not None for g in given] == [False, True, False, False, True]


def test_the_same_comb_rejected_again_is_looked_at_less_often() -> None:
    """A lone wandering rotor leaves its own comb in the away average that the judge cannot
    exclude: each look at it (cross-spectra, eigenvectors) is rejected. Looked at after 2,
    3, 5, 9 judgements, not at every other one; another comb is looked at again at once."""
    second = _second_rotor()
    second.f0, second.bins, second.heard_azimuth = 198.0, [40, 60, 80, 100], 140.0
    looks = []
    second._best_away_fit = lambda u, bins: looks.append(second._judgements) or 0.1  # type: ignore
    snaps = np.ones((100, 16, 180), dtype=np.complex64)
    for judgement in range(1, 21):
        second._judgements = judgement
        assert second.bearing(snaps, list(range(100))) is None
    assert looks == [1, 3, 6, 11, 20]
    second.f0 = 150.0  # another comb
    second._judgements = 21
    second.bearing(snaps, list(range(100)))
    assert looks[-1] == 20  # waits out the last wait ...
    second._judgements = 29
    second.bearing(snaps, list(range(100)))
    second._judgements = 31
    second.bearing(snaps, list(range(100)))
    assert looks[-2:] == [29, 31]  # ... then starts over at 2
