"""Classifier: typical target profiles, a calibrated distribution, explained evidence."""

from __future__ import annotations

import math

import pytest

from edgenode.detect.classify import CLASSES, PRIOR, TrackFeatures, classify

HOVERING_DRONE_HEARD = TrackFeatures(speed_mps=0.3, height_m=30.0, height_error_m=2.0,
                                     manoeuvre_mps2=0.5, harmonic_score=0.9, f0_hz=180.0,
                                     rcs_dbsm=-20.0, points_per_plot=2.0)
LOW_BIRD_SILENT = TrackFeatures(speed_mps=12.0, height_m=15.0, height_error_m=2.0,
                                manoeuvre_mps2=2.5, harmonic_score=0.0, points_per_plot=1.2)
HIGH_FAST = TrackFeatures(speed_mps=60.0, height_m=300.0, height_error_m=20.0,
                          manoeuvre_mps2=0.2)
GROUND_15MPS = TrackFeatures(speed_mps=15.0, height_m=1.0, height_error_m=1.0,
                             manoeuvre_mps2=0.5, harmonic_score=0.0, points_per_plot=6.0)
STATIC = TrackFeatures(speed_mps=0.05, height_m=5.0, height_error_m=1.0, manoeuvre_mps2=0.05,
                       harmonic_score=0.0)


@pytest.mark.parametrize(("features", "expected"), [
    (HOVERING_DRONE_HEARD, "drone"),
    (LOW_BIRD_SILENT, "bird"),
    (HIGH_FAST, "aircraft"),
    (GROUND_15MPS, "vehicle"),
    (STATIC, "clutter"),
])
def test_typical_profiles_get_their_class_with_a_clear_margin(features: TrackFeatures,
                                                              expected: str) -> None:
    result = classify(features)
    assert result.label == expected
    assert result.distribution[0]["confidence"] > 0.6
    assert result.distribution[0]["confidence"] - result.distribution[1]["confidence"] > 0.3


@pytest.mark.parametrize("features", [HOVERING_DRONE_HEARD, LOW_BIRD_SILENT, TrackFeatures()])
def test_distribution_covers_all_classes_sorted_and_sums_to_one(features: TrackFeatures) -> None:
    dist = classify(features).distribution
    assert sorted(d["type"] for d in dist) == sorted(CLASSES)
    confidences = [d["confidence"] for d in dist]
    assert confidences == sorted(confidences, reverse=True)
    assert sum(confidences) == pytest.approx(1.0, abs=1e-9)
    assert all(0.0 <= c <= 1.0 for c in confidences)


def test_without_evidence_the_distribution_is_the_prior() -> None:
    result = classify(TrackFeatures())
    assert {d["type"]: d["confidence"] for d in result.distribution} == pytest.approx(PRIOR)
    assert [e["name"] for e in result.evidence] == ["prior"]


def test_evidence_weights_add_up_to_the_winners_log_odds_over_the_runner_up() -> None:
    result = classify(LOW_BIRD_SILENT)
    first, second = result.distribution[0]["confidence"], result.distribution[1]["confidence"]
    total = sum(e["weight"] for e in result.evidence)
    assert total == pytest.approx(math.log(first / second), abs=0.01)
    names = [e["name"] for e in result.evidence]
    assert {"speed_mps", "harmonics", "height_m", "manoeuvre_mps2", "hovering"} <= set(names)
    weights = [abs(e["weight"]) for e in result.evidence]
    assert weights == sorted(weights, reverse=True)


def test_harmonics_heard_turn_an_ambiguous_cruising_target_into_a_drone() -> None:
    cruising = TrackFeatures(speed_mps=10.0, height_m=40.0, height_error_m=3.0)
    assert classify(cruising).distribution[0]["confidence"] < 0.8
    heard = classify(TrackFeatures(speed_mps=10.0, height_m=40.0, height_error_m=3.0,
                                   harmonic_score=0.9, f0_hz=150.0))
    assert heard.label == "drone" and heard.distribution[0]["confidence"] > 0.9
    assert heard.evidence[0]["name"] == "harmonics" and heard.evidence[0]["weight"] > 0


def test_a_weak_acoustic_detection_counts_less_than_a_strong_one() -> None:
    weak = classify(TrackFeatures(harmonic_score=0.2, f0_hz=200.0))
    strong = classify(TrackFeatures(harmonic_score=1.0, f0_hz=200.0))
    def drone(result: object) -> float:
        return next(d["confidence"] for d in result.distribution if d["type"] == "drone")
    assert drone(weak) < drone(strong)


def test_a_low_fundamental_points_to_a_helicopter_not_a_drone() -> None:
    heli = classify(TrackFeatures(speed_mps=35.0, height_m=150.0, height_error_m=10.0,
                                  harmonic_score=0.8, f0_hz=20.0))
    assert heli.label == "aircraft"


def test_evidence_that_fits_no_class_leaves_room_for_unknown() -> None:
    odd = classify(TrackFeatures(speed_mps=250.0, height_m=2.0, height_error_m=0.5,
                                 manoeuvre_mps2=9.0))
    probs = {d["type"]: d["confidence"] for d in odd.distribution}
    assert probs["unknown"] > 0.15
