"""Optimal assignment of tracks to measurements, in plain Python.

scipy.optimize.linear_sum_assignment costs ~22 MB of resident memory in the daemon (the whole
scipy.optimize package loads with it) for matrices that gating leaves small and sparse: the
feasible pairs fall apart into independent groups (a track and the plots near it), mostly one
by one, each solved exactly here by the Hungarian method (shortest augmenting paths with
potentials). The result is a minimum-cost matching with as many feasible pairs as possible,
as linear_sum_assignment's on a matrix whose infeasible entries cost more than any sum of
feasible ones.
"""

from __future__ import annotations

import numpy as np


def assign(cost: np.ndarray, feasible: np.ndarray) -> list[tuple[int, int]]:
    """(row, column) pairs, each row and column at most once, only feasible pairs: the most
    pairs, and among those the least total cost. `cost` and `feasible`: (rows, columns)."""
    rows, cols = np.nonzero(feasible)
    if len(rows) == 0:
        return []
    n_rows = cost.shape[0]
    # Groups: rows and columns linked by feasible pairs (union-find; columns after rows).
    parent = list(range(n_rows + cost.shape[1]))

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        parent[root(r)] = root(n_rows + c)
    groups: dict[int, tuple[list[int], list[int]]] = {}
    for r in sorted(set(rows.tolist())):
        groups.setdefault(root(r), ([], []))[0].append(r)
    for c in sorted(set(cols.tolist())):
        groups.setdefault(root(n_rows + c), ([], []))[1].append(c)
    pairs = []
    for group_rows, group_cols in groups.values():
        if len(group_rows) == 1 and len(group_cols) == 1:
            pairs.append((group_rows[0], group_cols[0]))
            continue
        sub_feasible = feasible[np.ix_(group_rows, group_cols)]
        sub = cost[np.ix_(group_rows, group_cols)].astype(float)
        # Above any sum of feasible costs in the group: the most pairs come first.
        finite = sub[sub_feasible]
        big = 1.0 + len(group_rows) * (float(np.abs(finite).max()) * 2.0 + 1.0)
        sub = np.where(sub_feasible, sub, big).tolist()
        for i, k in _hungarian(sub):
            if sub_feasible[i, k]:
                pairs.append((group_rows[i], group_cols[k]))
    pairs.sort()
    return pairs


def _hungarian(a: list[list[float]]) -> list[tuple[int, int]]:
    """A minimum-cost complete matching of the smaller side of the dense matrix `a`."""
    if len(a) > len(a[0]):
        return [(i, k) for k, i in _hungarian([list(col) for col in zip(*a, strict=True)])]
    n, m = len(a), len(a[0])
    inf = float("inf")
    u = [0.0] * (n + 1)  # row potentials (1-based; 0 is the virtual start)
    v = [0.0] * (m + 1)  # column potentials
    match = [0] * (m + 1)  # column -> its row (1-based), 0 when free
    way = [0] * (m + 1)
    for i in range(1, n + 1):
        match[0] = i
        j0 = 0
        reach = [inf] * (m + 1)
        done = [False] * (m + 1)
        while True:
            done[j0] = True
            i0, delta, j1 = match[j0], inf, 0
            row = a[i0 - 1]
            for j in range(1, m + 1):
                if done[j]:
                    continue
                reduced = row[j - 1] - u[i0] - v[j]
                if reduced < reach[j]:
                    reach[j], way[j] = reduced, j0
                if reach[j] < delta:
                    delta, j1 = reach[j], j
            for j in range(m + 1):
                if done[j]:
                    u[match[j]] += delta
                    v[j] -= delta
                else:
                    reach[j] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:  # augment along the path back to the start
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    return [(match[j] - 1, j - 1) for j in range(1, m + 1) if match[j]]
