"""Radars: one module per protocol, bytes in, `RadarFrame` out.

Add a module by writing one file here with a parser class (`feed(data, t) -> list[RadarFrame]`)
and naming it in `PARSERS`.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass, field

import numpy as np

# Columns of RadarFrame.points, in the radar's own frame: x right of boresight, y along
# boresight, z up (metres); radial speed (m/s, negative = approaching); snr and noise (dB).
POINT_COLUMNS = ("x_m", "y_m", "z_m", "doppler_mps", "snr_db", "noise_db")


def empty_points() -> np.ndarray:
    return np.zeros((0, len(POINT_COLUMNS)), dtype=np.float32)


@dataclass
class RadarFrame:
    frame_number: int
    t_capture: float  # time.time() when the frame's last byte arrived
    points: np.ndarray = field(default_factory=empty_points)  # float32 (N, 6), POINT_COLUMNS
    stats: object | None = None  # the radar's own per-frame statistics where it sends them

    def __eq__(self, other: object) -> bool:
        # NaN marks a value the radar did not send (e.g. no side info), so NaN equals NaN here
        return (isinstance(other, RadarFrame) and self.frame_number == other.frame_number
                and np.array_equal(self.points, other.points, equal_nan=True))


def points_digest(points: np.ndarray) -> str:
    """A short digest of a frame's points as the wire carries them: x, y, z, doppler as
    float32, snr and noise in whole 0.1 dB. Lets a test match decoded frames to emitted ones."""
    pts = np.asarray(points, dtype=np.float32).reshape(-1, len(POINT_COLUMNS))
    tenths = np.nan_to_num(np.round(pts[:, 4:6].astype(np.float64) * 10)).astype(np.int32)
    raw = np.ascontiguousarray(pts[:, :4]).tobytes() + tenths.tobytes()
    return hashlib.sha1(raw).hexdigest()[:16]


PARSERS = {
    "ti-mmwave": "hal.radar.ti_mmwave:TiMmwaveParser",
    "ops243": "hal.radar.ops243:Ops243Parser",
}


def make_parser(model: str) -> object:
    """A new parser for the named radar model (a key of PARSERS)."""
    try:
        module_name, cls_name = PARSERS[model].split(":")
    except KeyError:
        raise ValueError(f"radar model '{model}' unknown; known: {sorted(PARSERS)}") from None
    return getattr(importlib.import_module(module_name), cls_name)()
