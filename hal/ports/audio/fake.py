"""Fake audio source: blocks computed by a generator, for unit tests of the consumers.

A generator is any callable taking the time of each frame in seconds since the source opened
(float64, shape (frames,)) and returning float samples of shape (frames,) (copied to every
channel) or (frames, channels). Named generators, for config files: `silence`,
`tone:<hz>[:<amplitude>]`, `noise[:<amplitude>]` (seeded, so runs repeat).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from hal.ports.audio import AudioBlock, AudioError, wait_until

Generator = Callable[[np.ndarray], np.ndarray]


def tone(frequency_hz: float, amplitude: float = 0.5) -> Generator:
    """A sine of the given frequency and peak amplitude (full scale 1.0)."""
    return lambda t: amplitude * np.sin(2.0 * math.pi * frequency_hz * t)


def noise(amplitude: float = 0.1, seed: int = 0) -> Generator:
    """Gaussian noise of the given standard deviation; the same seed gives the same samples."""
    rng = np.random.default_rng(seed)
    return lambda t: amplitude * rng.standard_normal(t.shape[0])


def silence() -> Generator:
    return lambda t: np.zeros(t.shape[0])


def named_generator(name: str) -> Generator:
    """Build a generator from its config name (`tone:1000:0.5`, `noise:0.1`, `silence`)."""
    kind, *args = name.split(":")
    try:
        values = [float(a) for a in args]
        if kind == "silence" and not values:
            return silence()
        if kind == "tone" and 1 <= len(values) <= 2:
            return tone(*values)
        if kind == "noise" and len(values) <= 1:
            return noise(*values)
    except ValueError:
        pass
    raise AudioError(f"fake audio device '{name}' unknown; use silence, tone:<hz>[:<amplitude>]"
                     " or noise[:<amplitude>]")


class FakeAudioSource:
    """Blocks from a generator. `realtime=True` paces them like a sound card; otherwise they
    come as fast as they are read, with capture times that advance by one block each.
    `max_blocks` ends the source (read_block returns None, `eof` set) after that many."""

    def __init__(self, device: str = "silence", channels: int = 1, sample_rate_hz: int = 48000,
                 block_frames: int = 1024, stall_timeout_s: float = 2.0, *,
                 generator: Generator | None = None, realtime: bool = False,
                 max_blocks: int | None = None, t0: float | None = None):
        if channels < 1 or sample_rate_hz < 1 or block_frames < 1:
            raise AudioError(f"fake audio '{device}': channels, sample_rate_hz and block_frames"
                             f" must be positive (got {channels}, {sample_rate_hz},"
                             f" {block_frames})")
        self.device = device
        self.channels, self.sample_rate_hz, self.block_frames = (
            channels, sample_rate_hz, block_frames)
        self.stall_timeout_s = stall_timeout_s
        self.generator = generator if generator is not None else named_generator(device)
        self.realtime, self.max_blocks = realtime, max_blocks
        # Plain counters: a consumer's test may set them to see how it reports them.
        self.overruns = self.stalls = self.restarts = 0
        self.eof = False
        self.closed = False
        self._t0 = time.time() if t0 is None else t0
        self._t0_monotonic = time.monotonic()
        self._index = 0

    def read_block(self, timeout_s: float) -> AudioBlock | None:
        if self.closed or self.eof:
            return None
        if self.max_blocks is not None and self._index >= self.max_blocks:
            self.eof = True
            return None
        start = self._index * self.block_frames
        if self.realtime:
            # A card hands a block over once its last frame has been captured.
            due = self._t0_monotonic + (start + self.block_frames) / self.sample_rate_hz
            if not wait_until(due, timeout_s):
                return None
        t = (start + np.arange(self.block_frames)) / self.sample_rate_hz
        samples = np.asarray(self.generator(t), dtype=np.float32)
        if samples.ndim == 1:
            samples = np.repeat(samples[:, None], self.channels, axis=1)
        if samples.shape != (self.block_frames, self.channels):
            raise AudioError(f"fake audio '{self.device}': generator returned shape"
                             f" {samples.shape}, expected ({self.block_frames},"
                             f" {self.channels}) or ({self.block_frames},)")
        block = AudioBlock(samples=np.ascontiguousarray(samples),
                           sample_rate_hz=self.sample_rate_hz,
                           t_capture=self._t0 + start / self.sample_rate_hz, index=self._index)
        self._index += 1
        return block

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> FakeAudioSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
