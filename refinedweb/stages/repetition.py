"""Gopher repetition removal (Rae et al. 2021, App. A.1.1 and Table A1), as used by RefinedWeb (App. G.1).

A document is removed when it repeats itself too much, measured six ways. Checks run cheapest first and
stop at the first failure (unless `signals` is given, then every measure is computed):

1. ``dup_para_frac``       duplicate paragraphs / paragraphs
2. ``dup_para_char_frac``  characters in duplicate paragraphs / characters of the document
3. ``dup_line_frac``       duplicate lines / lines
4. ``dup_line_char_frac``  characters in duplicate lines / characters of the document
5. ``top_{n}gram_char_frac``  for each configured n (2, 3, 4): characters of the most frequent n-gram
   times its number of occurrences / characters of all words
6. ``dup_{n}gram_char_frac``  for each configured n (5..10): characters of the words covered by an
   n-gram that occurs more than once (every occurrence, including the first; a word covered by several
   such n-grams is counted once) / characters of all words

Each measure is compared with its ``max_...`` threshold; the document is removed only when the measure is
strictly greater (a value exactly at the threshold is kept). The reason code is the measure's name.

Definitions (our reading of the paper, which leaves them open):

* **Lines** are the text split on ``"\\n"``; **paragraphs** are the text split on a blank line (two or more
  newlines, possibly with whitespace between them). Both are stripped of surrounding whitespace and empty
  ones are ignored: the blank lines that separate paragraphs are not "duplicate lines".
* A line/paragraph is a **duplicate** when an identical one (after stripping) occurs earlier: k copies of
  one line count as k - 1 duplicates and (k - 1) x its length duplicate characters. The character
  fractions are over ``len(text)``, the characters of the whole document.
* **Words** are the whitespace-separated tokens of the text (``str.split()``), case-folded with a simple
  per-character ``str.lower`` mapping (code points above U+FFFF are left as they are); punctuation stays
  attached (``"panels."`` and ``"panels"`` are different words). Word characters are the characters of
  these tokens, so whitespace never counts. The characters of an n-gram are the sum of its words' lengths.
* **Top n-gram**: the n-gram with the most occurrences; among equally frequent ones the longest in
  characters. An n-gram that occurs only once is not a repetition: the measure is then 0 (otherwise any
  document of a handful of words would fail).

Differences from datatrove's GopherRepetitionFilter, on purpose: the n-gram fractions are over word
characters (datatrove: ``len(text)``, whitespace included), duplicate n-grams count every occurrence of
every repeated n-gram with overlaps merged (datatrove: a greedy scan that skips the first occurrence and
jumps n words after each hit), a top n-gram must occur twice, and blank lines are not lines.

Implementation: for texts of ``_SMALL_TEXT`` characters or more, words and n-grams are identified by 64-bit
hashes computed with numpy (a polynomial hash of each word's code points, then a polynomial over word
hashes for n-grams), so the cost is a few vector passes over the text plus one sort per n-gram size that
must be looked at. Two n-grams that differ but collide in 64 bits would be counted as equal; for natural
text the chance is negligible (~1e-12 per document). Shorter texts use Python tuples of the words (exact;
cheaper than numpy's per-call overhead there); both give the same numbers. Exact shortcuts:

* the top (n+1)-gram count is at most the top n-gram count, so an (n+1) size is skipped when
  ``top_count(n) x longest (n+1)-gram / word chars`` is already within the threshold;
* an n-gram can only repeat if both of the (n-1)-grams it contains repeat, so the duplicate n-gram pass
  for n > smallest looks only at those positions, and stops as soon as no position is left.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Iterator, Mapping

import numpy as np

from ..errors import UserError
from ..settings import convert, from_section, setting
from ..text import code_point_table, code_points
from .contract import Stage

__all__ = ["RepetitionConfig", "check_repetition", "repetition_signals"]

_PARAGRAPH_SPLIT = re.compile(r"\n\s*\n")

# Polynomial hashing constants (odd, so invertible modulo 2**64).
_CHAR_BASE = 0x100000001B3            # per-character base of the word hash
_LEN_MIX = np.uint64(0x9E3779B97F4A7C15)  # mixes the word length into its hash
_WORD_BASE = np.uint64(0xD6E8FEB86659FD93)  # per-word base of the n-gram hash
_BMP = 0x10000
_SMALL_TEXT = 1000  # characters; shorter texts use the plain-Python n-gram path (same results, less overhead)


def _fraction(value: Any, key: str) -> float | None:
    return convert(value, "float | None", f"repetition.{key}", {"min": 0, "max": 1})


def _leaf(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _ngram_map(value: Any, key: str) -> tuple[tuple[int, float], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise UserError(f"config key 'repetition.{key}' must map n-gram sizes to fractions")
    out: dict[int, float] = {}
    for n, frac in value.items():
        try:
            size = int(n)
        except (TypeError, ValueError):
            raise UserError(f"config key 'repetition.{key}': n-gram size {n!r} is not an integer") from None
        if size < 1:
            raise UserError(f"config key 'repetition.{key}': n-gram size must be >= 1, got {size}")
        threshold = _fraction(frac, f"{key}.{size}")
        if threshold is not None:
            out[size] = threshold
    return tuple(sorted(out.items()))


@dataclass(frozen=True, slots=True)
class RepetitionConfig:
    """Thresholds of the repetition filter (all maxima; ``None`` turns that one measure off)."""

    max_duplicate_line_fraction: float | None = setting(min=0, max=1)
    max_duplicate_paragraph_fraction: float | None = setting(min=0, max=1)
    max_duplicate_line_char_fraction: float | None = setting(min=0, max=1)
    max_duplicate_paragraph_char_fraction: float | None = setting(min=0, max=1)
    max_top_ngram_char_fraction: tuple[tuple[int, float], ...] = setting(parse=lambda v, key: _ngram_map(v, _leaf(key)))
    max_duplicate_ngram_char_fraction: tuple[tuple[int, float], ...] = setting(parse=lambda v, key: _ngram_map(v, _leaf(key)))

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> "RepetitionConfig":
        """Build from the ``repetition`` config section (``enabled`` is the caller's business)."""
        return from_section(cls, section, "repetition")

    def reasons(self) -> tuple[str, ...]:
        """Every reason code this configuration can return, in check order."""
        out = ["dup_para_frac", "dup_para_char_frac", "dup_line_frac", "dup_line_char_frac"]
        out += [f"top_{n}gram_char_frac" for n, _ in self.max_top_ngram_char_fraction]
        out += [f"dup_{n}gram_char_frac" for n, _ in self.max_duplicate_ngram_char_fraction]
        return tuple(out)




# --------------------------------------------------------------------------------------------------
# lines and paragraphs


def _duplicates(units: list[str]) -> tuple[int, int]:
    """(number of units identical to an earlier one, their characters)."""
    distinct = set(units)
    if len(distinct) == len(units):
        return 0, 0
    return len(units) - len(distinct), sum(map(len, units)) - sum(map(len, distinct))


def _lines(text: str) -> list[str]:
    return list(filter(None, map(str.strip, text.split("\n"))))


def _paragraphs(text: str) -> list[str]:
    return list(filter(None, map(str.strip, _PARAGRAPH_SPLIT.split(text))))


# --------------------------------------------------------------------------------------------------
# words


@lru_cache(maxsize=1)
def _fold_table() -> np.ndarray:
    """BMP code point -> 0 for whitespace, else its lower-case code point (NUL -> 0x110000: non-zero, and no
    other character maps there)."""
    def fold(ch: str) -> int:
        low = ch.lower()
        return 0 if ch.isspace() else ord(low) if len(low) == 1 else ord(ch)

    folded = code_point_table(fold, _BMP, np.uint64)
    folded[0] = 0x110000
    return folded


@lru_cache(maxsize=1)
def _fold_map() -> dict[int, int]:
    """The case folding of _fold_table for str.translate (only the BMP characters that change)."""
    out = {}
    for cp, ch in enumerate(map(chr, range(_BMP))):
        low = ch.lower()
        if len(low) == 1 and low != ch:
            out[cp] = ord(low)
    return out


class _Powers:
    """P**i and P**-i modulo 2**64 for i < size, grown on demand."""

    def __init__(self, base: int) -> None:
        self.base = base
        self.inverse = pow(base, -1, 1 << 64)
        self.pow = np.ones(0, dtype=np.uint64)
        self.inv = np.ones(0, dtype=np.uint64)

    def get(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        if self.pow.size < size:
            grown = max(size, 2 * self.pow.size, 1 << 15)
            p = np.full(grown, self.base, dtype=np.uint64)
            p[0] = 1
            q = np.full(grown, self.inverse, dtype=np.uint64)
            q[0] = 1
            self.pow, self.inv = np.cumprod(p, dtype=np.uint64), np.cumprod(q, dtype=np.uint64)
        return self.pow[:size], self.inv[:size]


_POWERS = _Powers(_CHAR_BASE)
_NO_WORDS = (np.zeros(0, np.uint64), np.zeros(0, np.int64))


def _words(text: str) -> tuple[np.ndarray, np.ndarray]:
    """(64-bit hash, length) of every whitespace-separated, lower-cased word, in text order."""
    cp = code_points(text)
    size = cp.size
    if size == 0:
        return _NO_WORDS
    table = _fold_table()
    if int(cp.max()) < _BMP:
        folded = table[cp]  # (indexing with intp is several times faster than with uint32)
    else:  # code points above the BMP (emoji, ...) are kept as they are; none is whitespace
        folded = table[np.minimum(cp, _BMP - 1)]
        high = np.flatnonzero(cp >= _BMP)
        folded[high] = cp[high]
    in_word = np.zeros(size + 2, dtype=bool)
    np.not_equal(folded, 0, out=in_word[1:-1])
    edges = np.flatnonzero(in_word[1:] != in_word[:-1])  # start, end, start, end, ...
    if edges.size == 0:
        return _NO_WORDS
    starts, ends = edges[0::2], edges[1::2]
    powers, inverses = _POWERS.get(size)
    prefix = np.zeros(size + 1, dtype=np.uint64)
    np.multiply(folded, powers, out=folded)
    np.cumsum(folded, out=prefix[1:])
    lengths = ends - starts
    hashes = (prefix[ends] - prefix[starts]) * inverses[starts] + lengths.astype(np.uint64) * _LEN_MIX
    return hashes, lengths


def _run_counts(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct sorted keys, their counts)."""
    ordered = np.sort(keys)
    first = np.empty(ordered.size + 1, dtype=bool)
    first[0] = first[-1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:-1])
    bounds = np.flatnonzero(first)
    return ordered[bounds[:-1]], bounds[1:] - bounds[:-1]


def _repeated_mask(keys: np.ndarray) -> np.ndarray:
    """True where the key occurs more than once in `keys`."""
    order = np.argsort(keys)
    ordered = keys[order]
    same = ordered[1:] == ordered[:-1]
    repeated_sorted = np.zeros(keys.size, dtype=bool)
    repeated_sorted[1:] = same
    repeated_sorted[:-1] |= same
    mask = np.empty(keys.size, dtype=bool)
    mask[order] = repeated_sorted
    return mask


def _has_repeat(keys: np.ndarray) -> bool:
    ordered = np.sort(keys)
    return bool((ordered[1:] == ordered[:-1]).any())


class _NGrams:
    """n-gram hashes of one document, built up n by n from the word hashes (numpy; for long texts)."""

    def __init__(self, text: str) -> None:
        hashes, lengths = _words(text)
        self.words = hashes
        self.n_words = hashes.size
        self.char_prefix = np.zeros(self.n_words + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.char_prefix[1:])
        self.total_chars = int(self.char_prefix[-1])
        self._keys: dict[int, np.ndarray] = {1: hashes}

    def keys(self, n: int) -> np.ndarray:
        """Hash of the n-gram starting at each position (length n_words - n + 1)."""
        have = max(k for k in self._keys if k <= n)
        keys = self._keys[have]
        for size in range(have + 1, n + 1):
            keys = keys[:-1] * _WORD_BASE + self.words[size - 1:]
            self._keys[size] = keys
        return keys

    def chars(self, n: int) -> np.ndarray:
        """Characters of the n-gram starting at each position."""
        return self.char_prefix[n:] - self.char_prefix[:-n]

    def longest(self, n: int) -> int:
        """Characters of the longest n-gram (n <= n_words)."""
        return int(self.chars(n).max())

    def top_count(self, n: int) -> tuple[int, int]:
        """(occurrences of the most frequent n-gram, characters of the longest such n-gram), n < n_words."""
        keys = self.keys(n)
        distinct, counts = _run_counts(keys)
        top = int(counts.max())
        if top < 2:
            return top, 0
        winners = distinct[counts == top]  # sorted
        if winners.size == 1:
            where = keys == winners[0]
        else:  # membership by binary search (np.isin is slow on 64-bit keys)
            slot = np.minimum(np.searchsorted(winners, keys), winners.size - 1)
            where = winners[slot] == keys
        return top, int(self.chars(n)[where].max())

    def covered_chars(self, starts_mask: np.ndarray, n: int) -> int:
        """Characters of the words covered by n-grams starting where `starts_mask` is True."""
        starts = np.flatnonzero(starts_mask)
        delta = np.zeros(self.n_words + 1, dtype=np.int32)
        delta[starts] += 1
        delta[starts + n] -= 1
        covered = np.cumsum(delta[:-1]) > 0
        prefix = self.char_prefix
        return int((prefix[1:] - prefix[:-1])[covered].sum())

    def duplicate_coverage(self, smallest: int, largest: int) -> Iterator[tuple[int, int]]:
        """(n, characters covered by repeated n-grams) for n = smallest..largest. An n-gram can only repeat
        where both (n-1)-grams it contains repeat, so each n looks only at those positions."""
        mask: np.ndarray | None = None  # positions whose n-gram repeats; None: none does
        for n in range(smallest, largest + 1):
            if self.n_words < n + 1:
                mask = None
            elif n == smallest:
                keys = self.keys(n)
                mask = _repeated_mask(keys) if _has_repeat(keys) else None
            elif mask is not None:
                candidates = np.flatnonzero(mask[:-1] & mask[1:])
                keys = self.keys(n)
                mask = None
                if candidates.size:
                    sub = _repeated_mask(keys[candidates])
                    if sub.any():
                        mask = np.zeros(keys.size, dtype=bool)
                        mask[candidates[sub]] = True
            yield n, (self.covered_chars(mask, n) if mask is not None else 0)


class _SmallNGrams:
    """The same measures with plain Python tuples: cheaper than numpy's per-call overhead for short texts."""

    def __init__(self, text: str) -> None:
        self.words = text.translate(_fold_map()).split()
        self.lengths = list(map(len, self.words))
        self.n_words = len(self.words)
        self.total_chars = sum(self.lengths)

    def grams(self, n: int) -> list[tuple[str, ...]]:
        return list(zip(*(self.words[i:] for i in range(n))))

    def longest(self, n: int) -> int:
        return max(map(sum, zip(*(self.lengths[i:] for i in range(n)))))

    def top_count(self, n: int) -> tuple[int, int]:
        counts = Counter(self.grams(n))
        top = max(counts.values())
        if top < 2:
            return top, 0
        return top, max(sum(map(len, gram)) for gram, count in counts.items() if count == top)

    def duplicate_coverage(self, smallest: int, largest: int) -> Iterator[tuple[int, int]]:
        for n in range(smallest, largest + 1):
            grams = self.grams(n)
            counts = Counter(grams)
            if len(counts) == len(grams):  # nothing repeats at n, so nothing at any larger n either
                for m in range(n, largest + 1):
                    yield m, 0
                return
            covered = bytearray(self.n_words)
            ones = b"\x01" * n
            for i, gram in enumerate(grams):
                if counts[gram] > 1:
                    covered[i:i + n] = ones
            yield n, sum(length for length, hit in zip(self.lengths, covered) if hit)


# --------------------------------------------------------------------------------------------------
# the filter


def check_repetition(text: str, cfg: RepetitionConfig, signals: dict[str, float] | None = None) -> str | None:
    """None to keep the document, else the reason code of the first measure above its threshold.

    With `signals` (a dict), every measure is computed and stored in it under its reason code (a float
    in [0, 1]); without, checking stops at the first failure.
    """
    full = signals is not None
    failed: str | None = None

    def record(name: str, numerator: int, denominator: int, limit: float | None) -> bool:
        """Store the measure; True when checking can stop."""
        nonlocal failed
        value = numerator / denominator if denominator else 0.0
        if full:
            signals[name] = value
        if limit is not None and value > limit and failed is None:
            failed = name
            return not full
        return False

    n_chars = len(text)

    paragraphs = _paragraphs(text)
    dup, dup_chars = _duplicates(paragraphs)
    if record("dup_para_frac", dup, len(paragraphs), cfg.max_duplicate_paragraph_fraction):
        return failed
    if record("dup_para_char_frac", dup_chars, n_chars, cfg.max_duplicate_paragraph_char_fraction):
        return failed

    lines = _lines(text)
    dup, dup_chars = _duplicates(lines)
    if record("dup_line_frac", dup, len(lines), cfg.max_duplicate_line_fraction):
        return failed
    if record("dup_line_char_frac", dup_chars, n_chars, cfg.max_duplicate_line_char_fraction):
        return failed

    top_sizes = cfg.max_top_ngram_char_fraction
    dup_sizes = cfg.max_duplicate_ngram_char_fraction
    if not top_sizes and not dup_sizes:
        return failed
    grams: _NGrams | _SmallNGrams = _SmallNGrams(text) if n_chars < _SMALL_TEXT else _NGrams(text)
    total = grams.total_chars
    n_words = grams.n_words

    # top n-gram character fraction, smallest n first
    previous_top: int | None = None
    for n, limit in top_sizes:
        name = f"top_{n}gram_char_frac"
        if n_words < n + 1:  # fewer than two n-grams: nothing can repeat
            if record(name, 0, total, limit):
                return failed
            continue
        if not full and previous_top is not None:
            # every n-gram occurs at most as often as the most frequent (n-1)-gram (sizes are sorted)
            if previous_top * grams.longest(n) / total <= limit:
                continue
        top, chars = grams.top_count(n)
        previous_top = top
        if record(name, chars * top, total, limit):
            return failed

    # duplicate n-gram character fraction, smallest n first
    if dup_sizes:
        limits = dict(dup_sizes)
        for n, covered in grams.duplicate_coverage(dup_sizes[0][0], dup_sizes[-1][0]):
            if n in limits and record(f"dup_{n}gram_char_frac", covered, total, limits[n]):
                return failed
    return failed


def repetition_signals(text: str, cfg: RepetitionConfig) -> dict[str, float]:
    """Every repetition measure of `text` (the values `check_repetition` compares with the thresholds)."""
    signals: dict[str, float] = {}
    check_repetition(text, cfg, signals)
    return signals


# -- stage contract (stages/contract.py) ------------------------------------------------------------------
NAME = "repetition"
VERSION = 1                # the resume fingerprint covers it: bump it when what the stage writes changes
LABEL = "repetition removal"
CONFIG = RepetitionConfig


def build(section: Mapping[str, Any], shared) -> Stage:
    cfg = RepetitionConfig.from_config(section)
    return Stage(NAME, apply=lambda doc: check_repetition(doc.text, cfg))
