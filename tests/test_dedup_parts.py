"""URL normalisation; connected components against a reference."""

import numpy as np
import pytest

from refinedweb.dedup.kernels.components import connected_components
from refinedweb.dedup.kernels.url_keys import url_hash
from refinedweb.urls import dedup_key


@pytest.mark.parametrize("a,b", [
    ("https://www.example.com/a/b/", "http://example.com/a/b"),
    ("https://Example.COM:443/x?y=1#frag", "http://example.com/x?y=1"),
    ("http://example.com.", "https://www.example.com/"),
])
def test_equivalent_urls_share_a_hash(a, b):
    assert dedup_key(a) == dedup_key(b)
    assert url_hash(a) == url_hash(b)


@pytest.mark.parametrize("a,b", [
    ("https://example.com/a", "https://example.com/A"),
    ("https://example.com/a?x=1", "https://example.com/a?x=2"),
    ("https://example.com:8080/a", "https://example.com/a"),
    ("https://blog.example.com/a", "https://example.com/a"),
])
def test_different_urls_differ(a, b):
    assert url_hash(a) != url_hash(b)


@pytest.mark.parametrize("url,key", [
    ("http://Example.com:99999999/Path/A", "example.com:99999999/Path/A"),    # a port that does not parse
    ("http://user:pw@Ex.com:abc/Path?Q=1#f", "ex.com:abc/Path?Q=1"),
    ("http://[::1/Path/X/?Q", "[::1/Path/X?Q"),                                # an unclosed IPv6 bracket
])
def test_a_url_that_does_not_parse_keeps_its_case_sensitive_path(url, key):
    assert dedup_key(url) == key
    assert dedup_key(url.replace("/Path", "/path")) != key


def test_malformed_urls_do_not_crash():
    for url in ("http://[::1", "not a url", "", "http://" + "a" * 4000, "https://münchen.de/ä"):
        assert isinstance(url_hash(url), int)


def _reference_components(edges):
    adj = {}
    for a, b in edges.tolist():
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    roots = {}
    for start in adj:
        if start in roots:
            continue
        comp, stack, seen = [], [start], {start}
        while stack:
            x = stack.pop()
            comp.append(x)
            for y in adj[x] - seen:
                seen.add(y)
                stack.append(y)
        for x in comp:
            roots[x] = min(comp)
    return roots


def test_components_match_a_reference_on_random_graphs():
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(2, 80))
        edges = rng.integers(0, n, size=(int(rng.integers(1, 120)), 2)).astype(np.uint64) * np.uint64(2**33 + 7)
        nodes, roots = connected_components(edges)
        assert dict(zip(nodes.tolist(), roots.tolist())) == _reference_components(edges)


def duplicates_to_remove(edges: np.ndarray) -> tuple[np.ndarray, int]:
    """Node keys that are not their component's survivor, and the number of components (as cc_in_memory)."""
    nodes, roots = connected_components(edges)
    return nodes[nodes != roots], int(len(np.unique(roots)))


def test_long_chain_and_survivor_is_smallest_key():
    chain = np.array([[i + 1, i] for i in range(10_000)], dtype=np.uint64)[::-1]
    removed, clusters = duplicates_to_remove(chain)
    assert clusters == 1 and len(removed) == 10_000 and 0 not in removed.tolist()
    assert duplicates_to_remove(np.empty((0, 2), dtype=np.uint64))[1] == 0


def _star_rounds(edges, partitions):
    """The driver's loop over large-star / small-star, with partitions in memory."""
    from refinedweb.dedup.kernels.components import large_star, small_star, star_roots
    from refinedweb.dedup.methods.minhash import _cc_partition

    def route(pairs):
        target = _cc_partition(pairs[:, 0], partitions)
        return [pairs[target == q] for q in range(partitions)]

    def total(checksums):
        return sum(c for c, _ in checksums), sum(s for _, s in checksums) % (1 << 64)

    ls_in = route(np.concatenate([edges, edges[:, ::-1]]))
    previous, rounds = None, 0
    while True:
        rounds += 1
        out = [large_star(p) for p in ls_in]
        large = total([c for _, c in out])
        out = [small_star(p) for p in route(np.concatenate([o for o, _ in out]))]
        small = total([c for _, c in out])
        if previous == large == small:
            break
        previous = small
        new = np.concatenate([o for o, _ in out])
        ls_in = route(np.concatenate([new, new[:, ::-1]]))
    found = [star_roots(p) for p in ls_in]
    sizes = dict(zip(np.concatenate([r for _, r, _ in found]).tolist(), np.concatenate([n for _, _, n in found]).tolist()))
    return np.sort(np.concatenate([r for r, _, _ in found])), sizes, rounds


def test_distributed_components_match_union_find():
    rng = np.random.default_rng(1)
    for _ in range(200):
        n = int(rng.integers(2, 80))
        edges = rng.integers(0, n, size=(int(rng.integers(1, 120)), 2)).astype(np.uint64) * np.uint64(2**33 + 7)
        edges = edges[edges[:, 0] != edges[:, 1]]
        if not len(edges):
            continue
        removed, clusters = duplicates_to_remove(edges)
        got, sizes, _ = _star_rounds(edges, int(rng.integers(1, 6)))
        assert got.tolist() == np.sort(removed).tolist() and len(sizes) == clusters
        nodes, roots = connected_components(edges)
        assert sizes == dict(zip(*[a.tolist() for a in np.unique(roots, return_counts=True)]))   # component sizes


def test_distributed_components_on_a_long_shuffled_chain():
    rng = np.random.default_rng(2)
    labels = rng.permutation(5001).astype(np.uint64)
    chain = np.stack([labels[1:], labels[:-1]], axis=1)[rng.permutation(5000)]
    removed, sizes, rounds = _star_rounds(chain, 4)
    assert sizes == {0: 5001} and len(removed) == 5000 and 0 not in removed.tolist() and rounds < 30
