"""Acoustic drone detector: rotor harmonics found, machinery, wind and helicopters refused,
level and block size irrelevant, real propeller recordings followed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgenode.detect.acoustic import AcousticDetector, AcousticResult
from edgenode.detect.doa import SPEED_OF_SOUND_MPS, unit_vectors
from edgenode.detect.sitenoise import rotor_sound, site_noise
from hal.acoustic import load_geometry
from hal.ports.audio.wav import read_wav


def run(det: AcousticDetector, pcm: np.ndarray, block: int = 4096) -> list[AcousticResult]:
    rate = det.rate
    out: list[AcousticResult] = []
    for start in range(0, len(pcm), block):
        out += det.process(pcm[start:start + block], start / rate)
    return out


def site_with_rotor(rate: int, seconds: float, rotor_amp: float, *, f0_hz: float = 170.0,
                    seed: int = 4) -> np.ndarray:
    noise = np.concatenate(list(site_noise(seconds, rate, seed=seed)))[:, 0]
    rotor = rotor_sound(seconds, rate, f0_hz=f0_hz, seed=seed) * rotor_amp
    return (noise + rotor[: len(noise)]).astype(np.float32)


def test_ten_minutes_of_site_noise_raise_no_alarm() -> None:
    rate = 16000
    det = AcousticDetector(rate, 1)
    t = 0.0
    alarms = blocks = 0
    for chunk in site_noise(600.0, rate, chunk_s=20.0, seed=1):
        results = det.process(chunk, t)
        t += len(chunk) / rate
        alarms += sum(r.drone for r in results)
        blocks += len(results)
    assert blocks > 12000
    assert alarms == 0


def test_wandering_rotor_in_site_noise_is_detected_with_its_fundamental() -> None:
    rate = 44100
    results = run(AcousticDetector(rate, 1), site_with_rotor(rate, 12.0, 0.01))
    late = [r for r in results if r.t > 3.0]
    assert sum(r.drone for r in late) > 0.7 * len(late)
    f0 = np.median([r.f0_hz for r in late if r.drone and r.f0_hz])
    assert f0 == pytest.approx(170.0, rel=0.05)


def test_the_same_sound_12_db_quieter_or_louder_decides_the_same() -> None:
    rate = 44100
    mix = site_with_rotor(rate, 8.0, 0.004)
    decisions = []
    for gain_db in (-12.0, 0.0, 12.0):
        results = run(AcousticDetector(rate, 1), mix * np.float32(10 ** (gain_db / 20)))
        decisions.append([r.drone for r in results])
    assert any(decisions[1])
    assert decisions[0] == decisions[1] == decisions[2]


def test_noise_getting_20_db_louder_raises_no_alarm() -> None:
    """CFAR: the threshold rides on the floor, so a louder site is not a drone."""
    rate = 22050
    rng = np.random.default_rng(5)
    quiet = rng.standard_normal(rate * 6) * 0.001
    loud = np.convolve(rng.standard_normal(rate * 6), np.ones(8) / 8, mode="same") * 0.03
    results = run(AcousticDetector(rate, 1), np.concatenate([quiet, loud]).astype(np.float32))
    assert not any(r.drone for r in results)


def test_helicopter_main_rotor_comb_is_not_a_drone() -> None:
    """A main rotor's blade-pass (here 18 Hz, slap-rich) plus a tail rotor comb at 95 Hz,
    both Doppler-sliding as it flies past: harmonic, moving, but no drone."""
    rate = 22050
    seconds = 10.0
    n = int(seconds * rate)
    t = np.arange(n) / rate
    doppler = 1.04 - 0.08 * t / seconds  # approaching, then receding
    phase = np.cumsum(doppler) / rate
    main = sum(np.sin(2 * np.pi * 18.0 * k * phase) / k**0.5 for k in range(1, 30))
    tail = sum(np.sin(2 * np.pi * 95.0 * k * phase) * 0.5 / k for k in range(1, 8))
    rng = np.random.default_rng(2)
    pcm = (0.02 * (main + tail) + 0.002 * rng.standard_normal(n)).astype(np.float32)
    results = run(AcousticDetector(rate, 1), pcm)
    assert not any(r.drone for r in results)


@pytest.mark.parametrize("rate", [16000, 48000, 96000])
def test_any_sample_rate_from_16_to_96_khz(rate: int) -> None:
    results = run(AcousticDetector(rate, 1), site_with_rotor(rate, 6.0, 0.01, f0_hz=230.0))
    hits = [r for r in results if r.drone]
    assert len(hits) > 0.4 * len(results)
    assert np.median([r.f0_hz for r in hits]) == pytest.approx(230.0, rel=0.05)


def test_block_size_of_the_audio_port_does_not_matter() -> None:
    rate = 16000
    mix = site_with_rotor(rate, 5.0, 0.01)
    runs = [run(AcousticDetector(rate, 1), mix, block) for block in (256, 4096, 10007)]
    assert runs[0] == runs[1] == runs[2]
    assert runs[0][1].t - runs[0][0].t == pytest.approx(AcousticDetector(rate, 1).hop_s)


def test_multichannel_input_is_combined() -> None:
    """Four microphones, each with its own self-noise: the channels' power spectra are
    averaged, the rotor is found, and the microphones' noise alone raises nothing."""
    rate = 16000
    scene = site_with_rotor(rate, 8.0, 0.004)
    rng = np.random.default_rng(9)
    self_noise = 0.004 * rng.standard_normal((len(scene), 4)).astype(np.float32)
    with_rotor = run(AcousticDetector(rate, 4), scene[:, None] + self_noise)
    assert sum(r.drone for r in with_rotor) > 0.4 * len(with_rotor)
    assert not any(r.drone for r in run(AcousticDetector(rate, 4), self_noise))


def arriving_on_uma16(mono: np.ndarray, rate: int, azimuth_deg: float) -> np.ndarray:
    """(frames, 16) pressure of a plane wave from azimuth_deg (10 degrees up) on the UMA-16."""
    positions = load_geometry("uma16").positions_m
    lead = positions @ unit_vectors(np.array(azimuth_deg), np.array(10.0)) / SPEED_OF_SOUND_MPS
    f = np.fft.rfftfreq(len(mono), 1.0 / rate)
    shifted = np.fft.rfft(mono)[None, :] * np.exp(2j * np.pi * f[None, :] * lead[:, None])
    return np.fft.irfft(shifted, n=len(mono)).T


def test_beams_on_a_16_mic_array_hear_a_rotor_the_channel_average_misses() -> None:
    """Delay-and-sum beams keep the rotor's lines whole while the microphones' own noise
    partly cancels: a rotor ~10 dB under what the averaged channels need in one block is
    found from the first decision, on its bearing; the averaged channels hear it only
    seconds later, through the long-integration (faint comb) path, and not throughout."""
    rate = 48000
    rotor = arriving_on_uma16(rotor_sound(8.0, rate, f0_hz=170.0, seed=2), rate, 140.0)
    noise = np.random.default_rng(3).standard_normal(rotor.shape)
    pcm = (noise + 0.12 * rotor).astype(np.float32)
    averaged = run(AcousticDetector(rate, 16), pcm)
    beamed = run(AcousticDetector(rate, 16, positions_m=load_geometry("uma16").positions_m),
                 pcm)
    late = [r for r in beamed if r.t > 3.0]
    assert sum(r.drone for r in late) > 0.7 * len(late)
    assert not any(r.drone for r in averaged if r.t < 4.0)
    assert sum(r.drone for r in averaged if r.t > 3.0) < 0.5 * len(late)
    bearings = [b.azimuth_deg for r in late for b in r.bearings]
    assert bearings and abs(float(np.median(bearings)) - 140.0) < 10.0


def test_site_noise_from_one_side_raises_no_alarm_on_the_beams() -> None:
    """The best of twelve beams is more looks at the noise, not a lower threshold: a minute
    of site machinery and wind arriving from one side, over the microphones' own noise,
    stays silent."""
    rate = 16000
    site = np.concatenate(list(site_noise(60.0, rate, seed=6)))[:, 0]
    pcm = arriving_on_uma16(site, rate, 250.0)
    pcm += 0.002 * np.random.default_rng(8).standard_normal(pcm.shape)
    det = AcousticDetector(rate, 16, positions_m=load_geometry("uma16").positions_m)
    results = run(det, pcm.astype(np.float32))
    assert len(results) > 1000
    assert not any(r.drone for r in results)


def test_block_with_wrong_channel_count_is_refused() -> None:
    det = AcousticDetector(16000, 2)
    with pytest.raises(ValueError, match="3 channels, expected 2"):
        det.process(np.zeros((100, 3), dtype=np.float32), 0.0)


def test_crazyflie_propeller_f0_rises_with_thrust(shared_data: Path) -> None:
    folder = shared_data / "acoustic" / "crazyflie-propeller"
    commands, f0s = [], []
    for path in sorted(folder.glob("*.wav"), key=lambda p: int(p.stem)):
        samples, rate = read_wav(path)  # 32-bit float WAV
        results = run(AcousticDetector(rate, samples.shape[1]), samples)
        commands.append(int(path.stem))
        f0s.append(float(np.median([r.f0_hz for r in results if r.f0_hz])))
    assert len(f0s) == 13
    ranks = np.argsort(np.argsort(f0s))
    spearman = np.corrcoef(ranks, np.arange(len(f0s)))[0, 1]
    assert spearman > 0.95
    # Monotonic within the analysis' resolution (about 1 % at these harmonics).
    steps = np.diff(f0s) / np.array(f0s[:-1])
    assert steps.min() > -0.02
    assert f0s[-1] / f0s[0] > 1.15


def wandering_tone(seconds: float, rate: int, freq_hz: float, walk: np.ndarray) -> np.ndarray:
    """A sine whose frequency follows freq_hz * (1 + walk), walk sampled evenly over the clip."""
    n = int(seconds * rate)
    f = freq_hz * (1.0 + np.interp(np.arange(n), np.linspace(0, n, len(walk)), walk))
    return np.sin(2 * np.pi * np.cumsum(f) / rate)


def rotor_walk(seconds: float, wander: float, seed: int) -> np.ndarray:
    """The flight controller's trimming: a smoothed random walk, `wander` rms."""
    walk = np.convolve(np.random.default_rng(seed).standard_normal(int(seconds * 20) + 8),
                       np.ones(6) / 6, mode="same")
    return walk / np.std(walk) * wander


def test_small_quad_with_blade_pass_above_800_hz_is_detected() -> None:
    """A racing quad's comb at 1.2 kHz, above the 80-800 Hz fundamental search. Its lines are
    found all the same; the fundamental reported may be a subharmonic of 1.2 kHz (the comb
    search explains the lines by the lowest f0 that fits), never an unrelated frequency."""
    rate = 44100
    rotor = rotor_sound(10.0, rate, f0_hz=1200.0, harmonics=6, seed=3)
    results = run(AcousticDetector(rate, 1), site_with_rotor(rate, 10.0, 0.0) + 0.01 * rotor)
    late = [r for r in results if r.t > 4.0]
    assert sum(r.drone for r in late) > 0.5 * len(late)
    f0 = float(np.median([r.f0_hz for r in late if r.drone]))
    assert 1200.0 / f0 == pytest.approx(round(1200.0 / f0), abs=0.05)


def test_two_lines_wandering_together_at_a_fixed_ratio_are_a_rotor() -> None:
    """Two lines only (3.5 and 6.125 kHz, ratio 7/4), both following one shaft's speed: no
    comb of three harmonics, but one rotor, whose fundamental (875 Hz: the lines are its
    4th and 7th harmonics) is reported."""
    rate = 44100
    walk = rotor_walk(10.0, 0.01, seed=5)
    pair = wandering_tone(10.0, rate, 3500.0, walk) + wandering_tone(10.0, rate, 6125.0, walk)
    det = AcousticDetector(rate, 1)
    results = run(det, site_with_rotor(rate, 10.0, 0.0) + 0.003 * pair)
    hits = [r for r in results if r.drone]
    assert len(hits) > 10
    assert np.median([r.f0_hz for r in hits]) == pytest.approx(875.0, rel=0.03)


@pytest.mark.parametrize("case", ["steady", "independent"])
def test_two_lines_that_do_not_wander_together_are_not_a_rotor(case: str) -> None:
    """Two steady lines at a fixed ratio (a machine), or two lines that wander but each on its
    own (two unrelated sources): the same levels as the rotor pair above, no alarm."""
    rate = 44100
    if case == "steady":
        walks = [np.zeros(8), np.zeros(8)]
    else:
        walks = [rotor_walk(10.0, 0.01, seed=5), rotor_walk(10.0, 0.01, seed=6)]
    pair = (wandering_tone(10.0, rate, 3500.0, walks[0])
            + wandering_tone(10.0, rate, 6125.0, walks[1]))
    results = run(AcousticDetector(rate, 1), site_with_rotor(rate, 10.0, 0.0) + 0.003 * pair)
    assert not any(r.drone for r in results)


def broken_partner(case: str, rate: int) -> np.ndarray:
    """A strong line at 3.5 kHz that holds, and a partner at 5/3 of it that is there one
    block in three (on 0.15 s, off 0.3 s), following the same shaft or a shaft of its own."""
    walk = rotor_walk(10.0, 0.01, seed=5)
    partner_walk = walk if case == "one shaft" else rotor_walk(10.0, 0.01, seed=6)
    t = np.arange(int(10.0 * rate)) / rate
    gate = (t % 0.45) < 0.15
    return (wandering_tone(10.0, rate, 3500.0, walk)
            + gate * wandering_tone(10.0, rate, 3500.0 * 5.0 / 3.0, partner_walk))


@pytest.mark.parametrize("case", ["one shaft", "two shafts"])
def test_a_line_with_a_partner_heard_one_block_in_three_is_a_rotor_only_if_they_co_move(
        case: str) -> None:
    """CoMovingLines: a partner too broken for LinePairs still shows one shaft, by a ratio
    that holds far more tightly than the lines wander; one that wanders on its own does not."""
    rate = 44100
    det = AcousticDetector(rate, 1)
    results = run(det, site_with_rotor(rate, 10.0, 0.0) + 0.003 * broken_partner(case, rate))
    hits = [r for r in results if r.drone]
    if case == "two shafts":
        assert hits == []
        return
    assert len(hits) > 10
    # Harmonics 3 and 5 of one fundamental: that fundamental is reported.
    assert np.median([r.f0_hz for r in hits]) == pytest.approx(3500.0 / 3.0, rel=0.03)


def test_a_rotor_too_faint_for_any_block_is_heard_on_its_bearing_after_seconds() -> None:
    """The faint path (edgenode/detect/faint.py): a rotor that no single block shows, beside
    a louder broadband source from elsewhere, comes out of the seconds-long average, and its
    bearing from every snapshot of that average, the other source's wavefront subtracted."""
    rate = 48000
    rotor = arriving_on_uma16(rotor_sound(20.0, rate, f0_hz=170.0, seed=2), rate, 140.0)
    rng = np.random.default_rng(3)
    elsewhere = arriving_on_uma16(rng.standard_normal(len(rotor)), rate, 250.0)
    pcm = (elsewhere + 0.5 * rng.standard_normal(rotor.shape) + 0.05 * rotor)
    results = run(AcousticDetector(rate, 16, positions_m=load_geometry("uma16").positions_m),
                  pcm.astype(np.float32))
    heard = [r for r in results if r.drone]
    assert heard and min(r.t for r in heard) > 8.0, "heard before the average could form"
    bearings = [b.azimuth_deg for r in heard for b in r.bearings]
    # The other source is 26 dB louder over the band: its wavefront must not take the bearing.
    assert len(bearings) >= 5
    assert abs(float(np.median(bearings)) - 140.0) < 10.0, bearings
    # Without a geometry the same average still decides; there is just no bearing to take.
    summed = run(AcousticDetector(rate, 16), pcm.astype(np.float32))
    assert any(r.drone for r in summed)
    assert not any(r.bearings for r in summed)


def test_a_block_lost_on_the_way_leaves_no_frame_across_the_hole_and_no_late_clock() -> None:
    """An overrun (or the daemon dropping a block while behind) leaves a hole in the audio,
    which the daemon tells the detector of (the blocks' index jumps): every analysed frame
    lies within samples that arrived together, and its time is the caller's clock for those
    samples, not late by the hole."""
    rate, block = 48000, 4096
    rotor = arriving_on_uma16(rotor_sound(6.0, rate, f0_hz=170.0, seed=2), rate, 140.0)
    noise = np.random.default_rng(3).standard_normal(rotor.shape)
    pcm = (noise + 0.5 * rotor).astype(np.float32)
    det = AcousticDetector(rate, 16, positions_m=load_geometry("uma16").positions_m)
    runs: list[list[float]] = [[0.0, 0.0]]  # [first, end) of each run of delivered samples
    results = []
    for i, start in enumerate(range(0, len(pcm), block)):
        if i % 7 == 6:  # lost on the way
            runs.append([(start + block) / rate, (start + block) / rate])
            det.hole()
            continue
        runs[-1][1] = (start + len(pcm[start:start + block])) / rate
        results += det.process(pcm[start:start + block], start / rate)
    half = 0.5 * det.n / rate
    assert len(results) > 60
    across = [r.t for r in results
              if not any(a - 1e-9 <= r.t - half and r.t + half <= b + 1e-9 for a, b in runs)]
    assert across == [], f"frames across a hole or mistimed, centred at {across[:5]}"
    bearings = [b.azimuth_deg for r in results if r.t > 3.0 for b in r.bearings]
    assert bearings and abs(float(np.median(bearings)) - 140.0) < 5.0
