"""The index of every benchmark n-gram, built once on the driver and memory-mapped by the tasks.

Keys are the 64-bit hashes of normalized word n-grams (`ngrams.py`), sorted; beside each, a bitmask of the
benchmarks holding it. Two bitsets (16 bits per key, one probe each) reject a position of a document before the
binary search: one over every key's first `min_words` words (the anchor), one over the keys. The arrays live in
one file with a JSON layout: `np.memmap` maps it read-only, so the tasks of a node share one copy in the page
cache instead of holding one each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from . import ngrams

CHUNK_ITEMS = 20_000          # items hashed per kernel call (bounds the driver's scratch arrays)
BITS_PER_KEY = 16             # bitset size: ~6% of absent positions pass a probe
ALIGN = 64


@dataclass
class ItemKeys:
    """Every key of every item, before deduplication: what the driver's report maps back to items and text."""

    keys: np.ndarray          # uint64
    anchors: np.ndarray       # uint64
    item: np.ndarray          # int64, global item number
    start: np.ndarray         # int32, first word in the item
    length: np.ndarray        # int16, words
    words: np.ndarray         # int64, words per item


def item_keys(items: list[str], n: int, min_words: int) -> ItemKeys:
    classes, lower = ngrams.tables()
    parts, words = [], []
    for first in range(0, len(items), CHUNK_ITEMS):
        chunk = items[first:first + CHUNK_ITEMS]
        cps, offsets = ngrams.code_points(chunk)
        room = int(len(cps) // 2 + len(chunk) + 1)
        out = (np.empty(room, np.uint64), np.empty(room, np.uint64), np.empty(room, np.int64),
               np.empty(room, np.int64), np.empty(room, np.int64))
        total, nw = ngrams._item_keys(cps, offsets, classes, lower, n, min_words, *out)
        keys, anchors, item, start, length = (a[:total] for a in out)
        parts.append((keys.copy(), anchors.copy(), item + first, start.astype(np.int32), length.astype(np.int16)))
        words.append(nw)
    if not parts:
        empty = np.empty(0, np.uint64)
        return ItemKeys(empty, empty, np.empty(0, np.int64), np.empty(0, np.int32), np.empty(0, np.int16),
                        np.empty(0, np.int64))
    return ItemKeys(*(np.concatenate(column) for column in zip(*parts)), np.concatenate(words))


def _owner_dtype(benchmarks: int):
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if benchmarks <= np.dtype(dtype).itemsize * 8:
            return dtype
    raise ValueError("at most 64 benchmarks")


def _bitset(values: np.ndarray, count: int) -> tuple[np.ndarray, int]:
    size = 1 << max(16, int(np.ceil(np.log2(max(count, 1) * BITS_PER_KEY))))
    bits = np.zeros(size // 64, np.uint64)
    slot = values & np.uint64(size - 1)
    np.bitwise_or.at(bits, (slot >> np.uint64(6)).astype(np.int64), np.uint64(1) << (slot & np.uint64(63)))
    return bits, size - 1


@dataclass
class Index:
    n: int
    min_words: int
    keys: np.ndarray
    owners: np.ndarray
    anchor_bits: np.ndarray
    anchor_mask: int
    key_bits: np.ndarray
    key_mask: int
    lengths: np.ndarray       # bool[n + 1]: which key lengths exist (n, and those of short items)

    @classmethod
    def build(cls, keys: np.ndarray, anchors: np.ndarray, length: np.ndarray, owner: np.ndarray, benchmarks: int,
              n: int, min_words: int) -> "Index":
        """From every (key, anchor, length, benchmark number) occurrence; duplicates merged, owners OR-ed."""
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        first = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]]) if len(keys) else np.empty(0, int)
        dtype = _owner_dtype(benchmarks)
        bit = (np.ones(1, dtype) << owner[order].astype(dtype)).astype(dtype) if len(keys) else np.empty(0, dtype)
        owners = np.bitwise_or.reduceat(bit, first) if len(keys) else np.empty(0, dtype)
        unique = sorted_keys[first]
        lengths = np.zeros(n + 1, bool)
        lengths[np.unique(length)] = True
        anchor_bits, anchor_mask = _bitset(np.unique(anchors), len(unique))
        key_bits, key_mask = _bitset(unique, len(unique))
        return cls(n, min_words, unique, owners.astype(dtype), anchor_bits, anchor_mask, key_bits, key_mask, lengths)

    def without(self, drop: np.ndarray) -> "Index":
        """The index without the keys at positions `drop` (the anchors bitset is kept: a superset filters as well)."""
        keep = np.ones(len(self.keys), bool)
        keep[drop] = False
        keys = self.keys[keep]
        key_bits, key_mask = _bitset(keys, len(keys))
        return Index(self.n, self.min_words, keys, self.owners[keep], self.anchor_bits, self.anchor_mask, key_bits,
                     key_mask, self.lengths)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.keys, self.owners, self.anchor_bits, self.key_bits, self.lengths))

    ARRAYS = ("keys", "owners", "anchor_bits", "key_bits", "lengths")

    def save(self, path: str) -> dict:
        """Write the arrays to one file; the layout (JSON) to map it back."""
        layout: dict = {"n": self.n, "min_words": self.min_words, "anchor_mask": self.anchor_mask,
                        "key_mask": self.key_mask, "arrays": {}}
        offset = 0
        with open(path, "wb") as out:
            for name in self.ARRAYS:
                array = np.ascontiguousarray(getattr(self, name))
                pad = -offset % ALIGN
                out.write(b"\0" * pad)
                offset += pad
                layout["arrays"][name] = [array.dtype.str, offset, int(array.size)]
                out.write(array.tobytes())
                offset += array.nbytes
        return json.loads(json.dumps(layout))

    @classmethod
    def load(cls, path: str, layout: dict) -> "Index":
        """Map the file read-only (no copy: the page cache is shared by every process of a node)."""
        arrays = {name: np.memmap(path, dtype=np.dtype(dtype), mode="r", offset=offset, shape=(size,))
                  if size else np.empty(0, np.dtype(dtype))
                  for name, (dtype, offset, size) in layout["arrays"].items()}
        return cls(int(layout["n"]), int(layout["min_words"]), arrays["keys"], arrays["owners"],
                   arrays["anchor_bits"], int(layout["anchor_mask"]), arrays["key_bits"], int(layout["key_mask"]),
                   arrays["lengths"])

    def find(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every occurrence of a key in `texts`: (document, start, end (characters), key position), in document
        and position order."""
        classes, lower = ngrams.tables()
        cps, offsets = ngrams.code_points(texts)
        room = 64
        while True:
            out = (np.empty(room, np.int64), np.empty(room, np.int64), np.empty(room, np.int64),
                   np.empty(room, np.int64))
            found = ngrams._scan(cps, offsets, classes, lower, self.n, self.min_words, self.lengths,
                                 self.anchor_bits, np.uint64(self.anchor_mask), self.key_bits,
                                 np.uint64(self.key_mask), self.keys, *out)
            if found <= room:
                return tuple(a[:found] for a in out)
            room = found
