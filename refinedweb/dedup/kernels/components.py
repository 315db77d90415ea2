"""Connected components of candidate pairs, and one survivor per component.

Only documents that appear in a candidate pair are nodes, so memory grows with the number of
near-duplicate candidates of one part (bounded by `dedup.parts`), never with the corpus. Union-find
runs on numpy arrays: pointer jumping (`parent = parent[parent]`) and vectorised hooking of each
edge's larger root under the smaller one, until no edge joins two roots.
"""

from __future__ import annotations

import numpy as np

from ...hashing import splitmix64


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


# ------------------------------------------------------------------------------------------------------
# Distributed: large-star / small-star (Kiveris et al. 2014, "Connected Components in MapReduce and
# Beyond"). The edges live in partitions by node; each step is one task per partition. Alternating the
# two steps converges to one star per component centred on its smallest node; a round that changes no
# edge set (same count and checksum) ends the loop.


def edge_checksum(pairs: np.ndarray) -> tuple[int, int]:
    """(count, order-free 64-bit sum) of a set of undirected edges given as (smaller, larger) rows."""
    if not len(pairs):
        return 0, 0

    with np.errstate(over="ignore"):
        mixed = splitmix64(splitmix64(pairs[:, 0]) ^ pairs[:, 1])
        return int(len(pairs)), int(np.add.reduce(mixed, dtype=np.uint64))


def _grouped(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (u, v) rows sorted by u, then v; and each row's group start (first row of its u)."""
    if len(pairs):
        pairs = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
        distinct = np.ones(len(pairs), dtype=bool)
        distinct[1:] = (pairs[1:] != pairs[:-1]).any(axis=1)
        pairs = pairs[distinct]
    else:
        pairs = pairs.reshape(0, 2)
    starts = np.ones(len(pairs), dtype=bool)
    starts[1:] = pairs[1:, 0] != pairs[:-1, 0]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(pairs)), 0))
    return pairs, starts, first


def large_star(pairs: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """`pairs`: directed rows (u, v), both directions of every edge of the nodes u of one partition.
    For each u, m = min(u, its neighbours): every neighbour v > u is linked to m. Returns the new edges
    as (larger, smaller) rows and the checksum of the input edge set (each edge counted at its smaller end)."""
    pairs, starts, first = _grouped(np.asarray(pairs, dtype=np.uint64).reshape(-1, 2))
    checksum = edge_checksum(pairs[pairs[:, 0] < pairs[:, 1]])
    if not len(pairs):
        return pairs, checksum
    # rows are sorted by (u, v): the first row of a group holds u's smallest neighbour
    m = np.minimum(pairs[first, 1], pairs[:, 0])
    out = np.stack([pairs[:, 1], m], axis=1)[pairs[:, 1] > pairs[:, 0]]
    return out, checksum


def small_star(pairs: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """`pairs`: rows (x, y) with y < x, for the nodes x of one partition. For each x, m = its smallest
    such neighbour: x and every other such neighbour are linked to m. Returns undirected edges as
    (larger, smaller) rows and the checksum of the input edge set."""
    pairs, starts, first = _grouped(np.asarray(pairs, dtype=np.uint64).reshape(-1, 2))
    checksum = edge_checksum(pairs[:, ::-1])
    if not len(pairs):
        return pairs, checksum
    m = pairs[first, 1]
    to_x = np.stack([pairs[starts, 0], m[starts]], axis=1)              # x - m
    others = pairs[:, 1] != m
    to_y = np.stack([pairs[others, 1], m[others]], axis=1)              # y - m, y > m
    return np.concatenate([to_x, to_y]), checksum


def star_roots(pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """On converged stars (directed rows, both directions, of one partition's nodes): the nodes that are not
    their component's smallest node; and this partition's component roots with their component's size (a
    root's neighbours are all the other members of its star)."""
    pairs, starts, first = _grouped(np.asarray(pairs, dtype=np.uint64).reshape(-1, 2))
    if not len(pairs):
        empty = np.empty(0, dtype=np.uint64)
        return empty, empty, np.empty(0, dtype=np.int64)
    nodes = pairs[starts, 0]
    smallest = pairs[starts, 1]        # each group's smallest neighbour
    degree = np.diff(np.append(np.flatnonzero(starts), len(pairs)))
    root = smallest > nodes
    return nodes[smallest < nodes], nodes[root], degree[root] + 1


def component_sizes(nodes: np.ndarray, roots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each component's root, its number of nodes) from `connected_components`' output."""
    return np.unique(roots, return_counts=True)
