"""Audio capture: fixed-size blocks of multichannel PCM as float32 (frames x channels).

Backends live side by side: `alsa` (an arecord pipe in its own process), `wav` (a file),
`fake` (a generator) and the twin's `sim`. Pick one with `open_audio`; a missing backend is an
error, never a silent fallback to another.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from hal.backends import load_backend


@dataclass
class AudioBlock:
    samples: np.ndarray  # float32, shape (frames, channels), full scale = 1.0
    sample_rate_hz: int
    t_capture: float  # time.time() of the block's first sample
    index: int  # blocks since the source opened; a jump means blocks were lost


class AudioError(OSError):
    """A source cannot be opened or configured; the message names the device, file or program.

    An OSError like `PortUnavailable` and `I2CError`, so a stage that retries absent devices
    handles all of them in one place."""


@runtime_checkable
class AudioSource(Protocol):
    """What every backend offers. Counters only grow; `read_block` never blocks longer than
    its timeout, so the reader thread keeps looping (and reporting) while a device is stuck."""

    sample_rate_hz: int
    channels: int
    block_frames: int
    overruns: int  # blocks or samples lost because nobody read them in time
    stalls: int  # times the device delivered nothing for stall_timeout_s
    restarts: int  # times the capture was restarted (after a stall or an exit)

    def read_block(self, timeout_s: float) -> AudioBlock | None:
        """The next block, or None when none came within `timeout_s` (or the source ended)."""
        ...

    def close(self) -> None:
        """Stop capturing and release the device; idempotent."""
        ...


_BACKENDS = {
    "alsa": "hal.ports.audio.alsa:AlsaSource",
    "wav": "hal.ports.audio.wav:WavSource",
    "fake": "hal.ports.audio.fake:FakeAudioSource",
    "sim": "hal.ports.audio.sim:SimAudioSource",
}


def open_audio(backend: str, *, device: str, channels: int, sample_rate_hz: int,
               block_frames: int, stall_timeout_s: float = 2.0,
               **options: object) -> AudioSource:
    """Open the named backend. `device` is the ALSA device, WAV path, fake generator name or
    sim socket, by backend; `options` are the backend's own (e.g. `sample_format`, `loop`)."""
    source: AudioSource = load_backend("audio backend", _BACKENDS, backend, AudioError)(
        device=device, channels=channels, sample_rate_hz=sample_rate_hz,
        block_frames=block_frames, stall_timeout_s=stall_timeout_s, **options)
    return source


def wait_until(deadline_monotonic: float, timeout_s: float) -> bool:
    """Sleep until the deadline, but never longer than `timeout_s`; True if it was reached.

    Shared by the file and generator backends for real-time pacing."""
    now = time.monotonic()
    if deadline_monotonic <= now:
        return True
    wait = deadline_monotonic - now
    if wait > timeout_s:
        time.sleep(max(0.0, timeout_s))
        return False
    time.sleep(wait)
    return True
