"""The digital twin's microphone array, reached over its Unix socket (the `sim` backend).

The twin streams blocks of multichannel PCM as the scenario clock passes them. A reader
thread takes them off the socket into a short queue; when nobody reads in time the oldest
block is dropped (an overrun). When nothing comes for `stall_timeout_s` (the `mic-dead`
fault, or the twin gone) the stream counts a stall and reconnects, like the ALSA backend
restarting arecord.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading

import numpy as np

from hal.ports.audio import AudioBlock, AudioError
from hal.sim.protocol import LineSocket

log = logging.getLogger(__name__)


class SimAudioSource:
    def __init__(self, device: str, channels: int, sample_rate_hz: int, block_frames: int,
                 stall_timeout_s: float = 2.0, queue_blocks: int = 8):
        if not device:
            raise AudioError("sim audio: needs the twin's socket path as device")
        self.device = device
        self.channels, self.sample_rate_hz, self.block_frames = (
            channels, sample_rate_hz, block_frames)
        self.stall_timeout_s = stall_timeout_s
        self.overruns = self.stalls = self.restarts = 0
        self._queue: queue.Queue[AudioBlock] = queue.Queue(maxsize=queue_blocks)
        self._stop = threading.Event()
        self._index = 0
        self._sock: socket.socket | None = None
        # Fail early on a wrong path or a channel count the twin's array does not have.
        self._connect()
        self._thread = threading.Thread(target=self._run, name="sim-audio", daemon=True)
        self._thread.start()

    def _connect(self) -> LineSocket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.stall_timeout_s)
        try:
            sock.connect(self.device)
            conn = LineSocket(sock)
            for request in ({"op": "hello", "kind": "audio", "name": "audio"},
                            {"op": "audio.open", "channels": self.channels,
                             "sample_rate_hz": self.sample_rate_hz,
                             "block_frames": self.block_frames}):
                conn.send(request)
                answer = conn.recv_line()
                if answer is None or not answer.get("ok"):
                    reason = "connection closed" if answer is None else answer.get("error")
                    raise AudioError(f"sim audio '{self.device}': {reason}")
        except OSError as exc:
            sock.close()
            raise AudioError(f"sim audio '{self.device}': cannot connect ({exc})") from exc
        except AudioError:
            sock.close()
            raise
        self._sock = sock
        self._base = self._index
        return conn

    def _run(self) -> None:
        conn: LineSocket | None = None
        assert self._sock is not None
        conn = LineSocket(self._sock)
        while not self._stop.is_set():
            if conn is None:
                try:
                    conn = self._connect()
                    self.restarts += 1
                    log.info("sim audio '%s': stream restarted", self.device)
                except AudioError as exc:
                    log.debug("%s", exc)
                    self._stop.wait(0.5)
                    continue
            try:
                header = conn.recv_line()
                payload = conn.recv_exact(header["bytes"]) if header else None
            except TimeoutError:
                self.stalls += 1
                log.warning("sim audio '%s': no block for %.1f s (stall); reconnecting",
                            self.device, self.stall_timeout_s)
                header = payload = None
            except (OSError, ValueError, KeyError) as exc:
                log.warning("sim audio '%s': stream lost (%s)", self.device, exc)
                header = payload = None
            if header is None or payload is None:
                self._drop_connection()
                conn = None
                continue
            self._deliver(header, payload)
        self._drop_connection()

    def _deliver(self, header: dict, payload: bytes) -> None:
        samples = np.frombuffer(payload, dtype="<f4").reshape(header["frames"],
                                                              header["channels"])
        # The twin numbers each stream's blocks from 0; a block it skipped shows as a jump.
        block = AudioBlock(samples=samples.astype(np.float32, copy=False),
                           sample_rate_hz=self.sample_rate_hz, t_capture=header["t"],
                           index=self._base + header["index"])
        self._index = block.index + 1
        try:
            self._queue.put_nowait(block)
        except queue.Full:
            with contextlib.suppress(queue.Empty):
                self._queue.get_nowait()
            self.overruns += 1
            self._queue.put_nowait(block)

    def _drop_connection(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def read_block(self, timeout_s: float) -> AudioBlock | None:
        try:
            return self._queue.get(timeout=max(0.0, timeout_s))
        except queue.Empty:
            return None

    def close(self) -> None:
        self._stop.set()
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=max(1.0, self.stall_timeout_s + 0.5))
        self._drop_connection()
