"""Capture times of radar frames from their frame numbers, not from when their bytes arrived.

The radar captures a frame every period on its own clock; the bytes reach us later, by a
varying amount, and a reader that was not scheduled for a while gets several frames in one
read. Stamping frames on arrival then gives the tracker zero and double time steps exactly
when the host is busiest. A frame can never arrive before it was captured, so the earliest
arrival relative to the frame-number schedule bounds the capture clock: over a sliding
window, offset = min(arrival - number * period), and a frame's time is offset + its number
* period. The window lets the offset follow the drift between the radar's crystal and ours.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from pathlib import Path

log = logging.getLogger(__name__)

# A frame whose schedule time lags its arrival by more than this means the schedule no longer
# fits the radar (wrong period, radar restarted without a number reset): start again.
MAX_LAG_S = 0.5


class FrameClock:
    """Stamp frames `offset + number * period_s`; `stamp(number, arrival)` per frame in order.

    `resets` counts re-anchorings after the first frame (the frame number went backwards: a
    radar restart; or a frame lagged its schedule by more than MAX_LAG_S: a wrong period).
    """

    def __init__(self, period_s: float, window_frames: int = 100) -> None:
        if not period_s > 0:
            raise ValueError(f"radar frame period must be > 0 s, not {period_s!r}")
        self.period_s = period_s
        self.resets = 0
        self._window: deque[tuple[int, float]] = deque()  # (number, offset), offsets ascending
        self._window_frames = window_frames
        self._last_number: int | None = None

    def stamp(self, number: int, arrival: float) -> float:
        if self._last_number is not None and number <= self._last_number:
            self._reset(f"frame number went back from {self._last_number} to {number}")
        self._last_number = number
        offset = arrival - number * self.period_s
        # Monotonic deque: the front is the window's minimum offset.
        window = self._window
        while window and window[-1][1] >= offset:
            window.pop()
        window.append((number, offset))
        while window[0][0] <= number - self._window_frames:
            window.popleft()
        t = window[0][1] + number * self.period_s
        if arrival - t > MAX_LAG_S:
            self._reset(f"frame {number} arrived {arrival - t:.2f} s after its schedule time "
                        f"at a {self.period_s * 1000:g} ms period")
            window.append((number, offset))
            t = arrival
        return t

    def _reset(self, why: str) -> None:
        log.warning("radar: frame clock re-anchored: %s", why)
        self.resets += 1
        self._window.clear()


_FRAME_CFG = re.compile(r"^\s*frameCfg\s+(\S+\s+){4}(?P<period>[0-9.]+)")


def chirp_frame_period_s(path: Path) -> float | None:
    """The framePeriodicity (ms) of a TI chirp configuration's `frameCfg` line, in seconds;
    None without one (advanced frame configs)."""
    for line in path.read_text().splitlines():
        m = _FRAME_CFG.match(line)
        if m:
            return float(m.group("period")) / 1000.0
    return None
