"""Audio capture: fixed-size blocks of multichannel PCM as float32 (frames x channels).

Backends: `alsa` (an arecord pipe in its own process), `wav` (a file), `fake`, `sim`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class AudioBlock:
    samples: np.ndarray  # float32, shape (frames, channels), full scale = 1.0
    sample_rate_hz: int
    t_capture: float  # time.time() of the block's first sample
    index: int  # blocks since the source opened; a jump means blocks were lost
