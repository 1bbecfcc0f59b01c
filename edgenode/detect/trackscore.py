"""Track scores: the log-likelihood ratio "a real object" vs "chance alignment of false plots"
that decides when a tentative track is confirmed (sequential probability ratio test, Blackman
and Popoli, "Design and Analysis of Modern Tracking Systems", 6.2).

Each measurement a track takes adds
    ln Pd + ln N(innovation; 0, S) - ln(density of false measurements there)
and each radar frame that brings plots but none for a ranged tentative track adds ln(1 - Pd).
The false-measurement density is what makes this physics rather than a hit count: a radar's
CFAR false alarms fall evenly over its range bins, so per cubic metre they crowd near the
antenna (the same alarm rate spread over a volume that grows with r^2). Three plots in a row
near the mast are weak evidence; three at 40 m in a 2 m gate are strong. The density is learnt
on site, per range ring, from the plots no confirmed track takes, so a node under trees or
next to a fence holds tracks to a higher bar there than in open sky.

Acoustic bearings come from a detector that already decided "drone"; a report that is wrong
is a sidelobe or a reflection somewhere on the circle. Successive reports overlap in time (the
analysis windows do) and are not independent: each counts in proportion to the time since the
track's last one, up to `decorrelation_s`.
"""

from __future__ import annotations

import math

import numpy as np

LOG_2PI = math.log(2.0 * math.pi)


class FalsePlotDensity:
    """Expected false radar plots per frame per cubic metre, learnt per range ring.

    Rings are `ring_m` deep; each holds an exponential average (time constant
    `time_constant_s`) of the plots per frame that no confirmed track took. Before the average
    has seen anything it is the prior: `prior_per_frame` plots spread evenly to
    `prior_range_m`. The coverage's angular extent is the envelope of the plots seen (at least
    `min_azimuth_span_deg` by `min_elevation_span_deg`)."""

    def __init__(self, *, ring_m: float = 5.0, max_range_m: float = 400.0,
                 time_constant_s: float = 60.0, prior_per_frame: float = 1.5,
                 prior_range_m: float = 120.0, floor_per_frame: float = 0.05,
                 min_azimuth_span_deg: float = 60.0, min_elevation_span_deg: float = 20.0):
        self.ring_m = ring_m
        self.n = math.ceil(max_range_m / ring_m)
        rings_in_prior = max(prior_range_m / ring_m, 1.0)
        self.rate = np.where(np.arange(self.n) * ring_m < prior_range_m,
                             prior_per_frame / rings_in_prior, 0.0)
        # Spread over the coverage: no ring is ever believed perfectly clean.
        self.floor = floor_per_frame / self.n
        self.time_constant_s = time_constant_s
        self.az_lo = self.az_hi = 0.0
        self.el_max = 0.0
        self.min_az_span = math.radians(min_azimuth_span_deg)
        self.min_el_span = math.radians(min_elevation_span_deg)
        self._t_last: float | None = None

    def ring(self, range_m: float) -> int:
        return min(int(range_m / self.ring_m), self.n - 1)

    def learn(self, t: float, range_m: np.ndarray, azimuth_node_rad: np.ndarray,
              elevation_rad: np.ndarray, false: np.ndarray) -> None:
        """One radar frame's plots; `false`: those no confirmed track took."""
        if len(range_m):
            self.az_lo = min(self.az_lo, float(azimuth_node_rad.min()))
            self.az_hi = max(self.az_hi, float(azimuth_node_rad.max()))
            self.el_max = max(self.el_max, float(np.abs(elevation_rad).max()))
        dt = 0.1 if self._t_last is None else min(max(t - self._t_last, 0.0), 2.0)
        self._t_last = t
        a = 1.0 - math.exp(-dt / self.time_constant_s)
        counts = np.bincount(np.minimum((range_m[false] / self.ring_m).astype(np.int64),
                                        self.n - 1), minlength=self.n)
        self.rate += a * (counts - self.rate)

    def log_densities(self, range_m: list[float], elevation_rad: list[float]) -> list[float]:
        """log_density() of many places, with the coverage worked out once."""
        az_span = max(self.az_hi - self.az_lo, self.min_az_span)
        el_span = max(2.0 * self.el_max, self.min_el_span)
        rate, floor, ring_m, last = self.rate.tolist(), self.floor, self.ring_m, self.n - 1
        log, cos = math.log, math.cos
        out = []
        for rng, el in zip(range_m, elevation_rad, strict=True):
            per_ring = max(rate[min(int(rng / ring_m), last)], floor)
            r = max(rng, 1.0)
            volume = ring_m * az_span * el_span * r * r * max(cos(el), 0.1)
            out.append(log(per_ring / volume))
        return out

    def log_density(self, range_m: float, elevation_rad: float) -> float:
        """ln of false plots per frame per m^3 at that range and elevation."""
        az_span = max(self.az_hi - self.az_lo, self.min_az_span)
        el_span = max(2.0 * self.el_max, self.min_el_span)
        per_ring = max(float(self.rate[self.ring(range_m)]), self.floor)
        r = max(range_m, 1.0)
        # Polar cell (dr, daz, del) -> volume r^2 cos(el) dr daz del.
        volume = self.ring_m * az_span * el_span * r * r * max(math.cos(elevation_rad), 0.1)
        return math.log(per_ring / volume)


def gaussian_log(d2: float, logdet: float, dof: int) -> float:
    """ln N(innovation; 0, S) from its Mahalanobis d^2 and ln det S."""
    return -0.5 * (d2 + logdet + dof * LOG_2PI)


def doppler_log_ratio(nu: float, s: float, span_mps: float, outlier: float = 0.2) -> float:
    """ln of how much better a radial speed fits the track than a false plot's (uniform over
    the radar's span). A share `outlier` of a real object's plots can be anywhere: rotor
    micro-Doppler, aliasing."""
    uniform = 1.0 / span_mps
    fit = math.exp(-0.5 * nu * nu / s) / math.sqrt(2.0 * math.pi * s)
    return math.log((1.0 - outlier) * fit + outlier * uniform) - math.log(uniform)
