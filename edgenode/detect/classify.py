"""Track classification: drone / bird / aircraft / vehicle / clutter / unknown.

Naive Bayes over the evidence a node has, with physics-based class-conditional likelihoods:
    log P(class | evidence) = log prior + sum_i w_i log p(evidence_i | class) / T  (+ const)
then a softmax to a distribution that sums to 1.
- Each likelihood is mixed with a broad "anything" density (`OUTLIER`), so one odd measurement
  cannot veto a class on its own.
- The features are not independent (speed, hovering and manoeuvre all come from one track),
  so their log-likelihoods are tempered by T: a plain product would be overconfident.
- "unknown" has flat likelihoods: it wins when the evidence fits no class well, and keeps
  a share when there is little evidence.
- Missing evidence (None) contributes nothing: an acoustic-only track has no speed.
Each evidence item's weight is its contribution, in nats, to the winner's log-odds against the
runner-up; the weights plus the prior's add up to that log-odds.

The numbers below are priors from the physics of the classes, not fitted to labelled tracks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CLASSES = ("drone", "bird", "aircraft", "vehicle", "clutter", "unknown")
PRIOR = {"drone": 0.2, "bird": 0.25, "aircraft": 0.1, "vehicle": 0.15, "clutter": 0.15,
         "unknown": 0.15}
TEMPERATURE = 1.5
OUTLIER = 0.03  # share of each class's density given to a broad "anything" density

# Speed of a moving target (m/s): mixtures of (weight, mean, sigma).
SPEED = {
    "drone": [(1.0, 8.0, 6.0)],
    "bird": [(1.0, 11.0, 4.0)],
    "aircraft": [(0.4, 30.0, 12.0), (0.6, 65.0, 25.0)],  # helicopters, then fixed wing
    "vehicle": [(1.0, 14.0, 8.0)],
    "clutter": [(1.0, 1.0, 0.7)],  # a static return's speed is noise
}
SPEED_RANGE_MPS = 300.0
# P(stationary | class): a target slower than HOVER_SPEED_MPS.
HOVER_SPEED_MPS = 1.0
STATIONARY = {"drone": 0.35, "bird": 0.03, "aircraft": 0.02, "vehicle": 0.1, "clutter": 0.97,
              "unknown": 0.3}
# Height above ground (m); the measurement's own error widens each sigma.
HEIGHT = {
    "drone": [(0.3, 8.0, 8.0), (0.7, 50.0, 40.0)],
    "bird": [(1.0, 20.0, 25.0)],
    "aircraft": [(1.0, 300.0, 200.0)],
    "vehicle": [(1.0, 1.0, 1.0)],
    "clutter": [(0.5, 1.0, 3.0), (0.5, 10.0, 10.0)],  # ground, then structures and trees
}
HEIGHT_RANGE_M = 3000.0
# Manoeuvre: RMS change of velocity (m/s^2) over one-second spans.
MANOEUVRE = {
    "drone": [(1.0, 1.0, 1.0)],
    "bird": [(1.0, 2.5, 1.5)],
    "aircraft": [(1.0, 0.3, 0.5)],
    "vehicle": [(1.0, 0.6, 0.7)],
    "clutter": [(1.0, 0.1, 0.3)],
}
MANOEUVRE_RANGE_MPS2 = 10.0
# P(rotor harmonics heard on the bearing | class), when the track is inside acoustic range.
HARMONICS = {"drone": 0.9, "bird": 0.01, "aircraft": 0.1, "vehicle": 0.03, "clutter": 0.01,
             "unknown": 0.1}
# Harmonic fundamental, log2(Hz): small rotors 80-800 Hz, helicopters' main rotors far lower.
F0_LOG2 = {
    "drone": [(1.0, math.log2(200.0), 1.0)],
    "bird": [(1.0, math.log2(300.0), 2.0)],
    "aircraft": [(1.0, math.log2(40.0), 1.2)],
    "vehicle": [(1.0, math.log2(60.0), 1.5)],
    "clutter": [(1.0, math.log2(100.0), 1.5)],
}
F0_LOG2_RANGE = 8.0
# Radar cross-section proxy (dBsm): snr + 40 log10(range) - the radar's calibration.
RCS = {
    "drone": [(1.0, -20.0, 7.0)],
    "bird": [(1.0, -28.0, 7.0)],
    "aircraft": [(1.0, 5.0, 10.0)],
    "vehicle": [(1.0, 10.0, 8.0)],
    "clutter": [(1.0, 0.0, 15.0)],
}
RCS_RANGE_DB = 80.0
# Points per plot: extended objects (vehicles) light up many.
POINTS = {
    "drone": [(1.0, 2.0, 2.0)],
    "bird": [(1.0, 1.5, 1.5)],
    "aircraft": [(1.0, 3.0, 3.0)],
    "vehicle": [(1.0, 6.0, 4.0)],
    "clutter": [(1.0, 3.0, 3.0)],
}
POINTS_RANGE = 20.0
# How much each kind of evidence counts (tempering on top of TEMPERATURE): weak proxies less.
FEATURE_WEIGHT = {"speed_mps": 1.0, "hovering": 1.0, "height_m": 1.0, "manoeuvre_mps2": 0.5,
                  "harmonics": 1.5, "f0_hz": 0.7, "rcs_dbsm": 0.5, "points_per_plot": 0.3}


@dataclass(frozen=True)
class TrackFeatures:
    """What a track tells the classifier; None where the node does not know."""

    speed_mps: float | None = None
    height_m: float | None = None
    height_error_m: float = 0.0
    manoeuvre_mps2: float | None = None
    # None: no microphone covers the track; 0: covered, nothing heard; (0, 1]: heard.
    harmonic_score: float | None = None
    f0_hz: float | None = None
    rcs_dbsm: float | None = None
    points_per_plot: float | None = None


@dataclass(frozen=True)
class Classification:
    distribution: list[dict[str, object]]  # [{"type", "confidence"}], sorted, sums to 1
    evidence: list[dict[str, object]]  # [{"name", "value", "weight"}], by |weight|

    @property
    def label(self) -> str:
        return str(self.distribution[0]["type"])


_ROOT_2PI = math.sqrt(2.0 * math.pi)
_MIXED = 1.0 - OUTLIER
_MODELLED = CLASSES[:-1]  # every class but "unknown", which has flat likelihoods


def _mixture_log(x: float, components: list[tuple[float, float, float]], extra_sigma: float,
                 span: float) -> float:
    density = 0.0
    for weight, mean, sigma in components:
        s = math.sqrt(sigma * sigma + extra_sigma * extra_sigma) if extra_sigma else sigma
        z = (x - mean) / s
        density += weight * math.exp(-0.5 * z * z) / (s * _ROOT_2PI)
    return math.log(_MIXED * density + OUTLIER / span)


def _prepared(table: dict[str, list[tuple[float, float, float]]],
              span: float) -> tuple[tuple[tuple[tuple[float, float, float, float], ...], ...],
                                    float, float]:
    """A table's components per class in CLASSES order as (weight, mean, sigma, sigma
    sqrt(2 pi)), its outlier density and the flat log-likelihood of "unknown": what
    _mixture_log works out on every call, once."""
    return (tuple(tuple((w, m, sd, sd * _ROOT_2PI) for w, m, sd in table[c]) for c in _MODELLED),
            OUTLIER / span, math.log(1.0 / span))


def _continuous(x: float, prepared: tuple[tuple[tuple[tuple[float, float, float, float], ...],
                                                ...], float, float],
                extra_sigma: float = 0.0) -> tuple[float, ...]:
    """Log-likelihoods of x per class, in CLASSES order (as _mixture_log)."""
    classes, outlier, flat = prepared
    log, exp = math.log, math.exp
    out = []
    for components in classes:
        density = 0.0
        for weight, mean, sigma, norm in components:
            if extra_sigma:
                s = math.sqrt(sigma * sigma + extra_sigma * extra_sigma)
                z = (x - mean) / s
                density += weight * exp(-0.5 * z * z) / (s * _ROOT_2PI)
            else:
                z = (x - mean) / sigma
                density += weight * exp(-0.5 * z * z) / norm
        out.append(log(_MIXED * density + outlier))
    out.append(flat)
    return tuple(out)


_SPEED = _prepared(SPEED, SPEED_RANGE_MPS)
_HEIGHT = _prepared(HEIGHT, HEIGHT_RANGE_M)
_MANOEUVRE = _prepared(MANOEUVRE, MANOEUVRE_RANGE_MPS2)
_F0_LOG2 = _prepared(F0_LOG2, F0_LOG2_RANGE)
_RCS = _prepared(RCS, RCS_RANGE_DB)
_POINTS = _prepared(POINTS, POINTS_RANGE)
_LOG_STATIONARY = tuple(math.log(STATIONARY[c]) for c in CLASSES)
_LOG_MOVING = tuple(math.log(1.0 - STATIONARY[c]) for c in CLASSES)
_LOG_HARMONICS = tuple(math.log(HARMONICS[c]) for c in CLASSES)
_LOG_SILENT = tuple(math.log(1.0 - HARMONICS[c]) for c in CLASSES)
_LOG_PRIOR = tuple(math.log(PRIOR[c]) for c in CLASSES)


def _evidence_terms(f: TrackFeatures) -> list[tuple[str, object, tuple[float, ...]]]:
    """(name, value, log-likelihood per class in CLASSES order) of each piece of evidence."""
    terms: list[tuple[str, object, tuple[float, ...]]] = []
    if f.speed_mps is not None:
        stationary = f.speed_mps < HOVER_SPEED_MPS
        aloft = f.height_m is not None and f.height_m - f.height_error_m > 3.0
        terms.append(("hovering" if aloft or not stationary else "stationary", stationary,
                      _LOG_STATIONARY if stationary else _LOG_MOVING))
        if not stationary:
            terms.append(("speed_mps", round(f.speed_mps, 2), _continuous(f.speed_mps, _SPEED)))
    if f.height_m is not None:
        terms.append(("height_m", round(f.height_m, 1),
                      _continuous(f.height_m, _HEIGHT, f.height_error_m)))
    if f.manoeuvre_mps2 is not None:
        terms.append(("manoeuvre_mps2", round(f.manoeuvre_mps2, 2),
                      _continuous(f.manoeuvre_mps2, _MANOEUVRE)))
    if f.harmonic_score is not None:
        s = min(max(f.harmonic_score, 0.0), 1.0)
        # A weak detection counts only as much as the detector is sure of it.
        terms.append(("harmonics", round(s, 3),
                      tuple(s * h for h in _LOG_HARMONICS) if s > 0.0 else _LOG_SILENT))
        if s > 0.0 and f.f0_hz is not None and f.f0_hz > 0.0:
            terms.append(("f0_hz", round(f.f0_hz, 1), _continuous(math.log2(f.f0_hz), _F0_LOG2)))
    if f.rcs_dbsm is not None:
        terms.append(("rcs_dbsm", round(f.rcs_dbsm, 1), _continuous(f.rcs_dbsm, _RCS)))
    if f.points_per_plot is not None:
        terms.append(("points_per_plot", round(f.points_per_plot, 2),
                      _continuous(f.points_per_plot, _POINTS)))
    return terms


_INDEX = range(len(CLASSES))


def classify(features: TrackFeatures) -> Classification:
    """The class distribution of a track and the evidence that decided it."""
    terms = _evidence_terms(features)
    scaled = []
    for name, value, ll in terms:
        w = FEATURE_WEIGHT.get(name, 1.0)
        scaled.append((name, value, [w * x / TEMPERATURE for x in ll]))
    score = []
    for k in _INDEX:
        total = 0
        for _, _, ll in scaled:
            total += ll[k]
        score.append(_LOG_PRIOR[k] + total)
    top = max(score)
    expo = [math.exp(x - top) for x in score]
    total_expo = sum(expo)
    ranked = sorted(_INDEX, key=lambda k: -expo[k])
    probs = [round(expo[k] / total_expo, 4) for k in ranked]
    probs[0] = round(1.0 - sum(probs[1:]), 4)  # rounding must not break "sums to 1"
    distribution: list[dict[str, object]] = [
        {"type": CLASSES[k], "confidence": p} for k, p in zip(ranked, probs, strict=True)]
    win, run = ranked[0], ranked[1]
    winner, runner_up = CLASSES[win], CLASSES[run]
    evidence = [{"name": "prior", "value": PRIOR[winner],
                 "weight": round(math.log(PRIOR[winner] / PRIOR[runner_up]), 3)}]
    evidence += [{"name": name, "value": value, "weight": round(ll[win] - ll[run], 3)}
                 for name, value, ll in scaled]
    evidence.sort(key=lambda item: -abs(float(item["weight"])))  # type: ignore[arg-type]
    return Classification(distribution, evidence)
