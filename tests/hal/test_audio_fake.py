"""The fake audio source that consumers' unit tests use, and the backend registry."""

from __future__ import annotations

import numpy as np
import pytest

from hal.ports.audio import AudioError, AudioSource, open_audio
from hal.ports.audio.fake import FakeAudioSource, tone


def test_tone_blocks_are_continuous_and_copied_to_every_channel():
    src = FakeAudioSource("tone:1000", channels=3, sample_rate_hz=48000, block_frames=480,
                          t0=1000.0)
    blocks = [src.read_block(0.1) for _ in range(4)]
    samples = np.concatenate([b.samples for b in blocks])
    t = np.arange(4 * 480) / 48000
    expected = (0.5 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    for channel in range(3):
        np.testing.assert_allclose(samples[:, channel], expected, atol=1e-6)
    assert [b.index for b in blocks] == [0, 1, 2, 3]
    assert [b.t_capture for b in blocks] == pytest.approx([1000.0, 1000.01, 1000.02, 1000.03])


def test_generator_callable_may_give_each_channel_its_own_signal():
    def per_channel(t: np.ndarray) -> np.ndarray:
        return np.stack([np.full_like(t, 0.1), np.full_like(t, -0.2)], axis=1)

    src = FakeAudioSource(channels=2, sample_rate_hz=16000, block_frames=256,
                          generator=per_channel)
    block = src.read_block(0.1)
    assert block.samples.dtype == np.float32
    np.testing.assert_allclose(block.samples[0], [0.1, -0.2], rtol=1e-6)


def test_named_tone_has_its_frequency_and_amplitude():
    src = open_audio("fake", device="tone:1500:0.25", channels=1, sample_rate_hz=48000,
                     block_frames=4800)
    assert isinstance(src, AudioSource)
    samples = src.read_block(0.1).samples[:, 0]
    spectrum = np.abs(np.fft.rfft(samples))
    assert np.argmax(spectrum) * 48000 / 4800 == pytest.approx(1500)
    assert samples.max() == pytest.approx(0.25, abs=1e-3)


def test_named_noise_repeats_run_to_run():
    a = FakeAudioSource("noise:0.1", channels=1, block_frames=512).read_block(0.1)
    b = FakeAudioSource("noise:0.1", channels=1, block_frames=512).read_block(0.1)
    np.testing.assert_array_equal(a.samples, b.samples)
    assert 0.05 < float(a.samples.std()) < 0.2


def test_max_blocks_ends_the_source_with_eof():
    src = FakeAudioSource("silence", max_blocks=2)
    assert src.read_block(0.1) is not None and src.read_block(0.1) is not None
    assert src.read_block(0.1) is None
    assert src.eof


def test_bad_generators_and_names_are_errors_naming_them():
    with pytest.raises(AudioError, match="'chirp:100'"):
        FakeAudioSource("chirp:100")
    with pytest.raises(AudioError, match="'tone:abc'"):
        FakeAudioSource("tone:abc")
    src = FakeAudioSource("wrong-shape", channels=2, block_frames=64,
                          generator=lambda t: np.zeros((len(t), 3)))
    with pytest.raises(AudioError, match=r"wrong-shape.*\(64, 3\)"):
        src.read_block(0.1)


def test_counters_are_plain_so_consumer_tests_can_set_them():
    src = FakeAudioSource(generator=tone(440))
    src.overruns, src.stalls, src.restarts = 3, 1, 1
    assert (src.overruns, src.stalls, src.restarts) == (3, 1, 1)
    src.close()
    assert src.read_block(0.1) is None


def test_unknown_backend_is_an_error_listing_the_known_ones():
    with pytest.raises(AudioError, match=r"'pulse'.*alsa.*fake.*sim.*wav"):
        open_audio("pulse", device="x", channels=1, sample_rate_hz=48000, block_frames=256)
