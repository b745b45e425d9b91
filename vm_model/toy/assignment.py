"""Exact minimum-cost assignment between two equal-size point sets, in numpy (no scipy).

The Hungarian method in its shortest-augmenting-path form with dual potentials (O(n^3)): rows are added one at a
time, each by a Dijkstra-like search over the columns on reduced costs; the inner step over all columns is one
vectorised numpy operation, so a 256 x 256 problem takes a fraction of a second.
"""

from __future__ import annotations

import numpy as np


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances (N, M) between the rows of ``a`` (N, D) and ``b`` (M, D), in float64."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1))


def min_cost_assignment(cost: np.ndarray) -> np.ndarray:
    """For a square cost matrix (n, n), the column assigned to each row in an assignment of minimum total cost."""
    cost = np.asarray(cost, np.float64)
    n = cost.shape[0]
    if cost.ndim != 2 or cost.shape[1] != n:
        raise ValueError(f"expected a square cost matrix, got shape {cost.shape}")
    if not np.isfinite(cost).all():
        raise ValueError("the cost matrix has NaN or infinite entries")
    # 1-based with a virtual column 0 (the search root); row_of[j]: the row assigned to column j (0: none)
    padded = np.zeros((n + 1, n + 1))
    padded[1:, 1:] = cost
    u, v = np.zeros(n + 1), np.zeros(n + 1)
    row_of = np.zeros(n + 1, dtype=np.int64)
    way = np.zeros(n + 1, dtype=np.int64)
    for i in range(1, n + 1):
        row_of[0] = i
        j0 = 0
        min_reduced = np.full(n + 1, np.inf)
        used = np.zeros(n + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = row_of[j0]
            free = ~used
            free[0] = False
            reduced = padded[i0] - u[i0] - v
            better = free & (reduced < min_reduced)
            min_reduced[better] = reduced[better]
            way[better] = j0
            candidates = np.where(free, min_reduced, np.inf)
            j1 = int(np.argmin(candidates))
            delta = candidates[j1]
            u[row_of[used]] += delta
            v[used] -= delta
            min_reduced[free] -= delta
            j0 = j1
            if row_of[j0] == 0:
                break
        while j0:  # augment along the path back to the root
            j1 = way[j0]
            row_of[j0] = row_of[j1]
            j0 = j1
    columns = np.empty(n, dtype=np.int64)
    columns[row_of[1:] - 1] = np.arange(n)
    return columns
