"""Connected components of candidate pairs, and one survivor per component.

Only documents that appear in a candidate pair are nodes, so memory grows with the number of
near-duplicate candidates of one part (bounded by `dedup.parts`), never with the corpus. Union-find
runs on numpy arrays: pointer jumping (`parent = parent[parent]`) and vectorised hooking of each
edge's larger root under the smaller one, until no edge joins two roots.
"""

from __future__ import annotations

import numpy as np


def connected_components(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`edges`: (m, 2) uint64 node keys. Returns (nodes, roots): every node and the smallest node key
    of its component (so the survivor, the smallest key, is deterministic)."""
    if edges.size == 0:
        empty = np.empty(0, dtype=np.uint64)
        return empty, empty
    nodes, inverse = np.unique(edges.reshape(-1), return_inverse=True)
    u, v = inverse.reshape(-1, 2).T
    parent = np.arange(len(nodes), dtype=np.int64)
    while True:
        # compress paths fully
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                break
            parent = grand
        ru, rv = parent[u], parent[v]
        differ = ru != rv
        if not differ.any():
            break
        hi = np.maximum(ru[differ], rv[differ])
        lo = np.minimum(ru[differ], rv[differ])
        # hook every larger root under the smallest root it meets (min keeps it a forest)
        np.minimum.at(parent, hi, lo)
    # node indices are sorted by key, so the smallest index of a component is its smallest key
    return nodes, nodes[parent]


def duplicates_to_remove(edges: np.ndarray) -> tuple[np.ndarray, int]:
    """Node keys that are not their component's survivor, and the number of components."""
    nodes, roots = connected_components(edges)
    return nodes[nodes != roots], int(len(np.unique(roots)))
