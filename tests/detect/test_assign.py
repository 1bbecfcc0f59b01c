"""The tracker's assignment against scipy's linear_sum_assignment (the oracle; scipy stays a
test dependency) on gated matrices: the same number of feasible pairs, the same least cost."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from edgenode.detect.assign import assign

INFEASIBLE = 1e9


def oracle(cost: np.ndarray, feasible: np.ndarray) -> tuple[int, float]:
    rows, cols = linear_sum_assignment(np.where(feasible, cost, INFEASIBLE))
    ok = feasible[rows, cols]
    return int(ok.sum()), float(cost[rows[ok], cols[ok]].sum())


def check(pairs: list[tuple[int, int]], cost: np.ndarray, feasible: np.ndarray) -> None:
    rows = [i for i, _ in pairs]
    cols = [k for _, k in pairs]
    assert len(set(rows)) == len(rows) and len(set(cols)) == len(cols), pairs
    assert all(feasible[i, k] for i, k in pairs)
    count, total = oracle(cost, feasible)
    assert len(pairs) == count
    assert sum(cost[i, k] for i, k in pairs) == pytest.approx(total, abs=1e-9)


@pytest.mark.parametrize("seed", range(300))
def test_random_gated_matrices_match_the_oracle(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = rng.integers(1, 9, size=2)
    # Costs like the tracker's: d^2 + ln det S, negative as often as not.
    cost = rng.normal(0.0, 5.0, (n, m))
    feasible = rng.random((n, m)) < rng.uniform(0.1, 0.9)
    check(assign(cost, feasible), cost, feasible)


def test_the_most_pairs_win_over_the_cheapest_pair() -> None:
    # Track 0 fits plot 0 very well, but taking it leaves track 1 without a plot: two pairs.
    cost = np.array([[-50.0, 10.0], [1.0, 100.0]])
    feasible = np.array([[True, True], [True, False]])
    assert assign(cost, feasible) == [(0, 1), (1, 0)]


def test_nothing_feasible_is_nothing_assigned() -> None:
    assert assign(np.zeros((3, 2)), np.zeros((3, 2), bool)) == []
    assert assign(np.zeros((0, 4)), np.zeros((0, 4), bool)) == []


def test_independent_groups_are_each_solved() -> None:
    # Two crossing pairs far apart: each group's own optimum (the swap is cheaper in both).
    cost = np.array([[5.0, 1.0, 0, 0], [1.0, 5.0, 0, 0], [0, 0, 2.0, 9.0], [0, 0, 9.0, 2.0]])
    feasible = np.zeros((4, 4), bool)
    feasible[:2, :2] = True
    feasible[2:, 2:] = True
    assert assign(cost, feasible) == [(0, 1), (1, 0), (2, 2), (3, 3)]


def test_a_wide_group_of_many_plots() -> None:
    rng = np.random.default_rng(7)
    cost = rng.normal(0.0, 3.0, (12, 40))
    feasible = rng.random((12, 40)) < 0.5
    check(assign(cost, feasible), cost, feasible)
