"""WAV files: integer and float PCM, any channel count, as float32 in [-1, 1].

`read_wav`/`write_wav` handle whole files; `WavSource` streams one as an audio source.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
from scipy.io import wavfile

from hal.ports.audio import AudioBlock, AudioError, wait_until


def _to_float32(data: np.ndarray) -> np.ndarray:
    if data.ndim == 1:
        data = data[:, None]
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(data.dtype, np.integer):
        return data.astype(np.float32) / float(-np.iinfo(data.dtype).min)
    return data.astype(np.float32)


def _load(path: str | Path, mmap: bool) -> tuple[int, np.ndarray]:
    # Recorders add LIST/bext/... chunks; scipy warns about each and skips it, which is right.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", wavfile.WavFileWarning)
        rate, data = wavfile.read(str(path), mmap=mmap)
    return int(rate), data


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Return (samples float32 of shape (frames, channels), sample rate in Hz)."""
    rate, data = _load(path, mmap=False)
    return _to_float32(data), rate


def write_wav(path: str | Path, samples: np.ndarray, rate: int) -> None:
    """Write float samples as 16-bit PCM (what `edgenode record` and the tests produce)."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    wavfile.write(str(path), rate, (clipped * 32767.0).astype(np.int16))


class WavSource:
    """Fixed-size blocks from a WAV file, read through a memory map (long files are not loaded).

    `channels`/`sample_rate_hz` None means "as the file"; a value that differs from the file is
    an error (nothing is mixed or resampled behind the caller's back). Capture times run from
    the moment the source opened at the file's rate. `realtime=True` hands each block over when
    a sound card would have; `loop=True` wraps to the start (the stream stays continuous).
    At the end, the frames that do not fill a block are dropped, `read_block` returns None and
    `eof` is set.
    """

    def __init__(self, device: str | Path, channels: int | None = None,
                 sample_rate_hz: int | None = None, block_frames: int = 4096,
                 stall_timeout_s: float = 2.0, *, realtime: bool = False, loop: bool = False,
                 t0: float | None = None):
        self.device = str(device)
        try:
            rate, data = _load(self.device, mmap=True)
        except ValueError:
            # 24-bit and a few other layouts cannot be memory-mapped; read them whole.
            try:
                rate, data = _load(self.device, mmap=False)
            except (OSError, ValueError) as exc:
                raise AudioError(f"wav audio '{self.device}': cannot read: {exc}") from exc
        except OSError as exc:
            raise AudioError(f"wav audio '{self.device}': cannot read: {exc}") from exc
        self._data = data if data.ndim == 2 else data[:, None]
        file_channels = self._data.shape[1]
        if channels is not None and channels != file_channels:
            raise AudioError(f"wav audio '{self.device}': the file has {file_channels}"
                             f" channel(s), the source was asked for {channels}")
        if sample_rate_hz is not None and sample_rate_hz != rate:
            raise AudioError(f"wav audio '{self.device}': the file is sampled at {rate} Hz,"
                             f" the source was asked for {sample_rate_hz} Hz")
        if block_frames < 1:
            raise AudioError(f"wav audio '{self.device}': block_frames must be positive")
        if loop and self._data.shape[0] == 0:
            raise AudioError(f"wav audio '{self.device}': the file is empty and cannot loop")
        self.channels, self.sample_rate_hz, self.block_frames = file_channels, rate, block_frames
        self.stall_timeout_s = stall_timeout_s
        self.realtime, self.loop = realtime, loop
        self.overruns = self.stalls = self.restarts = 0
        self.eof = False
        self.closed = False
        self._t0 = time.time() if t0 is None else t0
        self._t0_monotonic = time.monotonic()
        self._index = 0
        self._pos = 0  # next frame to read from the file

    @property
    def frames(self) -> int:
        """Frames in the file."""
        return int(self._data.shape[0])

    def _take(self) -> np.ndarray | None:
        n, total = self.block_frames, self.frames
        if self._pos + n <= total:
            part = self._data[self._pos:self._pos + n]
            self._pos += n
            return _to_float32(np.asarray(part))
        if not self.loop:
            return None
        pieces, need = [], n
        while need:
            take = min(need, total - self._pos)
            pieces.append(np.asarray(self._data[self._pos:self._pos + take]))
            self._pos = (self._pos + take) % total
            need -= take
        return _to_float32(np.concatenate(pieces))

    def read_block(self, timeout_s: float) -> AudioBlock | None:
        if self.closed or self.eof:
            return None
        start = self._index * self.block_frames
        if self.realtime:
            due = self._t0_monotonic + (start + self.block_frames) / self.sample_rate_hz
            if not wait_until(due, timeout_s):
                return None
        samples = self._take()
        if samples is None:
            self.eof = True
            return None
        block = AudioBlock(samples=samples, sample_rate_hz=self.sample_rate_hz,
                           t_capture=self._t0 + start / self.sample_rate_hz, index=self._index)
        self._index += 1
        return block

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            # Drop the memory map so the file is released now, not at garbage collection.
            self._data = np.zeros((0, self.channels), dtype=np.float32)

    def __enter__(self) -> WavSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
