"""A wandering line and the broken lines that move with it: one shaft seen in fragments.

Every line of one rotating shaft scales with its speed: when its strongest line moves by 1 %,
its other lines move by 1 % too, so their frequency ratio holds while both wander. LinePairs
asks for both lines strong in most blocks. Recorded from further off, a small quad may show
one line that holds and partners that come and go (here one block in three). This path
follows the line most blocks hold (the reference), and in the blocks where some other line
stands at a steady ratio to it, compares that ratio's spread with the lines' own wander:
one shaft's ratio holds far more tightly than its lines wander, while for two sources that
wander independently the ratio wanders as much as the lines do. A steady line proves
nothing here, so the lines must wander; and a straight-line trend (Doppler, a slow speed
change) is taken out of the wander first, since it keeps the ratio of independent lines as
well.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgenode.detect.lines import LineHistory
from edgenode.detect.rank import MAD_TO_SIGMA, detrended_spread, median


@dataclass(frozen=True)
class CoMovingParams:
    window_s: float = 1.5
    presence: float = 0.6  # share of the window's blocks that hold the reference line
    partner_presence: float = 0.25  # share of the window's blocks that hold the partner
    follow: float = 0.2  # log f: how far a rotor line strays from its median in a window
    step: float = 0.03  # log f: how far a followed line moves between consecutive hops
    ratio_gate: float = 0.02  # log ratio: a partner's blocks are gathered this close
    locked: float = 0.3  # the ratio's spread over the lines' wander: one shaft is below
    min_ratio: float = 1.1  # a partner is another line, not the reference's own skirt


@dataclass(frozen=True)
class CoMoving:
    reference_hz: float
    partner_hz: float
    blocks: int  # blocks that held both
    ratio_spread: float  # MAD spread of their log ratio
    wander: float  # detrended spread of the reference's log frequency in those blocks
    level_db: float  # the pair's median summed dB over the floor in those blocks


class CoMovingLines:
    """The strongest free lines of each block over the window (log Hz, dB over the floor),
    taken from the detector's LineHistory when best() needs them."""

    def __init__(self, hop_s: float, lines: int, p: CoMovingParams | None = None) -> None:
        self.p = p = p or CoMovingParams()
        self.width = max(4, round(p.window_s / hop_s))
        self._logf = np.full((self.width, lines), np.nan)  # NaN: no line
        self._db = np.zeros((self.width, lines))
        self._pending = np.zeros(self.width, dtype=bool)
        self._row = -1
        self._filled = 0

    def push(self) -> None:
        """A new block is in the history."""
        self._row = (self._row + 1) % self.width
        self._filled = min(self._filled + 1, self.width)
        self._pending[self._row] = True

    def _record(self, row: int, lines: list[tuple[float, float]]) -> None:
        logf, db = self._logf[row], self._db[row]
        logf[:] = np.nan
        db[:] = 0.0
        for i, (hz, level) in enumerate(lines[: len(logf)]):
            logf[i], db[i] = math.log(hz), level
        self._pending[row] = False

    def best(self, history: LineHistory, min_wander: float) -> CoMoving | None:
        """The reference line's best partner over the window, if they move as one."""
        p = self.p
        if self._filled < self.width:
            return None
        for row in np.flatnonzero(self._pending).tolist():
            self._record(row, history.lines((self._row - row) % self.width))
        if np.count_nonzero(np.isfinite(self._logf[:, 0])) < p.presence * self.width:
            return None
        order = (self._row + 1 + np.arange(self.width)) % self.width  # oldest first
        logf, db = self._logf[order], self._db[order]
        found = _follow(logf, p.follow)
        if found is None:
            return None
        rows, pick = found
        ref = logf[rows, pick]
        if (len(rows) < p.presence * self.width
                or np.any(np.abs(np.diff(ref))[np.diff(rows) == 1] >= p.step)):
            return None
        # Every other line of those blocks, as its log ratio to the reference.
        others = logf[rows].copy()
        others[np.arange(len(rows)), pick] = np.nan
        ratio = others - ref[:, None]
        ratio[np.abs(ratio) < math.log(p.min_ratio)] = np.nan
        found = _follow(ratio, p.ratio_gate)
        if found is None:
            return None
        sub, col = found
        if len(sub) < p.partner_presence * self.width:
            return None
        held = rows[sub]
        pair = ratio[sub, col]
        ref_held = ref[sub]
        wander = detrended_spread(held.tolist(), ref_held.tolist())
        spread = MAD_TO_SIGMA * median(np.abs(pair - median(pair)))
        if wander < min_wander or spread > p.locked * wander:
            return None
        ref_hz = math.exp(median(ref_held))
        level = median(db[held, pick[sub]] + db[held, col])
        return CoMoving(reference_hz=ref_hz, partner_hz=ref_hz * math.exp(median(pair)),
                        blocks=len(sub), ratio_spread=spread, wander=wander, level_db=level)


def _follow(values: np.ndarray, gate: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(rows, column) of the value the most rows of a (rows, K) table (NaN: empty) hold
    within gate, in each such row the entry nearest to it."""
    seeds = values[np.isfinite(values)]
    if len(seeds) == 0:
        return None
    dist = np.abs(values[None] - seeds[:, None, None])  # (S, rows, K)
    dist[~np.isfinite(dist)] = np.inf
    near = dist.min(axis=2)
    held = near < gate
    seed = int(np.argmax(np.add.reduce(held, axis=1)))
    rows = np.flatnonzero(held[seed])
    return rows, np.argmin(dist[seed][rows], axis=1)
