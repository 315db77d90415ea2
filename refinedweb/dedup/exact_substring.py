"""Exact-substring deduplication (RefinedWeb §3.3, after Lee et al. 2022, "Deduplicating Training Data
Makes Language Models Better"): spans of at least ``min_tokens`` GPT-2 tokens that occur more than once in the
corpus are cut out of the documents. Pure code: no Ray, no I/O.

Two ways to find them, with the same result (up to 64-bit hash collisions, ~2**-64 per pair of windows):

* **Corpus-wide** (what the dedup stage runs, see ``phases.py``): ``window_records`` gives a 64-bit hash of
  every k-token window inside a document (``k = min_tokens``); the hashes of the whole corpus are shuffled to
  buckets, each bucket groups equal hashes, and ``cut_windows`` removes a document's marked windows. Memory
  per task is bounded by the bucket and chunk sizes, never by the corpus.
* **One suffix array** over a list of documents (``dedup_part``): the exact reference, with no hash at all.
  The tests prove the corpus-wide path equal to it on whole corpora.

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

Removed token positions are merged into maximal ranges (overlapping and adjacent ones merge), per document.

Mapping back to text: byte offsets of tokens are the cumulative byte lengths of the token ids (byte-level
BPE: the concatenated bytes of a document's tokens are exactly its UTF-8 encoding). A removed byte range
removes exactly the characters whose bytes lie entirely inside it; a character split between a removed
and a kept token (possible for multi-byte characters: CJK, emoji) is kept whole, so the result is always
valid text and no character is ever cut. At each cut, the whitespace on both sides of it and at the edges
of the removed text is merged into one separator: two or more newlines become ``"\\n\\n"``, one newline
``"\\n"``, other whitespace one space, none nothing (a cut inside a word); then the document is stripped.
Nothing else in the text changes. Untouched documents are returned unchanged (same object).

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
from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import UserError
from ..hashing import splitmix64
from ..settings import from_section, setting

__all__ = [
    "ExactSubstringConfig",
    "PartResult",
    "POLICIES",
    "dedup_part",
    "find_repeated_ranges",
    "tokenize",
    "window_records",
    "cut_windows",
]

POLICIES = ("keep_first", "remove_all")
_CHUNK = 1 << 20   # elements per slice where big arrays are processed in slices (bounds temporaries)


@dataclass(frozen=True)
class ExactSubstringConfig:
    min_tokens: int = setting(min=1, default=50)        # shortest repeated span removed, in GPT-2 tokens
    policy: str = setting(choices=POLICIES, default="remove_all")
    min_words: int = setting(min=0, default=50)         # an edited document with fewer words left is dropped
    max_part_bytes: int = setting(min=1, default=32_000_000)   # UTF-8 bytes tokenised and hashed at once

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise UserError(f"exact_substring.policy must be keep_first or remove_all, not '{self.policy}'")
        if self.min_tokens < 1:
            raise UserError(f"exact_substring.min_tokens must be >= 1, got {self.min_tokens}")
        if self.min_words < 0:
            raise UserError(f"exact_substring.min_words must be >= 0, got {self.min_words}")
        if self.max_part_bytes < 1:
            raise UserError(f"exact_substring.max_part_bytes must be >= 1, got {self.max_part_bytes}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> "ExactSubstringConfig":
        """Build from the ``dedup.exact_substring`` config section."""
        return from_section(cls, section or {}, "dedup.exact_substring")


@dataclass
class PartResult:
    texts: list[str | None]       # per input document: the new text, or None when dropped
    removed_chars: list[int]      # per input document: characters removed (before whitespace clean-up)
    duplicate_spans: int          # merged removed token ranges in the part
    tokens: int                   # GPT-2 tokens in the part
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase (when asked for)


# ------------------------------------------------------------------------------------------ tokenising

@lru_cache(maxsize=1)
def _token_byte_lengths() -> np.ndarray:
    """UTF-8 byte length of every GPT-2 token id (byte-level BPE: a token is a byte string)."""
    from ..stages.tokens import get_encoding

    enc = get_encoding("gpt2")
    return np.array([len(enc.decode_single_token_bytes(i)) for i in range(enc.n_vocab)], dtype=np.int64)


def _fix_surrogates(text: str) -> str:
    # As tiktoken does: a lone surrogate (not encodable as UTF-8) becomes U+FFFD, one character for one,
    # so character offsets are unchanged.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def tokenize(texts: Sequence[str]) -> list[np.ndarray]:
    """GPT-2 token ids of each text (uint32 arrays), identical to ``encode_ordinary``. Single-threaded."""
    from ..stages.tokens import get_encoding

    enc = get_encoding("gpt2")
    out = []
    for text in texts:
        try:
            # == encode_ordinary (no special token is allowed, none is refused), without a Python list
            out.append(enc.encode_to_numpy(text, disallowed_special=()))
        except UnicodeEncodeError:
            out.append(enc.encode_to_numpy(_fix_surrogates(text), disallowed_special=()))
    return out


# ------------------------------------------------------------------------------ suffix array and LCP

@dataclass
class _Part:
    """The documents of a part as one integer string: document d is ``text[starts[d]:seps[d]]`` and
    ``text[seps[d]]`` is the separator (larger than every token id)."""
    text: np.ndarray
    starts: np.ndarray
    seps: np.ndarray

    def doc(self, d: int) -> np.ndarray:
        return self.text[self.starts[d]:self.seps[d]]


def _concatenate(token_arrays: Sequence[np.ndarray]) -> _Part:
    lengths = np.fromiter((len(a) for a in token_arrays), dtype=np.int64, count=len(token_arrays))
    pieces = [np.asarray(a).ravel() for a in token_arrays if len(a)]
    flat = np.concatenate(pieces) if pieces else np.empty(0, dtype=np.int64)
    if flat.size and not np.issubdtype(flat.dtype, np.integer):
        raise ValueError("token ids must be integers")
    if flat.size and int(flat.min()) < 0:
        raise ValueError("token ids must be >= 0")
    sep = int(flat.max()) + 1 if flat.size else 0
    if sep >= 1 << 32:
        raise ValueError("token ids must be < 2**32 - 1")
    dtype = np.uint8 if sep < 1 << 8 else np.uint16 if sep < 1 << 16 else np.uint32
    starts = np.zeros(len(token_arrays), dtype=np.int64)
    np.cumsum(lengths[:-1] + 1, out=starts[1:])
    seps = starts + lengths
    text = np.full(flat.size + len(token_arrays), sep, dtype=dtype)
    tokens = np.ones(text.size, dtype=bool)
    tokens[seps] = False
    text[tokens] = flat
    return _Part(text, starts, seps)


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


def _merge_windows(starts: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Union of the sorted windows ``[s, s + k)`` as maximal ranges (adjacent windows merge)."""
    if starts.size == 0:
        return starts, starts
    gap = np.empty(starts.size - 1, dtype=bool)            # a new range starts after gap[i]
    for s in range(0, gap.size, _CHUNK):
        e = min(gap.size, s + _CHUNK)
        np.greater(starts[s + 1:e + 1] - starts[s:e], k, out=gap[s:e])
    breaks = np.flatnonzero(gap) + 1
    lo = starts[np.concatenate(([0], breaks))]
    hi = starts[np.concatenate((breaks - 1, [starts.size - 1]))] + k
    return lo, hi


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


# ------------------------------------------------------------------------------- candidate prefilter

_BASE = np.uint64(0x9E3779B97F4A7C15)            # odd, so invertible modulo 2**64
_BASE_INV = np.uint64(pow(0x9E3779B97F4A7C15, -1, 1 << 64))


def _powers(base: np.uint64, n: int) -> np.ndarray:
    out = np.full(n, base, dtype=np.uint64)
    out[0] = 1
    return np.cumprod(out, out=out)


def _window_hashes(text: np.ndarray, k: int) -> np.ndarray:
    """64-bit polynomial hash of every k-window ``text[p:p + k]``, p = 0 .. len - k (mod 2**64, symbols mixed
    by splitmix64). Equal windows have equal hashes; the converse is only very likely."""
    n = len(text) - k + 1
    out = np.empty(n, dtype=np.uint64)
    table = splitmix64(np.arange(int(text.max()) + 1)) if text.dtype != np.uint32 else None
    chunk = min(n, _CHUNK)
    up, down = _powers(_BASE, chunk + k), _powers(_BASE_INV, chunk)
    acc = np.zeros(chunk + k, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for s in range(0, n, chunk):
            e = min(n, s + chunk)
            symbols = text[s:e + k - 1]
            codes = table[symbols] if table is not None else splitmix64(symbols)
            codes *= up[:len(symbols)]                       # code_j * B**(j - s)
            np.cumsum(codes, out=acc[1:len(symbols) + 1])
            window = acc[k:k + e - s] - acc[:e - s]          # sum over the window, still scaled by B**(p - s)
            window *= down[:e - s]
            out[s:e] = window
    return out


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


# ------------------------------------------------------------------------------------ back to text

def _char_ranges(text: str, tokens: np.ndarray, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Character ranges holding exactly the characters whose bytes all lie in the removed token ranges."""
    lengths = _token_byte_lengths()[tokens]
    bounds = np.zeros(len(tokens) + 1, dtype=np.int64)
    np.cumsum(lengths, out=bounds[1:])
    tok = np.array(ranges, dtype=np.int64)
    byte_lo, byte_hi = bounds[tok[:, 0]], bounds[tok[:, 1]]
    if bounds[-1] == len(text):  # ASCII: one byte per character
        pairs = zip(byte_lo.tolist(), byte_hi.tolist())
    else:
        # A lone surrogate (tokenised as U+FFFD) takes 3 bytes with a lead byte either way.
        raw = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
        lead = (raw & 0xC0) != 0x80                           # first byte of a character
        before = np.zeros(raw.size + 1, dtype=np.int64)       # characters starting before each byte offset
        np.cumsum(lead, out=before[1:])
        char_lo = before[byte_lo]                             # first character starting at or after lo
        inside = np.zeros(raw.size + 1, dtype=bool)           # offset falls inside a character
        inside[:-1] = ~lead
        char_hi = before[byte_hi] - inside[byte_hi]           # characters ending at or before hi
        pairs = zip(char_lo.tolist(), char_hi.tolist())
    return [(a, b) for a, b in pairs if b > a]


def _seam(runs: list[str]) -> str:
    """One separator for the whitespace around a cut, given as the runs of whitespace that were contiguous in
    the original text (the kept text's edge with the removed text's edge, on each side)."""
    newlines = max(run.count("\n") for run in runs)
    return "\n\n" if newlines >= 2 else "\n" if newlines else " " if any(runs) else ""


def _cut(text: str, char_ranges: list[tuple[int, int]]) -> str:
    """The text without the (sorted, disjoint) character ranges. At each cut, the whitespace around it becomes
    one separator (see ``_seam``), so that the words on both sides are not glued together and no run of
    blank lines is left; the result is stripped. Text away from the cuts is unchanged."""
    out: list[str] = []
    runs = [""]                 # whitespace runs around the current cut, each contiguous in the original
    prev = 0
    for a, b in [*char_ranges, (len(text), len(text))]:
        piece = text[prev:a]
        rest = piece.lstrip()
        runs[-1] += piece[:len(piece) - len(rest)]
        if rest:
            if out:
                out.append(_seam(runs))
            body = rest.rstrip()
            out.append(body)
            runs = [rest[len(body):]]
        removed = text[a:b]
        core = removed.strip()
        if not core:            # a whitespace-only cut joins the runs on both sides
            runs[-1] += removed
        else:
            runs[-1] += removed[:len(removed) - len(removed.lstrip())]
            runs.append(removed[len(removed.rstrip()):])
        prev = b
    return "".join(out).strip()


def dedup_part(texts: Sequence[str], cfg: ExactSubstringConfig = ExactSubstringConfig(),
               *, timings: dict[str, float] | None = None) -> PartResult:
    """Remove the repeated spans of one part (see the module docstring). ``timings``, when given, receives
    seconds per phase: tokenize (with concatenation), prefilter, suffix_array, lcp, find, remove."""
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


# ------------------------------------------------------------------------- corpus-wide, by window hashes

def window_records(token_arrays: Sequence[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every k-token window that lies inside one document: (64-bit hash, document index, token offset).

    The hash is the polynomial hash of ``_window_hashes``: it depends on the window's tokens only, never on
    the batch the document came in, so windows hashed by different tasks compare. Equal windows have equal
    hashes; distinct windows share one with probability ~2**-64 per pair."""
    empty = (np.empty(0, np.uint64), np.empty(0, np.int64), np.empty(0, np.int64))
    if not token_arrays:
        return empty
    part = _concatenate(token_arrays)
    lengths = part.seps - part.starts
    counts = np.maximum(lengths - k + 1, 0)
    total = int(counts.sum())
    if total == 0:
        return empty
    hashes = _window_hashes(part.text, k)
    docs = np.repeat(np.arange(len(lengths), dtype=np.int64), counts)
    first = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=first[1:])
    offsets = np.arange(total, dtype=np.int64) - first[docs]
    return hashes[part.starts[docs] + offsets], docs, offsets


def cut_windows(text: str, window_starts: np.ndarray, k: int, min_words: int) -> tuple[str | None, int, int]:
    """Remove the union of the k-token windows starting at ``window_starts`` (token offsets of the text's
    GPT-2 tokens) as ``dedup_part`` does: returns (new text, or None when fewer than ``min_words`` words
    remain; characters removed; merged spans)."""
    lo, hi = _merge_windows(np.unique(np.asarray(window_starts, dtype=np.int64)), k)
    if not len(lo):
        return text, 0, 0
    tokens = tokenize([text])[0]
    chars = _char_ranges(text, tokens, list(zip(lo.tolist(), hi.tolist())))
    if not chars:
        return text, 0, len(lo)
    new = _cut(text, chars)
    removed = sum(b - a for a, b in chars)
    return (new if len(new.split()) >= min_words else None), removed, len(lo)
