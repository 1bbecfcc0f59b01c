"""Values passed between the detection stages."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AcousticBearing:
    """One direction finding on a detected harmonic source."""

    t: float  # unix seconds, the analysis block's centre
    azimuth_deg: float  # true bearing, clockwise from north
    elevation_deg: float | None  # None where the array geometry cannot tell
    error_deg: float  # one-sigma uncertainty of the azimuth
    f0_hz: float | None
    score: float
    # Seconds of audio the bearing integrates: bearings issued more often than that share
    # their data, and the tracker counts them as the independent ones they add up to.
    span_s: float = 0.0
