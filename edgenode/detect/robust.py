"""Robust statistics of short tracks, in plain Python: a few dozen points, where numpy's
per-call cost dominates."""

from __future__ import annotations


def median(values: list[float]) -> float:
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
    slope = sum(xi * (yi - y_mean) for xi, yi in zip(xc, y, strict=True)) / sum(
        xi * xi for xi in xc)
    resid = [yi - y_mean - slope * xi for xi, yi in zip(xc, y, strict=True)]
    centre = median(resid)
    return 1.4826 * median([abs(r - centre) for r in resid])
