"""ALSA capture through an `arecord` pipe in its own process.

A USB or I2S driver that stalls can block a read in the kernel for good; inside our process
that would hang the daemon. So arecord does the capture and writes raw PCM to a pipe; one
capture thread reads the pipe (select with a short timeout, never a blocking read), cuts exact
blocks, stamps them and queues them in a bounded buffer. When no byte has come for
`stall_timeout_s` the thread counts a stall, kills arecord and starts it again; when arecord
exits on its own (device unplugged, busy, wrong name) it is started again after a short delay.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import select
import shutil
import subprocess
import threading
import time
from collections.abc import Sequence

import numpy as np

from hal.ports.audio import AudioBlock, AudioError

log = logging.getLogger(__name__)

# ALSA sample formats we read, with their numpy type and the value of full scale.
FORMATS: dict[str, tuple[str, float]] = {
    "S16_LE": ("<i2", 32768.0),
    "S32_LE": ("<i4", 2147483648.0),
}

_READ_BYTES = 1 << 16
_POLL_S = 0.05


def _resolve(program: str) -> str | None:
    if os.sep in program:
        return program if os.path.isfile(program) and os.access(program, os.X_OK) else None
    return shutil.which(program)


class AlsaSource:
    """Multichannel capture from an ALSA device through `arecord`.

    `arecord` is the capture program: a path or name, or an argv prefix such as
    `[sys.executable, "stand_in_arecord.py", ...]` (the tests run a stand-in this way). Blocks
    carry the capture time of their first sample: a sample counter anchored when the first
    bytes of each arecord run arrive (back-dated by the frames those bytes carried), so time
    advances exactly with the samples and is re-anchored after a restart; `index` then jumps by
    the blocks the gap would have held. `overruns` counts arecord's own overrun reports plus
    blocks dropped (oldest first) because nobody read them before the buffer filled.
    """

    def __init__(self, device: str, channels: int, sample_rate_hz: int, block_frames: int,
                 stall_timeout_s: float = 2.0, *, sample_format: str = "S16_LE",
                 arecord: str | Sequence[str] = "arecord", buffer_blocks: int = 32,
                 restart_delay_s: float = 0.5):
        if sample_format not in FORMATS:
            raise AudioError(f"audio '{device}': sample_format '{sample_format}' unsupported;"
                             f" use one of {sorted(FORMATS)}")
        if channels < 1 or sample_rate_hz < 1 or block_frames < 1 or buffer_blocks < 1:
            raise AudioError(f"audio '{device}': channels, sample_rate_hz, block_frames and"
                             " buffer_blocks must be positive")
        if stall_timeout_s <= 0:
            raise AudioError(f"audio '{device}': stall_timeout_s must be positive")
        prefix = [arecord] if isinstance(arecord, str) else list(arecord)
        if not prefix or _resolve(prefix[0]) is None:
            program = prefix[0] if prefix else "<empty>"
            raise AudioError(f"audio '{device}': capture program '{program}' not found or not"
                             " executable; install alsa-utils (arecord) or set its path")
        self.device = device
        self.channels, self.sample_rate_hz, self.block_frames = (
            channels, sample_rate_hz, block_frames)
        self.stall_timeout_s, self.restart_delay_s = stall_timeout_s, restart_delay_s
        self.sample_format = sample_format
        # Named in log lines: the program, or the script when the prefix is interpreter + script.
        self.program = os.path.basename(prefix[1] if len(prefix) > 1 else prefix[0])
        self.argv = [*prefix, "-D", device, "-c", str(channels), "-r", str(sample_rate_hz),
                     "-f", sample_format, "-t", "raw"]
        dtype, self._full_scale = FORMATS[sample_format]
        self._dtype = np.dtype(dtype)
        self._frame_bytes = self._dtype.itemsize * channels
        self._block_bytes = self._frame_bytes * block_frames

        self.device_overruns = 0  # "overrun!!!" lines from arecord
        self.dropped_blocks = 0  # blocks pushed out of the full buffer
        self.stalls = 0
        self.restarts = 0
        self.exits = 0  # times arecord ended on its own
        self.bytes_in = 0
        self.last_error = ""  # arecord's last stderr line that was not an overrun

        self._queue: collections.deque[AudioBlock] = collections.deque(maxlen=buffer_blocks)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._closed = False
        self._proc: subprocess.Popen[bytes] | None = None
        self._starts = 0
        self._next_start = 0.0
        self._last_data = 0.0
        self._last_reason = ""
        self._pending = bytearray()
        self._stderr_tail = b""
        self._index = 0
        self._anchor: float | None = None  # time.time() of the first sample of this run
        self._run_frames = 0  # frames cut into blocks in this run
        self._next_t: float | None = None  # where the previous run's next block would start
        self._thread = threading.Thread(target=self._run, name=f"audio-{device}", daemon=True)
        self._thread.start()

    @property
    def overruns(self) -> int:
        return self.device_overruns + self.dropped_blocks

    # -- consumer side --------------------------------------------------------------------

    def read_block(self, timeout_s: float) -> AudioBlock | None:
        """The oldest queued block, or None if none arrives within `timeout_s`."""
        with self._cond:
            if not self._queue and not self._closed:
                self._cond.wait_for(lambda: bool(self._queue) or self._closed,
                                    max(0.0, timeout_s))
            return self._queue.popleft() if self._queue else None

    def close(self) -> None:
        """Stop the capture thread and kill arecord; idempotent."""
        if self._closed:
            return
        self._stop.set()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> AlsaSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- capture thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                if self._proc is None:
                    if time.monotonic() >= self._next_start:
                        self._start()
                    else:
                        self._stop.wait(_POLL_S)
                    continue
                self._pump()
                if (self._proc is not None
                        and time.monotonic() - self._last_data > self.stall_timeout_s):
                    self.stalls += 1
                    log.warning("audio '%s': no data from %s for %.1f s (stall_timeout_s);"
                                " killing and restarting it (stall %d)", self.device,
                                self.program, self.stall_timeout_s, self.stalls)
                    self._end_run()
                    self._next_start = 0.0
        except Exception:  # the thread must not die silently: say why, then stop capturing
            log.exception("audio '%s': capture thread failed", self.device)
        finally:
            self._end_run()

    def _start(self) -> None:
        try:
            proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
                                    start_new_session=True)
        except OSError as exc:
            self._note_failure(f"cannot start {self.argv[0]}: {exc}")
            return
        self._starts += 1
        if self._starts > 1:
            self.restarts += 1
        self._proc = proc
        self._last_data = time.monotonic()
        self._pending.clear()
        self._stderr_tail = b""
        self._anchor = None
        self._run_frames = 0
        log.debug("audio '%s': started %s (pid %d)", self.device, " ".join(self.argv), proc.pid)

    def _pump(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stdout is not None and proc.stderr is not None
        out_fd = proc.stdout.fileno()
        err_fd = None if proc.stderr.closed else proc.stderr.fileno()
        ready, _, _ = select.select([out_fd] if err_fd is None else [out_fd, err_fd], [], [],
                                    _POLL_S)
        if err_fd is not None and err_fd in ready:
            chunk = os.read(err_fd, 4096)
            if chunk:
                self._on_stderr(chunk)
            else:
                proc.stderr.close()
        if out_fd in ready:
            data = os.read(out_fd, _READ_BYTES)
            if data:
                self._on_data(data)
            else:
                self._on_exit()

    def _on_data(self, data: bytes) -> None:
        now = time.time()
        self._last_data = time.monotonic()
        self.bytes_in += len(data)
        if self._anchor is None:
            # These bytes were captured before they arrived: back-date by their duration.
            self._anchor = now - (len(data) // self._frame_bytes) / self.sample_rate_hz
            if self._next_t is not None:
                gap = self._anchor - self._next_t
                self._index += max(0, int(gap * self.sample_rate_hz // self.block_frames))
        self._pending += data
        while len(self._pending) >= self._block_bytes:
            raw = bytes(self._pending[:self._block_bytes])
            del self._pending[:self._block_bytes]
            pcm = np.frombuffer(raw, dtype=self._dtype).reshape(self.block_frames, self.channels)
            samples = (pcm.astype(np.float32) * np.float32(1.0 / self._full_scale))
            block = AudioBlock(samples=samples, sample_rate_hz=self.sample_rate_hz,
                               t_capture=self._anchor + self._run_frames / self.sample_rate_hz,
                               index=self._index)
            self._index += 1
            self._run_frames += self.block_frames
            self._next_t = self._anchor + self._run_frames / self.sample_rate_hz
            with self._cond:
                if len(self._queue) == self._queue.maxlen:
                    self.dropped_blocks += 1
                self._queue.append(block)  # a full deque drops its oldest
                self._cond.notify()

    def _on_stderr(self, chunk: bytes) -> None:
        *lines, self._stderr_tail = (self._stderr_tail + chunk).split(b"\n")
        for raw in lines:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            if "overrun" in line.lower():
                self.device_overruns += 1
                log.debug("audio '%s': %s", self.device, line)
            elif line.startswith("Recording "):
                log.debug("audio '%s': %s", self.device, line)
            else:
                self.last_error = line
                log.debug("audio '%s': %s says: %s", self.device, self.program, line)

    def _on_exit(self) -> None:
        proc = self._proc
        assert proc is not None and proc.stderr is not None
        code = None
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = proc.wait(timeout=1.0)
        # Its last words explain the exit ("audio open error: Device or resource busy").
        while not proc.stderr.closed and select.select([proc.stderr], [], [], 0)[0]:
            chunk = os.read(proc.stderr.fileno(), 4096)
            if not chunk:
                break
            self._on_stderr(chunk)
        if self._stderr_tail:
            self._on_stderr(b"\n")
        self.exits += 1
        said = f": {self.last_error}" if self.last_error else ""
        self._end_run()
        self._note_failure(f"{self.program} exited with code {code}{said}")

    def _note_failure(self, reason: str) -> None:
        # A missing device fails every restart: one warning per distinct reason, not a flood.
        level = logging.WARNING if reason != self._last_reason else logging.DEBUG
        log.log(level, "audio '%s': %s; restarting in %.1f s", self.device, reason,
                self.restart_delay_s)
        self._last_reason = reason
        self._next_start = time.monotonic() + self.restart_delay_s

    def _end_run(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                proc.kill()
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                # Stuck in the driver (uninterruptible sleep): leave it, the pipe is ours no
                # longer and the kernel reaps it when the driver lets go.
                log.error("audio '%s': %s (pid %d) did not die on SIGKILL; abandoning it",
                          self.device, self.program, proc.pid)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
