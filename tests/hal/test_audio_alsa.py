"""ALSA capture through an arecord pipe, proven against a real stand-in process."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from hal.ports.audio import AudioBlock, AudioError, AudioSource, open_audio
from hal.ports.audio.alsa import AlsaSource

STAND_IN = Path(__file__).with_name("stand_in_arecord.py")
RATE = 48000


def stand_in(*options: str) -> list[str]:
    return [sys.executable, str(STAND_IN), *options]


def expected_samples(count: int) -> np.ndarray:
    """The stand-in's pattern, written out independently: sample k is (k mod 65536) - 32768."""
    return (((np.arange(count) % 65536) - 32768) / 32768.0).astype(np.float32)


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def read_blocks(source: AudioSource, count: int, timeout_s: float = 10.0) -> list[AudioBlock]:
    blocks = []
    while len(blocks) < count:
        block = source.read_block(timeout_s)
        assert block is not None, f"block {len(blocks)} of {count} did not come"
        blocks.append(block)
    return blocks


@pytest.fixture
def sources() -> Iterator[list[AlsaSource]]:
    opened: list[AlsaSource] = []
    yield opened
    for source in opened:
        source.close()


def test_short_reads_become_exact_blocks_with_samples_in_order(sources):
    # 4 channels of S16 written in random 1..13-byte pieces: samples are cut mid-value.
    src = AlsaSource("hw:CARD=Array", 4, RATE, 1000,
                     arecord=stand_in("--frames", "12000", "--chunk-max-bytes", "13"))
    sources.append(src)
    blocks = read_blocks(src, 12)
    for i, block in enumerate(blocks):
        assert block.samples.shape == (1000, 4)
        assert block.samples.dtype == np.float32
        assert block.index == i
        assert block.sample_rate_hz == RATE
    samples = np.concatenate([b.samples for b in blocks])
    np.testing.assert_array_equal(samples.ravel(), expected_samples(12000 * 4))
    # Full scale is 1.0: the first frame holds -32768, -32767, -32766, -32765.
    np.testing.assert_array_equal(samples[0], np.array([-32768, -32767, -32766, -32765]) / 32768)
    # Capture times follow the sample counter exactly.
    starts = np.array([b.t_capture for b in blocks])
    np.testing.assert_allclose(np.diff(starts), 1000 / RATE, rtol=0, atol=1e-6)
    assert abs(starts[0] - time.time()) < 10


def test_s32_capture_keeps_order_and_scale(sources):
    src = AlsaSource("hw:1", 2, RATE, 512, sample_format="S32_LE",
                     arecord=stand_in("--frames", "2048", "--chunk-max-bytes", "29"))
    sources.append(src)
    samples = np.concatenate([b.samples for b in read_blocks(src, 4)])
    assert samples.shape == (2048, 2)
    np.testing.assert_array_equal(samples.ravel(), expected_samples(2048 * 2))
    assert src.argv[-10:] == ["-D", "hw:1", "-c", "2", "-r", str(RATE), "-f", "S32_LE", "-t",
                              "raw"]


def test_stalled_arecord_is_killed_and_restarted(sources, tmp_path, caplog):
    runs = tmp_path / "runs"
    # Run 1 hangs after 4096 frames like a stuck driver; run 2 delivers. Paced like a card,
    # so each read carries one period and the capture times are meaningful.
    src = AlsaSource("hw:CARD=UMA16", 2, RATE, 1024, stall_timeout_s=0.5,
                     arecord=stand_in("--realtime", "--runs-file", str(runs), "--stall-runs", "1",
                                      "--stall-after-frames", "4096", "--frames", "8192"))
    sources.append(src)
    with caplog.at_level(logging.WARNING, logger="hal.ports.audio.alsa"):
        before = read_blocks(src, 4)
        after = read_blocks(src, 2)
    assert src.stalls == 1
    assert src.restarts >= 1
    assert len(runs.read_text().split()) >= 2
    # The new run starts its own pattern; blocks are whole and in order again.
    np.testing.assert_array_equal(np.concatenate([b.samples for b in after]).ravel(),
                                  expected_samples(2 * 1024 * 2))
    # Time was re-anchored across the gap, and the index jumped by the blocks it would hold.
    np.testing.assert_allclose(np.diff([b.t_capture for b in before]), 1024 / RATE, atol=1e-6)
    assert after[0].t_capture - before[-1].t_capture > 0.5
    assert after[0].index > before[-1].index + 1
    stall_lines = [r.getMessage() for r in caplog.records if "stall" in r.getMessage()]
    assert len(stall_lines) == 1
    assert "hw:CARD=UMA16" in stall_lines[0] and "restarting" in stall_lines[0]
    # The hung process is gone, not left behind.
    first_pid = int(runs.read_text().split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(first_pid, 0)


def test_read_block_gives_up_after_its_timeout_while_the_device_is_silent(sources):
    src = AlsaSource("hw:2", 1, RATE, 256, stall_timeout_s=30,
                     arecord=stand_in("--stall-after-frames", "0"))
    sources.append(src)
    started = time.monotonic()
    assert src.read_block(0.2) is None
    assert time.monotonic() - started < 5  # generous: it returned, it did not hang
    assert src.stalls == 0


def test_missing_arecord_is_an_error_naming_it():
    with pytest.raises(AudioError, match="/opt/nowhere/arecord"):
        AlsaSource("hw:0", 2, RATE, 1024, arecord="/opt/nowhere/arecord")
    # An OSError, so the acoustic stage retries it like any absent device.
    with pytest.raises(OSError, match="arecord-not-installed"):
        open_audio("alsa", device="hw:0", channels=2, sample_rate_hz=RATE, block_frames=1024,
                   arecord="arecord-not-installed")


def test_arecord_overrun_reports_are_counted(sources):
    src = AlsaSource("hw:3", 1, RATE, 1024,
                     arecord=stand_in("--frames", "4096", "--overrun-every-frames", "1024"))
    sources.append(src)
    read_blocks(src, 4)
    wait_for(lambda: src.device_overruns == 4)
    assert src.overruns == 4
    assert src.dropped_blocks == 0


def test_oldest_blocks_are_dropped_and_counted_when_nobody_reads(sources):
    src = AlsaSource("hw:4", 1, RATE, 1024, buffer_blocks=4,
                     arecord=stand_in("--frames", str(20 * 1024)))
    sources.append(src)
    wait_for(lambda: src.bytes_in == 20 * 1024 * 2)
    kept = read_blocks(src, 4)
    assert [b.index for b in kept] == [16, 17, 18, 19]
    assert src.dropped_blocks == 16
    assert src.overruns == 16
    np.testing.assert_array_equal(kept[0].samples.ravel(), expected_samples(20 * 1024)[-4096:-3072])


def test_arecord_that_exits_is_reported_with_its_reason_and_restarted(sources, caplog):
    with caplog.at_level(logging.WARNING, logger="hal.ports.audio.alsa"):
        src = AlsaSource("hw:CARD=Missing", 2, RATE, 1024, restart_delay_s=0.05,
                         arecord=stand_in("--fail", "audio open error: No such file or directory"))
        sources.append(src)
        wait_for(lambda: src.restarts >= 2)
    assert src.exits >= 2
    assert src.read_block(0.05) is None
    warnings = [r.getMessage() for r in caplog.records]
    # One line per distinct reason, naming the device and what arecord said.
    assert len(warnings) == 1
    assert "hw:CARD=Missing" in warnings[0]
    assert "No such file or directory" in warnings[0]


def test_close_kills_arecord_and_is_idempotent(tmp_path):
    runs = tmp_path / "runs"
    src = AlsaSource("hw:5", 1, RATE, 256,
                     arecord=stand_in("--runs-file", str(runs), "--stall-after-frames", "512"))
    read_blocks(src, 2)
    pid = int(runs.read_text().split()[0])
    src.close()
    src.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert src.read_block(0.01) is None


def test_alsa_backend_opens_through_open_audio(sources):
    src = open_audio("alsa", device="hw:6", channels=3, sample_rate_hz=RATE, block_frames=300,
                     stall_timeout_s=1.0, arecord=stand_in("--frames", "600"))
    assert isinstance(src, AlsaSource)
    sources.append(src)
    assert isinstance(src, AudioSource)
    blocks = read_blocks(src, 2)
    np.testing.assert_array_equal(np.concatenate([b.samples for b in blocks]).ravel(),
                                  expected_samples(600 * 3))
