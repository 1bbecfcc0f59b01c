"""OmniPreSense OPS243 (-A Doppler, -C Doppler + FMCW) over USB CDC or UART, JSON mode (`OJ`).

In JSON mode every report is one line, e.g. (API spec AN-010):

    {"unit":"mps","speed":-1.2}                      speed report (OU: unit sent with it)
    {"unit":"m","range":3.4}                         range report (-C, FMCW)
    {"magnitude":[120,80],"speed":[2.1,-0.4]}        O2..O9: several objects per report
    {"speed":0.58,"direction":"inbound"}             older firmware: unsigned speed + direction

Values come as numbers or as strings. Sign: the sensor reports approaching (inbound) objects
with a positive speed and receding (outbound) ones negative; RadarFrame's doppler is negative
when approaching, so the sign is flipped. Units are converted to m/s and metres; a report
without a unit uses the unit the sensor was configured with (`speed_unit`, `range_unit`).

Each report becomes a RadarFrame with one point per object along boresight: x = 0, y = range
(0 in a speed-only report), z = 0, doppler = signed speed (NaN in a range-only report), snr and
noise NaN (the sensor reports a linear FFT magnitude, not dB). Lines that are not JSON objects,
or reports whose values are not numbers, are counted in `garbage`; other JSON lines (replies
to commands such as `{"Product":"OPS243"}`) are counted in `replies`. Nothing raises.
"""

from __future__ import annotations

import json
import logging
import math
import time

import numpy as np

from hal.radar import POINT_COLUMNS, RadarFrame

log = logging.getLogger(__name__)

SPEED_UNITS_MPS = {
    "mps": 1.0, "m-per-sec": 1.0, "m/s": 1.0,
    "cmps": 0.01, "cm-per-sec": 0.01, "cm/s": 0.01,
    "fps": 0.3048, "ft-per-sec": 0.3048, "ft/s": 0.3048,
    "kmph": 1 / 3.6, "kph": 1 / 3.6, "km-per-hr": 1 / 3.6, "km/h": 1 / 3.6,
    "mph": 0.44704,
}
RANGE_UNITS_M = {"m": 1.0, "cm": 0.01, "ft": 0.3048, "in": 0.0254, "inch": 0.0254,
                 "yd": 0.9144}
MAX_LINE_BYTES = 4096  # a report is far shorter; a longer run without a newline is garbage


def _numbers(value: object) -> list[float] | None:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | float | str):
            return None
        try:
            number = float(item)
        except ValueError:
            return None
        if not math.isfinite(number):
            return None
        out.append(number)
    return out


class Ops243Parser:
    """Bytes from the sensor in, one RadarFrame per speed/range report out."""

    def __init__(self, *, name: str = "ops243", speed_unit: str = "mps",
                 range_unit: str = "m") -> None:
        if speed_unit not in SPEED_UNITS_MPS:
            raise ValueError(f"{name}: speed_unit '{speed_unit}' unknown; "
                             f"known: {sorted(SPEED_UNITS_MPS)}")
        if range_unit not in RANGE_UNITS_M:
            raise ValueError(f"{name}: range_unit '{range_unit}' unknown; "
                             f"known: {sorted(RANGE_UNITS_M)}")
        self.name = name
        self.speed_unit, self.range_unit = speed_unit, range_unit
        self.frames = 0
        self.garbage = 0
        self.replies = 0
        self._buf = bytearray()
        self._frame_number = 0

    def feed(self, data: bytes, t: float | None = None) -> list[RadarFrame]:
        """Append bytes; return a frame for every complete report line among them."""
        self._buf += data
        if b"\n" not in data and len(self._buf) <= MAX_LINE_BYTES:
            return []
        if t is None:
            t = time.time()
        *lines, rest = self._buf.split(b"\n")
        if len(rest) > MAX_LINE_BYTES:
            self._garbage(rest[:64], "line too long")
            rest = b""
        self._buf = bytearray(rest)
        out = []
        for raw in lines:
            frame = self._line(raw.strip(), t)
            if frame is not None:
                out.append(frame)
        return out

    def _garbage(self, raw: bytes, why: str) -> None:
        self.garbage += 1
        log.debug("%s: garbage line (%s): %r", self.name, why, raw[:64])

    def _line(self, raw: bytes, t: float) -> RadarFrame | None:
        if not raw:
            return None
        if len(raw) > MAX_LINE_BYTES:
            self._garbage(raw, "line too long")
            return None
        try:
            report = json.loads(raw)
        except (ValueError, RecursionError):
            self._garbage(raw, "not JSON")
            return None
        if not isinstance(report, dict):
            self._garbage(raw, "not a JSON object")
            return None
        if "speed" not in report and "range" not in report:
            self.replies += 1
            return None
        try:
            points = self._points(report)
        except (ValueError, KeyError) as exc:
            self._garbage(raw, str(exc))
            return None
        self._frame_number += 1
        self.frames += 1
        return RadarFrame(self._frame_number, t, points)

    def _points(self, report: dict) -> np.ndarray:
        speeds = ranges = None
        unit = report.get("unit")
        if "speed" in report:
            speeds = _numbers(report["speed"])
            if speeds is None:
                raise ValueError("speed is not a number")
            scale = SPEED_UNITS_MPS[unit if isinstance(unit, str) and unit in SPEED_UNITS_MPS
                                    else self.speed_unit]
            direction = report.get("direction")
            if direction in ("inbound", "outbound"):  # older firmware: unsigned speed
                sign = 1.0 if direction == "inbound" else -1.0
                speeds = [sign * abs(v) for v in speeds]
            speeds = [-v * scale for v in speeds]  # approaching: positive on the wire
        if "range" in report:
            ranges = _numbers(report["range"])
            if ranges is None:
                raise ValueError("range is not a number")
            scale = RANGE_UNITS_M[unit if isinstance(unit, str) and unit in RANGE_UNITS_M
                                  else self.range_unit]
            ranges = [v * scale for v in ranges]
        if speeds is not None and ranges is not None and len(speeds) != len(ranges):
            raise ValueError("speed and range lists differ in length")
        n = len(speeds if speeds is not None else ranges)  # type: ignore[arg-type]
        points = np.zeros((n, len(POINT_COLUMNS)), dtype=np.float32)
        points[:, 1] = ranges if ranges is not None else 0.0
        points[:, 3] = speeds if speeds is not None else np.nan
        points[:, 4:] = np.nan
        return points
