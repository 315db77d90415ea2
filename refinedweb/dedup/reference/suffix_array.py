"""The exact reference for exact-substring dedup: one suffix array over a list of documents (``dedup_part``),
with no hash at all. The dedup stage does not run it (its corpus-wide path, `dedup/kernels/windows.py` and
`dedup/methods/exact_substring.py`, hashes windows so that memory never grows with the corpus); the tests prove
that path equal to this on whole corpora, and benchmarks/exact_substring_speed.py times it. Needs pydivsufsort
(the dev extra).

The suffix-array path:

1. **Tokenise** every document with GPT-2 BPE (tiktoken, offline vocabulary, see ``stages/tokens.py``),
   ordinary encoding: ``<|endoftext|>`` written in a page is plain text.
2. **Concatenate** the token ids, with one separator symbol ``S`` after every document. ``S`` is larger than
   every token id (``max + 1``), so it never equals a token and a window that contains it can never be
   "within a document". A single separator keeps the alphabet below 2**16 (2 bytes per token for the sort).
3. **Candidate regions** (exact-safe prefilter): the windows whose polynomial hash occurs twice or more, and
   only those, can repeat; the suffix array is built over these regions when they are under 60% of the text
   (a hash collision only adds a region; the hash never decides anything here).
4. **Suffix array** with libdivsufsort (``pydivsufsort``) over big-endian 2-byte codes, restricted to the
   suffixes that start on a token. libdivsufsort uses OpenMP: ``OMP_NUM_THREADS=1`` for one core.
5. **LCP array** with Kasai's algorithm (``pydivsufsort.kasai``).
6. **Find**: runs of ``lcp >= k`` are blocks of identical k-token windows; every block of two or more
   suffixes is a window that occurs more than once, its smallest position the first occurrence.
7. **Remove** the marked token ranges, mapped back to characters; drop documents that became too short.

Rule for what is removed (exact and deterministic; ``W(p)`` is the k-token window starting at position ``p``
of the concatenation in input order, i.e. ordered by document, then by position in it):

* ``remove_all`` (default): token ``t`` is removed iff some window ``W(p)`` with ``p <= t < p + k``, lying
  inside one document, occurs at least twice (anywhere: same document or another one). This is what Lee et
  al.'s tool, which RefinedWeb used, does: "a b c d is repeated twice. So we remove them both" (its README).
* ``keep_first``: token ``t`` is removed iff some window ``W(p)`` covering it, inside one document, also
  occurs at an *earlier* position ``q < p`` (overlapping occurrences count: in ``a a a a a`` with ``k = 2``
  only the first ``a`` stays). A passage repeated in documents 1, 2 and 3 stays in document 1 only. The
  first occurrence of a window is never marked as that window, but its tokens can still be removed when they
  are also covered by another window that is itself a later copy.

Removed token positions are merged into maximal ranges per document and mapped back to characters exactly as
`dedup/kernels/windows.py` states (no character ever cut, whitespace at each cut merged into one separator).
Untouched documents are returned unchanged (same object).

``min_words``: a document from which something was removed is dropped (``None``) when fewer than
``min_words`` whitespace-separated words remain. Documents with nothing removed are never dropped here
(they passed the quality filters already; this stage only judges what it cut).

Memory of ``dedup_part`` (peak, per token; int32 suffix array): about 14-17 B per token, i.e. ~5 x the
text's bytes. The corpus-wide path needs, per scan chunk of ``max_part_bytes`` of text, about 40 B per token
(ids, window hashes, document and offset of every window), ~13 x the chunk's bytes.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ...errors import UserError
from ..kernels.windows import (
    _CHUNK,
    POLICIES,
    ExactSubstringConfig,
    _char_ranges,
    _concatenate,
    _cut,
    _merge_windows,
    _Part,
    _window_hashes,
    tokenize,
)


@dataclass
class PartResult:
    texts: list[str | None]       # per input document: the new text, or None when dropped
    removed_chars: list[int]      # per input document: characters removed (before whitespace clean-up)
    duplicate_spans: int          # merged removed token ranges in the part
    tokens: int                   # GPT-2 tokens in the part
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase (when asked for)


def _suffix_array(text: np.ndarray) -> np.ndarray:
    """Suffix array of an integer string (uint8/16/32) by libdivsufsort, which sorts bytes: wider symbols
    are sorted as their big-endian bytes (same order) and only the suffixes starting on a symbol are kept.
    ``text`` is byte-swapped in place during the sort and restored. int32 when the string allows it."""
    from pydivsufsort import divsufsort

    if text.dtype == np.uint8:
        return np.asarray(divsufsort(text))
    width = text.dtype.itemsize
    swap = sys.byteorder == "little"
    if swap:
        text.byteswap(inplace=True)
    try:
        sa_bytes = np.asarray(divsufsort(text.view(np.uint8)))
    finally:
        if swap:
            text.byteswap(inplace=True)
    n = len(text)
    sa = np.empty(n, dtype=np.int32 if n < 2**31 else np.int64)
    shift = width.bit_length() - 1
    filled = 0
    for i in range(0, len(sa_bytes), _CHUNK):           # in slices: no full-size temporaries
        part = sa_bytes[i:i + _CHUNK]
        part = part[(part & (width - 1)) == 0] >> shift
        sa[filled:filled + len(part)] = part
        filled += len(part)
    assert filled == n
    return sa


def _lcp(text: np.ndarray, sa: np.ndarray) -> np.ndarray:
    """Kasai: ``lcp[i]`` = longest common prefix of suffixes ``sa[i]`` and ``sa[i + 1]`` (last entry 0)."""
    from pydivsufsort import kasai

    return np.asarray(kasai(text, sa))


def _marked_windows(sa: np.ndarray, lcp: np.ndarray, seps: np.ndarray, k: int, policy: str) -> np.ndarray:
    """Start positions (sorted) of the in-document k-windows to remove under ``policy``."""
    pairs = np.flatnonzero(lcp >= k)          # sa[i] and sa[i + 1] share their first k tokens
    if pairs.size == 0:
        return np.empty(0, dtype=np.int64)
    # Runs of consecutive pair indices [a..b] are the blocks sa[a .. b + 1] of identical windows.
    new_run = np.empty(pairs.size, dtype=bool)
    new_run[0] = True
    np.not_equal(pairs[1:], pairs[:-1] + 1, out=new_run[1:])
    run_first = np.flatnonzero(new_run)
    block_start = pairs[run_first]
    block_size = np.diff(np.append(run_first, pairs.size)) + 1   # pairs in the run + 1 suffixes
    offsets = np.zeros(block_size.size, dtype=np.int64)
    np.cumsum(block_size[:-1], out=offsets[1:])
    members = np.arange(int(block_size.sum()), dtype=np.int64) + np.repeat(block_start - offsets, block_size)
    positions = sa[members].astype(np.int64)
    first = np.minimum.reduceat(positions, offsets)
    # A block's windows are identical, so they are all inside documents or all hold the separator.
    inside = (seps[np.searchsorted(seps, first)] - first) >= k
    keep = np.repeat(inside, block_size)
    if policy == "keep_first":
        keep &= positions != np.repeat(first, block_size)
    marked = positions[keep]
    marked.sort()
    return marked


def _check(min_tokens: int, policy: str) -> None:
    if policy not in POLICIES:
        raise UserError(f"exact_substring.policy must be keep_first or remove_all, not '{policy}'")
    if min_tokens < 1:
        raise UserError(f"exact_substring.min_tokens must be >= 1, got {min_tokens}")


def _tick(timings: dict[str, float] | None, phase: str, clock: float) -> float:
    now = time.perf_counter()
    if timings is not None:
        timings[phase] = timings.get(phase, 0.0) + now - clock
    return now


def _candidate_regions(part: _Part, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Maximal token ranges ``[lo, hi)`` covering every in-document k-window whose hash occurs at least twice.

    Exact-safe: a window that occurs twice has twice the same hash, so every repeated window (and every one of
    its occurrences) lies inside a region; a hash collision only adds a region. Only the top bits of the hash
    are compared (the low bits carry the position through one in-place sort), which again can only add."""
    text = part.text
    n = len(text) - k + 1
    if n < 2:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty
    lengths = part.seps - part.starts
    ok = lengths >= k                                        # windows inside document d: starts[d] .. seps[d] - k
    edge = np.zeros(len(text) + 1, dtype=np.int8)
    edge[part.starts[ok]] = 1
    edge[part.seps[ok] - k + 1] = -1
    inside = np.cumsum(edge[:n], dtype=np.int8).astype(bool)
    del edge
    bits = max(1, (n - 1).bit_length())
    low = np.uint64((1 << bits) - 1)
    keys = _window_hashes(text, k)
    kept = 0
    for s in range(0, n, _CHUNK):                          # in place: key = hash top bits | position, inside only
        e = min(n, s + _CHUNK)
        chunk = (keys[s:e] & ~low) | np.arange(s, e, dtype=np.uint64)
        chunk = chunk[inside[s:e]]
        keys[kept:kept + len(chunk)] = chunk
        kept += len(chunk)
    del inside
    keys = keys[:kept]
    keys.sort()
    repeated = np.zeros(kept, dtype=bool)
    for s in range(0, kept - 1, _CHUNK):
        e = min(kept - 1, s + _CHUNK)
        same = ((keys[s:e] ^ keys[s + 1:e + 1]) & ~low) == 0   # neighbours with the same top bits
        repeated[s:e] |= same
        repeated[s + 1:e + 1] |= same
    found = 0
    for s in range(0, kept, _CHUNK):                       # in place again: the positions of repeated windows
        chunk = keys[s:s + _CHUNK][repeated[s:s + _CHUNK]] & low
        keys[found:found + len(chunk)] = chunk
        found += len(chunk)
    del repeated
    starts = keys[:found].view(np.int64)                   # positions < 2**63
    starts.sort()
    return _merge_windows(starts, k)


def _reduce(part: _Part, lo: np.ndarray, hi: np.ndarray) -> _Part:
    """The candidate regions of a part as a part of their own (each region followed by the separator)."""
    edge = np.zeros(len(part.text) + 1, dtype=np.int8)     # regions are disjoint and not adjacent
    edge[lo] = 1
    edge[hi] = -1
    covered = np.cumsum(edge[:-1], dtype=np.int8).view(bool)
    del edge
    sizes = hi - lo
    starts = np.zeros(len(lo), dtype=np.int64)
    np.cumsum(sizes[:-1] + 1, out=starts[1:])
    seps = starts + sizes
    text = np.full(int(sizes.sum()) + len(lo), part.text[part.seps[0]], dtype=part.text.dtype)
    tokens = np.ones(len(text), dtype=bool)
    tokens[seps] = False
    text[tokens] = part.text[covered]
    return _Part(text, starts, seps)


# Sort only the candidate regions when they are less than this share of the part (else the copy is not worth
# it and the whole part is sorted; the result is the same either way).
_PREFILTER_MAX_SHARE = 0.6


def _find(part: _Part, min_tokens: int, policy: str, timings: dict[str, float] | None = None,
          prefilter: bool = True) -> list[list[tuple[int, int]]]:
    _check(min_tokens, policy)
    k = min_tokens
    lengths = part.seps - part.starts
    out: list[list[tuple[int, int]]] = [[] for _ in range(len(lengths))]
    if int(np.maximum(lengths - k + 1, 0).sum()) < 2:
        return out  # fewer than two k-token windows inside documents: nothing can repeat
    clock = time.perf_counter()
    target = part
    region_lo = None
    if prefilter and _PREFILTER_MAX_SHARE > 0:
        lo, hi = _candidate_regions(part, k)
        if int((hi - lo).sum()) < _PREFILTER_MAX_SHARE * len(part.text):
            target, region_lo = _reduce(part, lo, hi), lo
        clock = _tick(timings, "prefilter", clock)
    if len(target.seps) == 0:
        return out
    sa = _suffix_array(target.text)
    clock = _tick(timings, "suffix_array", clock)
    lcp = _lcp(target.text, sa)
    clock = _tick(timings, "lcp", clock)
    marked = _marked_windows(sa, lcp, target.seps, k, policy)
    del sa, lcp
    if region_lo is not None:                                # back to positions in the part (order kept)
        region = np.searchsorted(target.seps, marked)
        marked = marked - target.starts[region] + region_lo[region]
    lo, hi = _merge_windows(marked, k)
    docs = np.searchsorted(part.seps, lo)
    offset = part.starts[docs]
    for d, a, b in zip(docs.tolist(), (lo - offset).tolist(), (hi - offset).tolist()):
        out[d].append((a, b))
    _tick(timings, "find", clock)
    return out


def find_repeated_ranges(token_arrays: list[np.ndarray], min_tokens: int = 50,
                         policy: str = "keep_first") -> list[list[tuple[int, int]]]:
    """Token index ranges ``[start, end)`` to remove, per document (sorted, merged, never across documents).

    ``token_arrays`` are the documents of one part, in order, as arrays of non-negative integer ids; see the
    module docstring for the exact rule of each policy."""
    _check(min_tokens, policy)
    return _find(_concatenate(token_arrays), min_tokens, policy)


def dedup_part(texts: Sequence[str], cfg: ExactSubstringConfig | None = None,
               *, timings: dict[str, float] | None = None) -> PartResult:
    """Remove the repeated spans of one part (see the module docstring). ``timings``, when given, receives
    seconds per phase: tokenize (with concatenation), prefilter, suffix_array, lcp, find, remove."""
    cfg = cfg or ExactSubstringConfig()
    _check(cfg.min_tokens, cfg.policy)
    clock = time.perf_counter()
    part = _concatenate(tokenize(texts))       # the uint32 token arrays are freed here
    clock = _tick(timings, "tokenize", clock)
    ranges = _find(part, cfg.min_tokens, cfg.policy, timings)
    clock = time.perf_counter()
    new_texts: list[str | None] = list(texts)
    removed = [0] * len(texts)
    spans = 0
    for d, doc_ranges in enumerate(ranges):
        if not doc_ranges:
            continue
        spans += len(doc_ranges)
        chars = _char_ranges(texts[d], part.doc(d), doc_ranges)
        if not chars:
            continue
        removed[d] = sum(b - a for a, b in chars)
        new = _cut(texts[d], chars)
        new_texts[d] = new if len(new.split()) >= cfg.min_words else None
    _tick(timings, "remove", clock)
    return PartResult(texts=new_texts, removed_chars=removed, duplicate_spans=spans,
                      tokens=int((part.seps - part.starts).sum()),
                      timings=dict(timings) if timings is not None else {})
