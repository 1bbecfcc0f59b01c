"""Medians and robust spreads without scipy's and numpy's per-call overhead.

The detector takes a running median and a few medians on every block or judgement; at a few
hundred values, median_filter's set-up and np.median's checks cost more than the selection.
Its tracks (f0 over half a second, a line over a window) are a few dozen points."""

from __future__ import annotations

import operator
from collections.abc import Callable

import numpy as np
from scipy.ndimage import median_filter

MAD_TO_SIGMA = 1.4826  # median absolute deviation -> standard deviation, for normal noise


def _rank_filter_core() -> Callable | None:
    """scipy's 1-D rank filter that median_filter dispatches to (private, recent scipy), if
    it gives median_filter's result here; else None."""
    try:
        from scipy.ndimage._rank_filter_1d import rank_filter
        probe = np.random.default_rng(0).standard_normal(64)
        out = np.empty_like(probe)
        rank_filter(probe, 4, 9, out, _MODE_NEAREST, 0.0, 0)
    except Exception:  # absent or changed: the public path
        return None
    return rank_filter if np.array_equal(out, median_filter(probe, 9, mode="nearest")) else None


_MODE_NEAREST = 0  # scipy.ndimage's code for mode="nearest"
_RANK_FILTER = _rank_filter_core()


def running_median(values: np.ndarray, size: int, out: np.ndarray) -> np.ndarray:
    """median_filter(values, size, mode="nearest") written into out. median_filter's per-call
    set-up costs more than the filter itself, so its 1-D core is called where it is known."""
    if _RANK_FILTER is None:
        return median_filter(values, size=size, mode="nearest", output=out)
    _RANK_FILTER(values, size // 2, size, out, _MODE_NEAREST, 0.0, 0)
    return out


def row_median(a: np.ndarray) -> np.ndarray:
    """np.median(a, axis=1) from one partition, without np.median's overhead."""
    n = a.shape[1]
    mid = n // 2
    if n % 2:
        return np.partition(a, mid, axis=1)[:, mid]
    halves = np.partition(a, (mid - 1, mid), axis=1)
    return 0.5 * (halves[:, mid - 1] + halves[:, mid])


def median(values: np.ndarray) -> float:
    """np.median of a 1-D array of finite values."""
    return float(row_median(values[None, :])[0])


# Tracks of a few dozen points: plain Python, where numpy's per-call cost dominates.

def small_median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def detrended_spread(x: list[float], y: list[float]) -> float:
    """Robust (MAD) spread of y about its straight-line fit over x."""
    n = len(y)
    if n < 3:
        return 0.0
    x_mean, y_mean = sum(x) / n, sum(y) / n
    xc = [xi - x_mean for xi in x]
    yc = [yi - y_mean for yi in y]
    # Sums over map(): the same products in the same order, without a generator's cost.
    slope = sum(map(operator.mul, xc, yc)) / sum(map(operator.mul, xc, xc))
    resid = [v - slope * xi for xi, v in zip(xc, yc, strict=True)]
    centre = small_median(resid)
    return MAD_TO_SIGMA * small_median([abs(r - centre) for r in resid])


def max3(values: np.ndarray) -> np.ndarray:
    """Maximum over each element and its two neighbours (maximum_filter1d(values, 3) without
    its per-call overhead; the edges see their one neighbour, as 'reflect' does)."""
    out = values.copy()
    np.maximum(out[1:], values[:-1], out=out[1:])
    np.maximum(out[:-1], values[1:], out=out[:-1])
    return out
