"""WAV files as audio sources: real recordings and files written here in every sample type."""

from __future__ import annotations

import struct
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.io import wavfile

from hal.ports.audio import AudioError, AudioSource, open_audio
from hal.ports.audio.wav import WavSource, read_wav, write_wav


def drain(source: WavSource) -> list[np.ndarray]:
    out = []
    while (block := source.read_block(1.0)) is not None:
        out.append(block.samples)
    return out


def test_float_propeller_recording_streams_in_exact_blocks(shared_data: Path):
    path = shared_data / "acoustic/crazyflie-propeller/40000.wav"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reference read; WavSource must not need this
        _, raw = wavfile.read(path)
    assert raw.dtype == np.float32 and raw.ndim == 1
    src = open_audio("wav", device=str(path), channels=1, sample_rate_hz=44100,
                     block_frames=4096)
    assert isinstance(src, AudioSource)
    blocks = drain(src)
    assert len(blocks) == raw.shape[0] // 4096
    assert all(b.shape == (4096, 1) and b.dtype == np.float32 for b in blocks)
    np.testing.assert_array_equal(np.concatenate(blocks)[:, 0], raw[:len(blocks) * 4096])
    assert src.eof
    assert src.read_block(0.1) is None


def test_int16_stereo_recording_keeps_channels_and_scale(shared_data: Path):
    path = shared_data / "acoustic/halmstad-dev/DRONE_001.wav"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, raw = wavfile.read(path)
    src = WavSource(path, block_frames=10000)
    assert (src.channels, src.sample_rate_hz) == (2, 44100)
    block = src.read_block(1.0)
    assert block is not None
    np.testing.assert_array_equal(block.samples, raw[:10000].astype(np.float32) / 32768)


def test_recorder_chunks_do_not_warn(tmp_path: Path):
    path = tmp_path / "with-list-chunk.wav"
    write_wav(path, np.zeros((100, 2)), 16000)
    data = bytearray(path.read_bytes())
    extra = b"LIST" + struct.pack("<I", 4) + b"INFO"
    data += extra
    data[4:8] = struct.pack("<I", len(data) - 8)
    path.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        samples, rate = read_wav(path)
        WavSource(path).close()
    assert samples.shape == (100, 2) and rate == 16000


@pytest.mark.parametrize(("dtype", "full_scale"), [(np.int16, 32768.0), (np.int32, 2.0**31),
                                                   (np.float32, 1.0)])
def test_multichannel_files_of_each_sample_type_keep_order_and_scale(tmp_path, dtype,
                                                                     full_scale):
    frames, channels = 3000, 4
    # Each channel its own ramp, so a swapped channel or frame shows.
    values = (np.arange(frames)[:, None] * 8 + np.arange(channels)[None, :]) - 12000
    if dtype == np.int32:
        values = values * 65536
    data = (values / 16384.0).astype(np.float32) if dtype == np.float32 else values.astype(dtype)
    path = tmp_path / f"four-{np.dtype(dtype).name}.wav"
    wavfile.write(path, 16000, data)
    src = WavSource(path, channels=4, sample_rate_hz=16000, block_frames=1000)
    blocks = drain(src)
    assert len(blocks) == 3
    np.testing.assert_array_equal(np.concatenate(blocks),
                                  (data.astype(np.float64) / full_scale).astype(np.float32))


def test_loop_wraps_around_seamlessly(tmp_path):
    path = tmp_path / "short.wav"
    ramp = (np.arange(1000, dtype=np.int16) * 30)[:, None]
    wavfile.write(path, 16000, ramp)
    src = WavSource(path, block_frames=300, loop=True)
    got = np.concatenate([src.read_block(1.0).samples for _ in range(10)])
    np.testing.assert_array_equal(got[:, 0], np.tile(ramp[:, 0], 3)[:3000] / 32768)
    assert not src.eof


def test_end_of_file_drops_the_partial_block_and_sets_eof(tmp_path):
    path = tmp_path / "tail.wav"
    wavfile.write(path, 16000, np.zeros(2500, dtype=np.int16))
    src = WavSource(path, block_frames=1000)
    blocks = [src.read_block(1.0) for _ in range(3)]
    assert [b.index for b in blocks[:2]] == [0, 1]
    assert blocks[2] is None and src.eof
    assert blocks[1].t_capture - blocks[0].t_capture == pytest.approx(1000 / 16000)


def test_realtime_pacing_holds_a_block_until_a_card_would_have_delivered_it(tmp_path):
    path = tmp_path / "one-second-blocks.wav"
    wavfile.write(path, 16000, np.zeros(32000, dtype=np.int16))
    src = WavSource(path, block_frames=16000, realtime=True)
    assert src.read_block(0.05) is None  # its last frame is a second away
    assert not src.eof
    block = src.read_block(5.0)
    assert block is not None and block.index == 0
    assert time.time() - block.t_capture >= 1.0 - 0.05


def test_a_file_that_does_not_match_the_request_is_an_error_naming_it(tmp_path):
    path = tmp_path / "stereo-44k1.wav"
    wavfile.write(path, 44100, np.zeros((10, 2), dtype=np.int16))
    with pytest.raises(AudioError, match=r"stereo-44k1\.wav.*2 channel.*4"):
        WavSource(path, channels=4)
    with pytest.raises(AudioError, match=r"stereo-44k1\.wav.*44100 Hz.*48000 Hz"):
        open_audio("wav", device=str(path), channels=2, sample_rate_hz=48000, block_frames=256)
    with pytest.raises(AudioError, match=r"no-such\.wav"):
        WavSource(tmp_path / "no-such.wav")
