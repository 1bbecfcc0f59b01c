"""A rotor heard by the direction its combs come from, where no single f0 holds.

Beside a generator whose lines hide some of a drone's harmonics, the blocks' best comb can
be any of the drone's harmonic subsets: its f0 reads 88, 176, 265 or 354 Hz from block to
block, and no f0 track holds the half second the comb path needs (doa-dev case_006 and
case_007, DRONE_010). Every one of those combs, whatever its f0, is made of the same
source's lines, and on an array they come from one direction. So this path tracks the
blocks' bearings instead of their f0.

What makes that evidence of a rotor and not of a machine:
- Noise peaks make combs too, but from anywhere: their bearings (errors of 5-10 deg) fall
  at random, and seldom within agree_deg of one another three times in each of three
  seconds (a bearing per window length, ~11 a second, as the comb path takes them).
- A steady machine's lines are free peaks only until the masks learn them (StationaryLines):
  the short-bin occupancy within about 1.5 s, the fine spectrum's 3 s average within about
  that. Until then its combs come from its direction in nearly every block (in 100 made
  generator-only cases, from switch-on: 2132 such blocks in the first second, 56 in the
  second, 10 in the third, none after). So the direction must hold in each of `segments`
  seconds in a row, longer than the slowest mask takes: lines that keep making free combs
  from one place for that long are not standing still. (Over two seconds, four of the
  hundred generator-only cases and one of ten generators switched on mid-run would pass.)
- What a machine's lines leave once masked (a line between two short bins, a drifting
  governor's harmonic) comes from the machine: a direction within machine_deg of where the
  held lines (StationaryLines.held_mask) come from is not taken.
- A helicopter is vetoed by its main-rotor comb, as for every path, and its governed
  rotors' lines are masked like a machine's. Where the veto misses it (wind hides the main
  rotor), nothing here tells it from a drone (docs/detection.md, known limits).

It needs an array that resolves direction, and it decides only where the comb path did not.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DirectionParams:
    segment_s: float = 1.0
    segments: int = 3  # seconds in a row: longer than the masks take to learn a steady line
    per_segment: int = 3  # bearings a second that agree (of ~11: one per window length)
    # A comb's bearing scatters about 1 deg at 6 dB (doa-dev and 40 made cases: median 0.5-1
    # deg, 90 % within 2.2 deg); a bearing at random lands within 3 deg one time in 60.
    agree_deg: float = 3.0
    machine_deg: float = 20.0  # not within this of the held lines' direction


def angle_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


class OneDirection:
    """The azimuths (node frame, or None) of the last `segments` seconds of blocks' combs."""

    def __init__(self, hop_s: float, p: DirectionParams | None = None) -> None:
        self.p = p = p or DirectionParams()
        self.segment = max(1, round(p.segment_s / hop_s))
        self._azimuths: deque[float | None] = deque(maxlen=self.segment * p.segments)
        self._count = 0  # azimuths (not None) held

    def push(self, azimuth_deg: float | None) -> None:
        if len(self._azimuths) == self._azimuths.maxlen and self._azimuths[0] is not None:
            self._count -= 1
        self._azimuths.append(azimuth_deg)
        if azimuth_deg is not None:
            self._count += 1

    def held(self) -> float | None:
        """The direction the newest block's comb shares with enough blocks in every segment,
        or None."""
        p = self.p
        if (len(self._azimuths) < self._azimuths.maxlen or self._azimuths[-1] is None
                or self._count < p.per_segment * p.segments):
            return None
        newest = self._azimuths[-1]
        # Around the newest bearing (it must agree itself): the median of those near it.
        near = [(i, a) for i, a in enumerate(self._azimuths)
                if a is not None and angle_diff(a, newest) <= 2.0 * p.agree_deg]
        centre = (newest + float(np.median([(a - newest + 180.0) % 360.0 - 180.0
                                            for _, a in near]))) % 360.0
        if angle_diff(centre, newest) > p.agree_deg:
            return None
        counts = [0] * p.segments
        for i, a in near:
            if angle_diff(a, centre) <= p.agree_deg:
                counts[i // self.segment] += 1
        return centre if min(counts) >= p.per_segment else None

    def clear_of(self, azimuth_deg: float, machine_deg: float | None) -> bool:
        """Whether the direction is away from where the held lines come from."""
        return machine_deg is None or angle_diff(azimuth_deg, machine_deg) >= self.p.machine_deg

