"""Exact-substring dedup's kernels (RefinedWeb §3.3, after Lee et al. 2022, "Deduplicating Training Data Makes
Language Models Better"): spans of at least ``min_tokens`` GPT-2 tokens that occur more than once in the corpus
are cut out of the documents. Pure code: no Ray, no I/O.

What the dedup stage runs (`dedup/methods/exact_substring.py`): ``tokenize`` (GPT-2 BPE, ordinary encoding:
``<|endoftext|>`` written in a page is plain text), ``window_records`` (a 64-bit polynomial hash of every
k-token window inside a document, ``k = min_tokens``; the corpus's hashes are shuffled to buckets, each groups
equal hashes) and ``cut_windows`` (a document's marked windows removed). The suffix array it is tested equal
to, with no hash at all, is `dedup/reference/suffix_array.py`, which also states the exact rule of each policy.

Removed token positions are merged into maximal ranges (overlapping and adjacent ones merge), per document.
Mapping back to text: byte offsets of tokens are the cumulative byte lengths of the token ids (byte-level
BPE: the concatenated bytes of a document's tokens are exactly its UTF-8 encoding). A removed byte range
removes exactly the characters whose bytes lie entirely inside it; a character split between a removed
and a kept token (possible for multi-byte characters: CJK, emoji) is kept whole, so the result is always
valid text and no character is ever cut. At each cut, the whitespace on both sides of it and at the edges
of the removed text is merged into one separator: two or more newlines become ``"\\n\\n"``, one newline
``"\\n"``, other whitespace one space, none nothing (a cut inside a word); then the document is stripped.
Nothing else in the text changes.

``min_words``: a document from which something was removed is dropped (``None``) when fewer than
``min_words`` whitespace-separated words remain. Documents with nothing removed are never dropped here
(they passed the quality filters already; this stage only judges what it cut).

Memory: per scan chunk of ``max_part_bytes`` of text, about 40 B per token (ids, window hashes, document and
offset of every window), ~13 x the chunk's bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np

from ...errors import UserError
from ...hashing import splitmix64
from ...settings import from_section, setting

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


@lru_cache(maxsize=1)
def _token_byte_lengths() -> np.ndarray:
    """UTF-8 byte length of every GPT-2 token id (byte-level BPE: a token is a byte string)."""
    from ...stages.tokens import get_encoding

    enc = get_encoding("gpt2")
    return np.array([len(enc.decode_single_token_bytes(i)) for i in range(enc.n_vocab)], dtype=np.int64)


def _fix_surrogates(text: str) -> str:
    # As tiktoken does: a lone surrogate (not encodable as UTF-8) becomes U+FFFD, one character for one,
    # so character offsets are unchanged.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def tokenize(texts: Sequence[str]) -> list[np.ndarray]:
    """GPT-2 token ids of each text (uint32 arrays), identical to ``encode_ordinary``. Single-threaded."""
    from ...stages.tokens import get_encoding

    enc = get_encoding("gpt2")
    out = []
    for text in texts:
        try:
            # == encode_ordinary (no special token is allowed, none is refused), without a Python list
            out.append(enc.encode_to_numpy(text, disallowed_special=()))
        except UnicodeEncodeError:
            out.append(enc.encode_to_numpy(_fix_surrogates(text), disallowed_special=()))
    return out


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
