"""WAV files: integer and float PCM, any channel count, as float32 in [-1, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.io import wavfile


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Return (samples float32 of shape (frames, channels), sample rate in Hz)."""
    rate, data = wavfile.read(str(path), mmap=False)
    if data.ndim == 1:
        data = data[:, None]
    if data.dtype == np.uint8:
        out = (data.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(data.dtype, np.integer):
        out = data.astype(np.float32) / float(-np.iinfo(data.dtype).min)
    else:
        out = data.astype(np.float32)
    return out, int(rate)


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> None:
    """Write float samples as 16-bit PCM (what `edgenode record` and the tests produce)."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    wavfile.write(str(path), rate, (clipped * 32767.0).astype(np.int16))
