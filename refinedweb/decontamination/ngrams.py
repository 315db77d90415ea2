"""Normalized word n-grams and their 64-bit hashes, compiled: the one tokenizer of benchmark items and documents.

Normalization (lm-eval's and GPT-3's spirit): lower-case, punctuation and whitespace both separate words, an
apostrophe inside a word is dropped (`don't` = `dont` = `don’t`). Lower-casing is per code point (a table), so
a word's character offsets stay those of the original text, for cutting windows out of it. A word's hash folds
its lowered code points; a k-gram's hash folds its words' hashes and k, so keys of different lengths never
collide by construction. `scan` finds, in a batch of documents, every position where a key of the index
starts: a first probe of a bitset of the keys' first `m` words (`anchors`) rejects almost every position with
one memory access; survivors are looked up exactly in the sorted keys.
"""

from __future__ import annotations

import string
from functools import lru_cache

import numpy as np
from numba import njit

from ..dedup.kernels.minhash import (  # noqa: F401  (NUMBA_CACHE_FALLBACK: numba's cache settled first)
    _CHAR_MUL,
    _GOLDEN,
    _WORD_MUL,
    _WORD_SEED,
    NUMBA_CACHE_FALLBACK,
    _char_classes,
    _fmix64,
)

WORD, SEPARATOR, DELETED = 0, 1, 3
TABLE = 0x20000                    # code points from here on are word characters, lowered as they are
APOSTROPHES = "'\u2019\u02bc\u2018`"

_NGRAM_SEED = np.uint64(0x7A3C1E6F5D2B4897)       # not MinHash's: a decontamination key is not a shingle hash


@lru_cache(maxsize=1)
def tables() -> tuple[np.ndarray, np.ndarray]:
    """(class of each code point below TABLE, its lower-case code point when that is one code point)."""
    classes = np.where(_char_classes() == 0, WORD, SEPARATOR).astype(np.uint8)
    for ch in string.punctuation:
        classes[ord(ch)] = SEPARATOR
    for ch in APOSTROPHES:
        classes[ord(ch)] = DELETED
    lower = np.arange(TABLE, dtype=np.int32)
    for cp in np.flatnonzero(classes == WORD):
        low = chr(cp).lower()
        if len(low) == 1:
            lower[cp] = ord(low)
    return classes, lower


def code_points(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """All texts as one uint32 array, and where each starts (offsets[i]:offsets[i+1])."""
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in texts], out=offsets[1:])
    blob = "".join(texts).encode("utf-32-le", "surrogatepass")
    return np.frombuffer(blob, dtype=np.uint32), offsets


def normalize(text: str) -> list[str]:
    """The normalized words of `text` (the Python reference of the compiled tokenizer)."""
    classes, lower = tables()
    words, word = [], []
    for ch in text:
        cp = ord(ch)
        kind = classes[cp] if cp < TABLE else WORD
        if kind == WORD:
            word.append(chr(lower[cp]) if cp < TABLE else ch)
        elif kind == SEPARATOR and word:
            words.append("".join(word))
            word = []
    if word:
        words.append("".join(word))
    return words


@njit(cache=True, nogil=True)
def _words(cps, start, end, classes, lower, hashes, starts, ends):
    """Hash the words of cps[start:end]; their [start, end) offsets relative to `start`. Returns the count."""
    ncls = classes.shape[0]
    nw = 0
    h = _WORD_SEED
    length = 0
    first = 0
    last = 0
    for i in range(start, end):
        c = cps[i]
        k = classes[c] if c < ncls else 0
        if k == 0:
            if length == 0:
                first = i
            low = lower[c] if c < ncls else c
            h = (h ^ np.uint64(low)) * _CHAR_MUL
            length += 1
            last = i
        elif k == 1:
            if length > 0:
                hashes[nw] = _fmix64(h ^ (np.uint64(length) * _GOLDEN))
                starts[nw] = first - start
                ends[nw] = last + 1 - start
                nw += 1
                h = _WORD_SEED
                length = 0
    if length > 0:
        hashes[nw] = _fmix64(h ^ (np.uint64(length) * _GOLDEN))
        starts[nw] = first - start
        ends[nw] = last + 1 - start
        nw += 1
    return nw


@njit(cache=True, nogil=True)
def _key(g, k):
    return _fmix64(g ^ (np.uint64(k) * _GOLDEN))


@njit(cache=True, nogil=True)
def _item_keys(cps, offsets, classes, lower, n, m, keys, anchors, key_item, key_start, key_len):
    """Every item's keys (its n-grams, or the whole item when it has m..n-1 words; fewer than m: none), each
    key's anchor (its first m words), item, first word and length. Returns (keys written, words per item)."""
    total = 0
    size = 2
    for item in range(offsets.shape[0] - 1):
        size = max(size, offsets[item + 1] - offsets[item] + 2)
    hashes = np.empty(size, dtype=np.uint64)
    starts = np.empty(size, dtype=np.int64)
    ends = np.empty(size, dtype=np.int64)
    words_out = np.empty(offsets.shape[0] - 1, dtype=np.int64)
    for item in range(offsets.shape[0] - 1):
        nw = _words(cps, offsets[item], offsets[item + 1], classes, lower, hashes, starts, ends)
        words_out[item] = nw
        if nw < m:
            continue
        k = n if nw >= n else nw
        for j in range(nw - k + 1):
            g = _NGRAM_SEED
            for t in range(k):
                g = (g ^ hashes[j + t]) * _WORD_MUL
                if t + 1 == m:
                    anchors[total] = _key(g, m)
            keys[total] = _key(g, k)
            key_item[total] = item
            key_start[total] = j
            key_len[total] = k
            total += 1
    return total, words_out


@njit(cache=True, nogil=True)
def _probe(bits, mask, h):
    b = h & mask
    return (bits[b >> np.uint64(6)] >> (b & np.uint64(63))) & np.uint64(1)


@njit(cache=True, nogil=True)
def _find(keys, h):
    lo = 0
    hi = keys.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < h:
            lo = mid + 1
        else:
            hi = mid
    if lo < keys.shape[0] and keys[lo] == h:
        return lo
    return -1


@njit(cache=True, nogil=True)
def _scan(cps, offsets, classes, lower, n, m, lengths, anchor_bits, anchor_mask, key_bits, key_mask, keys,
          out_doc, out_start, out_end, out_key):
    """Every (document, key) occurrence: character span [start, end) in the document and the key's index in
    `keys`. Writes at most out_doc.shape[0]; returns how many there are (a caller retries with more room)."""
    size = 0
    for d in range(offsets.shape[0] - 1):
        size = max(size, offsets[d + 1] - offsets[d])
    hashes = np.empty(size // 2 + 2, dtype=np.uint64)
    starts = np.empty(size // 2 + 2, dtype=np.int64)
    ends = np.empty(size // 2 + 2, dtype=np.int64)
    cap = out_doc.shape[0]
    found = 0
    for d in range(offsets.shape[0] - 1):
        nw = _words(cps, offsets[d], offsets[d + 1], classes, lower, hashes, starts, ends)
        for j in range(nw - m + 1):
            g = _NGRAM_SEED
            for t in range(m):
                g = (g ^ hashes[j + t]) * _WORD_MUL
            if _probe(anchor_bits, anchor_mask, _key(g, m)) == 0:
                continue
            k = m
            while True:
                if lengths[k]:
                    h = _key(g, k)
                    if _probe(key_bits, key_mask, h):
                        idx = _find(keys, h)
                        if idx >= 0:
                            if found < cap:
                                out_doc[found] = d
                                out_start[found] = starts[j]
                                out_end[found] = ends[j + k - 1]
                                out_key[found] = idx
                            found += 1
                if k == n or j + k >= nw:
                    break
                g = (g ^ hashes[j + k]) * _WORD_MUL
                k += 1
    return found
