"""MinHash signatures and LSH band keys for RefinedWeb's fuzzy deduplication (RW §3.3, after Lee et al. 2022).

Pure computation: no Ray, no I/O. What the paper fixes:

* **Text**: lower-cased, punctuation dropped, split on whitespace (`normalize_words`).
* **Shingles**: word 5-grams. A document of fewer than 5 words is one shingle of all its words; an empty
  document (no word left) has no shingle, its signature is all ``0xFFFFFFFF`` (so every empty document has
  the same band keys: empty texts are each other's duplicates).
* **Hashes**: 9,000 MinHash functions, LSH with **450 bands of 20 rows**. The paper's text says "20
  buckets of 450 hashes", but only 450 bands x 20 rows gives the ~0.74 similarity threshold of Lee et al.
  (``(1/450) ** (1/20) = 0.737``; 20 bands of 450 rows would put it at ~0.993), so we read it as 450 x 20.

Our choices, where the paper is silent:

* **Punctuation** is every character of a Unicode ``P*`` category plus the ASCII symbols of
  ``string.punctuation`` (``$+<=>^`|~``), from the running Python's ``unicodedata``. It is *deleted*, not
  replaced by a space: ``don't`` -> ``dont``, ``state-of-the-art`` -> ``stateoftheart``. Whitespace is what
  ``str.split()`` splits on (``str.isspace``). Lower-casing is ``str.lower``.
* **Shingle hash** (`shingle_hashes`, 64 bits): each word's code points are folded into a 64-bit state
  (``h = (h ^ cp) * M``, a bijection of the state per step), finished with the MurmurHash3 64-bit finalizer
  (``fmix64``) and the word length; an n-gram folds its word hashes the same way and is finished with
  ``fmix64``. Two n-grams that differ in exactly one word, or two words of equal length that differ in one
  character, can never collide; other collisions have a ~2**-64 chance.
* **MinHash functions**: the key of a shingle is the top 32 bits of its 64-bit hash; function ``i`` is
  ``h_i(x) = (a_i * x + b_i) mod 2**32`` with ``a_i`` odd, computed in ``uint32`` (the wrap-around *is* the
  modulo). The signature is ``uint32[num_perm]``: ``sig[i] = min over shingles of h_i(key)``.
  Why this is an unbiased estimator of the shingle Jaccard: each ``h_i`` is a bijection of the 32-bit keys
  (``a_i`` odd), so distinct keys never tie and ``min h_i`` over A∪B is taken by exactly one key; the keys
  are pseudo-random 32-bit values (fmix64 output of the n-gram), so that key is a uniformly random shingle
  of A∪B, and ``P[min over A == min over B] = |A∩B| / |A∪B|`` for every single function. The
  ``(a_i, b_i)`` pairs are drawn independently (splitmix64 stream of ``seed``), and their estimates behave
  as independent Bernoulli trials: the error spread over real document pairs matches the binomial
  ``sqrt(J(1-J)/9000)`` (~0.005) — see tests/test_minhash.py. This is the same family datasketch (>= 2.0)
  uses by default ("affine32": ``a*h+b mod 2**32`` after a premix of the input hash). The only bias left is
  two distinct shingles sharing a 32-bit key (~n**2 / 2**33, ~1e-4 for two 400-shingle documents, and then
  only if one of them is a minimum). A strongly universal alternative (Dietzfelbinger's multiply-add-shift,
  ``(a*x+b mod 2**64) >> 32`` with 64-bit ``a, b``) gave the same error spread but costs 3-5x as much
  (AVX2 has no 64-bit vector multiply), so it is not used.
* **Band keys**: band ``j`` folds its ``rows`` signature values, two per 64-bit word, into a state seeded
  with a per-band random value (``h = (h ^ w) * M``, then ``fmix64``): equal values in different bands give
  different keys, and two bands that differ in one word of values never share a key.

Speed: the per-document work is ``shingles x num_perm`` (3.6M for 400 shingles and 9,000 functions). It runs
in numba (``@njit(cache=True)``): texts are lower-cased by Python and handed over as one UTF-32 array per
chunk; tokenising, punctuation removal, hashing, the MinHash (perm-blocked so parameters and signature stay
in L1, vectorised to AVX2 ``vpmulld``/``vpminud`` by LLVM) and the band keys are one compiled loop. The
compiled code is cached in ``__pycache__`` beside this file; when neither that nor numba's per-user cache
directory is writable (read-only install and home), a per-user directory under the system temp dir is used
(``NUMBA_CACHE_DIR``, when set, always wins).
"""

from __future__ import annotations

import os
import string
import sys
import tempfile
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ...errors import UserError
from ...hashing import splitmix64_stream
from ...settings import from_section, setting
from ...text import code_point_table

__all__ = [
    "MinHashConfig",
    "MinHasher",
    "normalize_words",
    "shingle_hashes",
    "jaccard",
    "estimate_jaccard",
    "EMPTY_VALUE",
]

EMPTY_VALUE = np.uint32(0xFFFFFFFF)  # every signature value of a document without shingles

_CLASS_TABLE_SIZE = 0x20000  # code points >= this are word characters: no punctuation/whitespace lives there
_WORD, _PUNCT, _SPACE = 0, 1, 2
_CHUNK_CODE_POINTS = 1 << 22  # band_keys_batch converts at most ~4M characters (16 MB of UTF-32) at a time
_PERM_BLOCK = 512  # MinHash functions per block: 512 x (a, b, sig) x 4 B = 6 KB, stays in L1


# --------------------------------------------------------------------------------------------------
# configuration


def _config_int(name: str, key: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, str)):
        raise UserError(f"config key '{name}.{key}' must be an integer, got {value!r}")
    try:
        out = int(value)
        if isinstance(value, float) and out != value:
            raise ValueError
    except (TypeError, ValueError):
        raise UserError(f"config key '{name}.{key}' must be an integer, got {value!r}") from None
    if out < minimum or (maximum is not None and out > maximum):
        bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
        raise UserError(f"config key '{name}.{key}' must be {bound}, got {value!r}")
    return out


@dataclass(frozen=True)
class MinHashConfig:
    """MinHash / LSH parameters (RW §3.3 defaults: 9,000 hashes in 450 bands of 20 rows over word 5-grams)."""

    num_perm: int = setting(min=1, default=9000)
    bands: int = setting(min=1, default=450)
    rows: int = setting(min=1, default=20)
    ngram: int = setting(min=1, default=5)
    seed: int = setting(min=0, max=2**64 - 1, default=1)

    def __post_init__(self) -> None:
        self._check("dedup.minhash")

    def _check(self, name: str) -> None:
        for key in ("num_perm", "bands", "rows", "ngram"):
            _config_int(name, key, getattr(self, key), 1)
        _config_int(name, "seed", self.seed, 0, 2**64 - 1)
        if self.bands * self.rows != self.num_perm:
            raise UserError(f"config keys '{name}.bands' x '{name}.rows' must equal '{name}.num_perm': "
                            f"{self.bands} x {self.rows} = {self.bands * self.rows} != {self.num_perm}")

    @classmethod
    def from_config(cls, section: Mapping[str, Any], name: str = "dedup.minhash") -> "MinHashConfig":
        """Build from the ``dedup.minhash`` section (its other keys, e.g. ``jaccard_check``, are the caller's
        business); a bad value is a one-line `UserError` naming ``name.key``."""
        return from_section(cls, section, name)

    def threshold(self) -> float:
        """Jaccard similarity where the LSH S-curve is steepest, ~``(1/bands) ** (1/rows)`` (0.737 for 450x20)."""
        return (1.0 / self.bands) ** (1.0 / self.rows)

    def collision_probability(self, similarity: float) -> float:
        """Chance that two documents of shingle Jaccard ``similarity`` share at least one band key."""
        return 1.0 - (1.0 - similarity ** self.rows) ** self.bands


# --------------------------------------------------------------------------------------------------
# normalisation (the Python reference; the compiled tokenizer uses the same character classes)


@lru_cache(maxsize=1)
def _char_classes() -> np.ndarray:
    """uint8 class of every code point below 0x20000: 0 word character, 1 punctuation (dropped), 2 whitespace."""
    category = unicodedata.category
    table = code_point_table(lambda ch: _SPACE if ch.isspace() else _PUNCT if category(ch)[0] == "P" else 0,
                             _CLASS_TABLE_SIZE)
    for ch in string.punctuation:
        table[ord(ch)] = _PUNCT
    return table


@lru_cache(maxsize=1)
def _punctuation_deletion() -> dict[int, None]:
    return {int(cp): None for cp in np.flatnonzero(_char_classes() == _PUNCT)}


def normalize_words(text: str) -> list[str]:
    """Lower-case, drop punctuation, split on whitespace: ``"Don't STOP—now!"`` -> ``["dont", "stopnow"]``."""
    return text.lower().translate(_punctuation_deletion()).split()


def _shingle_tuples(text: str, ngram: int) -> set[tuple[str, ...]]:
    words = normalize_words(text)
    if not words:
        return set()
    if len(words) < ngram:
        return {tuple(words)}
    return {tuple(words[i:i + ngram]) for i in range(len(words) - ngram + 1)}


def jaccard(a: str, b: str, ngram: int = 5) -> float:
    """Exact Jaccard similarity of the two texts' word n-gram sets (1.0 when both have no shingle)."""
    sa, sb = _shingle_tuples(a, ngram), _shingle_tuples(b, ngram)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def estimate_jaccard(sig_a: np.ndarray, sig_b: np.ndarray) -> float:
    """MinHash estimate of the Jaccard similarity: the fraction of equal signature values."""
    if sig_a.shape != sig_b.shape:
        raise ValueError(f"signatures of different lengths: {sig_a.shape} vs {sig_b.shape}")
    return float(np.count_nonzero(sig_a == sig_b)) / sig_a.size


# --------------------------------------------------------------------------------------------------
# numba cache location and kernels


def _writable_dir(path: str | os.PathLike) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
        return True
    except OSError:
        return False


def _numba_cache_fallback() -> str | None:
    """Point numba's cache at a temp dir when neither ``__pycache__`` here nor the user cache is writable."""
    from numba.core import config as numba_config

    if numba_config.CACHE_DIR:  # NUMBA_CACHE_DIR given: numba uses it (or fails loudly)
        return None
    if _writable_dir(Path(__file__).resolve().parent / "__pycache__"):
        return None
    from numba.misc.appdirs import AppDirs

    if _writable_dir(AppDirs(appname="numba", appauthor=False).user_cache_dir):
        return None
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    fallback = os.path.join(tempfile.gettempdir(), f"refinedweb-numba-cache-{uid}")
    try:
        os.makedirs(fallback, mode=0o700, exist_ok=True)
    except OSError:
        pass
    if not _writable_dir(fallback):  # taken by someone else: a fresh one (compiled again per process)
        fallback = tempfile.mkdtemp(prefix="refinedweb-numba-cache-")
    numba_config.CACHE_DIR = fallback
    return fallback


NUMBA_CACHE_FALLBACK = _numba_cache_fallback()

from numba import njit  # noqa: E402  (after the cache location is settled)

_U32_MAX = np.uint32(0xFFFFFFFF)
_S32 = np.uint64(32)
_EMPTY_SLOT = np.uint64(1) << np.uint64(63)  # no 32-bit key looks like this
_S33 = np.uint64(33)
_FMIX_C1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX_C2 = np.uint64(0xC4CEB9FE1A85EC53)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_CHAR_MUL = np.uint64(0x9FB21C651E98DF25)                  # odd: (h ^ cp) * M is a bijection of h
_WORD_MUL = np.uint64(0xD6E8FEB86659FD93)                  # odd
_BAND_MUL = np.uint64(0xA0761D6478BD642F)                  # odd
_WORD_SEED = np.uint64(0xCBF29CE484222325)
_NGRAM_SEED = np.uint64(0x27D4EB2F165667C5)


@njit(cache=True, nogil=True)
def _fmix64(h):
    h ^= h >> _S33
    h *= _FMIX_C1
    h ^= h >> _S33
    h *= _FMIX_C2
    h ^= h >> _S33
    return h


@njit(cache=True, nogil=True)
def _doc_shingles(cps, start, end, classes, ngram, words, out):
    """Write the 64-bit n-gram hashes of ``cps[start:end]`` (lower-cased code points) to ``out``; return how many."""
    ncls = classes.shape[0]
    nw = 0
    h = _WORD_SEED
    length = 0
    for i in range(start, end):
        c = cps[i]
        k = classes[c] if c < ncls else 0
        if k == 0:
            h = (h ^ np.uint64(c)) * _CHAR_MUL
            length += 1
        elif k == 2:
            if length > 0:
                words[nw] = _fmix64(h ^ (np.uint64(length) * _GOLDEN))
                nw += 1
                h = _WORD_SEED
                length = 0
    if length > 0:
        words[nw] = _fmix64(h ^ (np.uint64(length) * _GOLDEN))
        nw += 1
    if nw == 0:
        return 0
    n = min(ngram, nw)
    m = nw - n + 1
    for j in range(m):
        g = _NGRAM_SEED
        for t in range(j, j + n):
            g = (g ^ words[t]) * _WORD_MUL
        out[j] = _fmix64(g ^ (np.uint64(n) * _GOLDEN))
    return m


@njit(cache=True, nogil=True)
def _minhash(keys, nkeys, a, b, sig):
    """``sig[i] = min_k (a[i] * keys[k] + b[i]) mod 2**32``.

    Perm-blocked (the block's ``a``, ``b`` and ``sig`` stay in L1) and four keys per pass over a block (one
    load/store of ``sig`` per four keys); LLVM turns the inner loops into AVX2 ``vpmulld``/``vpaddd``/``vpminud``.
    """
    p = sig.shape[0]
    for i in range(p):
        sig[i] = _U32_MAX
    for p0 in range(0, p, _PERM_BLOCK):
        p1 = min(p, p0 + _PERM_BLOCK)
        ab = a[p0:p1]
        bb = b[p0:p1]
        sb = sig[p0:p1]
        n = sb.shape[0]
        s = 0
        while s + 3 < nkeys:
            x0 = keys[s]
            x1 = keys[s + 1]
            x2 = keys[s + 2]
            x3 = keys[s + 3]
            for i in range(n):
                ai = ab[i]
                bi = bb[i]
                m01 = min(np.uint32(ai * x0 + bi), np.uint32(ai * x1 + bi))
                m23 = min(np.uint32(ai * x2 + bi), np.uint32(ai * x3 + bi))
                sb[i] = min(sb[i], min(m01, m23))
            s += 4
        while s < nkeys:
            x0 = keys[s]
            for i in range(n):
                sb[i] = min(sb[i], np.uint32(ab[i] * x0 + bb[i]))
            s += 1


@njit(cache=True, nogil=True)
def _band_keys(sig, band_seeds, rows, out):
    for j in range(band_seeds.shape[0]):
        h = band_seeds[j]
        base = j * rows
        r = 0
        while r + 1 < rows:
            h = (h ^ (np.uint64(sig[base + r]) | (np.uint64(sig[base + r + 1]) << _S32))) * _BAND_MUL
            r += 2
        if r < rows:
            h = (h ^ np.uint64(sig[base + r])) * _BAND_MUL
        out[j] = _fmix64(h)


@njit(cache=True, nogil=True)
def _unique_keys(shingles, m, keys, table):
    """Write the distinct top-32-bit keys of ``shingles[:m]`` to ``keys``; return how many (open addressing)."""
    size = 16
    while size < 2 * m:
        size <<= 1
    mask = np.uint32(size - 1)
    for i in range(size):
        table[i] = _EMPTY_SLOT
    k = 0
    for s in range(m):
        x = np.uint32(shingles[s] >> _S32)
        j = x & mask  # the keys are hash outputs: their low bits are already uniform
        while True:
            slot = table[j]
            if slot == _EMPTY_SLOT:
                table[j] = np.uint64(x)
                keys[k] = x
                k += 1
                break
            if slot == np.uint64(x):
                break
            j = (j + np.uint32(1)) & mask
    return k


@njit(cache=True, nogil=True)
def _batch_kernel(cps, offsets, classes, ngram, a, b, band_seeds, rows, keys_out, sigs_out, store_sigs):
    """Band keys (and, with ``store_sigs``, signatures) of every document ``cps[offsets[d]:offsets[d+1]]``."""
    ndocs = offsets.shape[0] - 1
    longest = 0
    for d in range(ndocs):
        longest = max(longest, offsets[d + 1] - offsets[d])
    most = longest // 2 + 2  # words (and shingles) of a document: each needs a character and a separator
    words = np.empty(most, dtype=np.uint64)
    shingles = np.empty(most, dtype=np.uint64)
    keys = np.empty(most, dtype=np.uint32)
    table = np.empty(4 * most + 32, dtype=np.uint64)
    p = a.shape[0]
    sig = np.empty(p, dtype=np.uint32)
    for d in range(ndocs):
        m = _doc_shingles(cps, offsets[d], offsets[d + 1], classes, ngram, words, shingles)
        k = _unique_keys(shingles, m, keys, table)  # repeated shingles (boilerplate) are hashed once
        _minhash(keys, k, a, b, sig)
        _band_keys(sig, band_seeds, rows, keys_out[d])
        if store_sigs:
            row = sigs_out[d]
            for i in range(p):
                row[i] = sig[i]


@njit(cache=True, nogil=True)
def _shingles_kernel(cps, classes, ngram):
    n = cps.shape[0]
    words = np.empty(n // 2 + 2, dtype=np.uint64)
    out = np.empty(n // 2 + 2, dtype=np.uint64)
    m = _doc_shingles(cps, 0, n, classes, ngram, words, out)
    return out[:m].copy()


# --------------------------------------------------------------------------------------------------
# public API


def _code_points(lowered: list[str]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(lowered) + 1, dtype=np.int64)
    np.cumsum([len(t) for t in lowered], out=offsets[1:])
    blob = "".join(lowered).encode("utf-32-le", "surrogatepass")
    return np.frombuffer(blob, dtype=np.uint32), offsets


def shingle_hashes(text: str, ngram: int = 5) -> np.ndarray:
    """Sorted unique 64-bit hashes of the text's word n-grams (see the module docstring for the hash)."""
    if ngram < 1:
        raise ValueError(f"ngram must be >= 1, got {ngram}")
    cps, _ = _code_points([text.lower()])
    return np.unique(_shingles_kernel(cps, _char_classes(), ngram))


class MinHasher:
    """MinHash signatures (``uint32[num_perm]``) and LSH band keys (``uint64[bands]``) of texts.

    Deterministic: the same config gives the same values in every process and on every machine (the
    parameters come from a splitmix64 stream of ``seed``, not from numpy's random generators).
    """

    def __init__(self, cfg: MinHashConfig | None = None) -> None:
        self.cfg = cfg if cfg is not None else MinHashConfig()
        stream = splitmix64_stream(self.cfg.seed, 2 * self.cfg.num_perm + self.cfg.bands)
        p = self.cfg.num_perm
        self.a = ((stream[:p] >> _S32).astype(np.uint32) | np.uint32(1))  # odd: a bijection mod 2**32
        self.b = (stream[p:2 * p] >> _S32).astype(np.uint32)
        self.band_seeds = stream[2 * p:].copy()
        self._classes = _char_classes()

    def _run(self, texts: Sequence[str], store_sigs: bool) -> tuple[np.ndarray, np.ndarray | None]:
        cfg = self.cfg
        n = len(texts)
        keys = np.empty((n, cfg.bands), dtype=np.uint64)
        sigs = np.empty((n if store_sigs else 1, cfg.num_perm), dtype=np.uint32)
        start = 0
        while start < n:  # chunks of ~_CHUNK_CODE_POINTS characters bound the UTF-32 copy
            lowered: list[str] = []
            size = 0
            stop = start
            while stop < n and (not lowered or size < _CHUNK_CODE_POINTS):
                t = texts[stop].lower()
                lowered.append(t)
                size += len(t)
                stop += 1
            cps, offsets = _code_points(lowered)
            _batch_kernel(cps, offsets, self._classes, cfg.ngram, self.a, self.b, self.band_seeds, cfg.rows,
                          keys[start:stop], sigs[start:stop] if store_sigs else sigs, store_sigs)
            start = stop
        return keys, (sigs if store_sigs else None)

    def signature(self, text: str) -> np.ndarray:
        """``uint32[num_perm]``: per function, the minimum over the text's shingles (all 0xFFFFFFFF if none)."""
        return self._run([text], True)[1][0]

    def signature_batch(self, texts: Sequence[str]) -> np.ndarray:
        """``uint32[len(texts), num_perm]``."""
        return self._run(texts, True)[1]

    def band_keys(self, text: str) -> np.ndarray:
        """``uint64[bands]``: each band's ``rows`` signature values (and the band index) hashed to one key."""
        return self._run([text], False)[0][0]

    def band_keys_batch(self, texts: Sequence[str]) -> np.ndarray:
        """``uint64[len(texts), bands]``: band keys of every text (the hot path; signatures are not kept)."""
        return self._run(texts, False)[0]


if sys.byteorder != "little":  # pragma: no cover - the UTF-32-LE view assumes a little-endian host
    raise ImportError("refinedweb.dedup.minhash needs a little-endian machine")
