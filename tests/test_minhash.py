"""MinHash / LSH for fuzzy deduplication (refinedweb.dedup.kernels.minhash)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import lru_cache

import numpy as np
import pytest

from refinedweb.dedup.kernels import minhash as mh
from refinedweb.dedup.kernels.minhash import (
    MinHashConfig,
    MinHasher,
    estimate_jaccard,
    jaccard,
    normalize_words,
    shingle_hashes,
)
from refinedweb.errors import UserError

from .conftest import REPO, shared

P = 9000


# --------------------------------------------------------------------------------------------------
# real text and planted pairs


@lru_cache(maxsize=1)
def _corpus_tokens() -> tuple[str, ...]:
    path = shared("extraction", "scrapinghub_aeb", "ground-truth.json")
    articles = json.loads(path.read_text())
    tokens: list[str] = []
    for item in sorted(articles.values(), key=lambda a: a.get("url", "")):
        tokens += (item.get("articleBody") or "").split()
    return tuple(tokens)


@lru_cache(maxsize=1)
def _corpus_words() -> tuple[str, ...]:
    return tuple(normalize_words(" ".join(_corpus_tokens())))


def _raw_window(index: int, tokens: int = 404) -> str:
    """A stretch of real text with its case and punctuation."""
    t = _corpus_tokens()
    start = (index * 997) % (len(t) - tokens)
    return " ".join(t[start:start + tokens])


def _planted_pair(index: int, target: float, length: int = 404) -> tuple[str, str, float]:
    """(a, b, exact J): ``a`` is ``length`` real words; ``b`` replaces one or two blocks of ``a`` with words from
    elsewhere in the corpus, sized so the measured shingle Jaccard is as close to ``target`` as possible."""
    words = _corpus_words()
    rng = np.random.default_rng(1000 + index)
    start = int(rng.integers(0, len(words) - length))
    a = list(words[start:start + length])
    donor = int((start + len(words) // 2) % (len(words) - length))
    two_blocks = bool(index % 2)
    n = length - 4
    guess = max(1, round(n * (1 - target) / (1 + target)) - 4 * (2 if two_blocks else 1))
    best = None
    for k in range(max(1, guess - 6), guess + 7):
        b = list(a)
        if two_blocks and k >= 2:
            k1 = k // 2
            p1 = int(rng.integers(0, length // 2 - k1)) if length // 2 > k1 else 0
            p2 = int(rng.integers(length // 2, length - (k - k1)))
            b[p1:p1 + k1] = words[donor:donor + k1]
            b[p2:p2 + k - k1] = words[donor + 500:donor + 500 + k - k1]
        else:
            p = int(rng.integers(0, length - k))
            b[p:p + k] = words[donor:donor + k]
        ta, tb = " ".join(a), " ".join(b)
        j = jaccard(ta, tb)
        if best is None or abs(j - target) < abs(best[2] - target):
            best = (ta, tb, j)
    return best


# --------------------------------------------------------------------------------------------------
# normalisation and shingles


def test_normalize_words():
    assert normalize_words("Hello, World! It's 2023 \u2014 the \u201cbest\u201d year\u2026") == [
        "hello", "world", "its", "2023", "the", "best", "year"]
    assert normalize_words("state-of-the-art (ML) [1]: e.g.") == ["stateoftheart", "ml", "1", "eg"]
    assert normalize_words("a\u00a0b\u3000c\u2009d\te\n\nf\x1cg") == list("abcdefg")
    # ASCII symbols of string.punctuation are dropped, other Unicode symbols are kept
    assert normalize_words("$5 + 3 = 8 ~ 9 \u20ac \u00b0C") == ["5", "3", "8", "9", "\u20ac", "\u00b0c"]
    assert normalize_words("\u00c9T\u00c9 \u039f\u0394\u03a5\u03a3\u03a3\u0395\u03a5\u03a3 \u00bfQu\u00e9?") == [
        "\u00e9t\u00e9", "\u03bf\u03b4\u03c5\u03c3\u03c3\u03b5\u03c5\u03c2", "qu\u00e9"]
    assert normalize_words("") == [] and normalize_words(" ... \u2014 !! ") == []


def test_shingle_counts():
    assert len(shingle_hashes("a b c d e f")) == 2
    assert len(shingle_hashes("a b c d e")) == 1
    assert len(shingle_hashes("A, b; c!")) == 1  # fewer than 5 words: one shingle of all of them
    assert len(shingle_hashes("")) == 0 and len(shingle_hashes("... \u2014 ?!")) == 0
    assert len(shingle_hashes("x x x x x x x x x")) == 1  # unique shingles
    assert len(shingle_hashes("b a b", ngram=1)) == 2
    assert len(shingle_hashes("one two three four five six seven", ngram=3)) == 5
    assert shingle_hashes("a b c d e f").dtype == np.uint64
    assert not np.array_equal(shingle_hashes("a b c d e"), shingle_hashes("e d c b a"))  # order matters
    assert not set(shingle_hashes("a b c d")) & set(shingle_hashes("a b c d e"))
    assert np.array_equal(shingle_hashes("Hello, World!"), shingle_hashes("hello world"))
    with pytest.raises(ValueError):
        shingle_hashes("a b", ngram=0)


def test_compiled_tokenizer_matches_python_normalization():
    tricky = ("Caf\u00e9 \u00bbna\u00efve\u00ab \ud800 lone surrogate\x1d\x1esep \u0085next \U0001d518\U0001d52b "
              "\U0001f600 emoji \u0130stanbul \u00df \u2028line\u2029par \u200bzero-width "
              "\u3001\u3002\u300c\u9577\u300d fin")
    texts = [_raw_window(i) for i in range(25)] + [tricky, tricky * 3]
    for text in texts:
        words = normalize_words(text)
        for n in (1, 2, 5):
            expected = len(mh._shingle_tuples(text, n))
            got = shingle_hashes(text, n)
            assert len(got) == expected
            # the compiled path tokenises the raw text exactly as the Python normalisation does
            assert np.array_equal(got, shingle_hashes(" ".join(words), n))


# --------------------------------------------------------------------------------------------------
# signatures


def _reference_signature(hasher: MinHasher, text: str) -> np.ndarray:
    keys = np.unique((shingle_hashes(text, hasher.cfg.ngram) >> np.uint64(32)).astype(np.uint64))
    if not len(keys):
        return np.full(hasher.cfg.num_perm, 0xFFFFFFFF, dtype=np.uint32)
    a, b = hasher.a.astype(np.uint64), hasher.b.astype(np.uint64)
    return ((keys[:, None] * a[None, :] + b[None, :]) & np.uint64(0xFFFFFFFF)).min(axis=0).astype(np.uint32)


def _reference_band_keys(hasher: MinHasher, sig: np.ndarray) -> np.ndarray:
    rows = hasher.cfg.rows
    values = sig.astype(np.uint64).reshape(hasher.cfg.bands, rows)
    h = hasher.band_seeds.copy()
    with np.errstate(over="ignore"):
        for r in range(0, rows - 1, 2):
            h = (h ^ (values[:, r] | (values[:, r + 1] << np.uint64(32)))) * mh._BAND_MUL
        if rows % 2:
            h = (h ^ values[:, rows - 1]) * mh._BAND_MUL
        for c in (mh._FMIX_C1, mh._FMIX_C2):
            h ^= h >> np.uint64(33)
            h *= c
        h ^= h >> np.uint64(33)
    return h


@pytest.mark.parametrize("cfg", [MinHashConfig(), MinHashConfig(num_perm=21, bands=7, rows=3, ngram=2, seed=9),
                                 MinHashConfig(num_perm=1030, bands=103, rows=10, seed=0)])
def test_kernel_matches_numpy_reference(cfg):
    hasher = MinHasher(cfg)
    texts = ["", "one", "one two", "one two three", "a b c d e f g h", _raw_window(3), _raw_window(4)[:777]]
    sigs = hasher.signature_batch(texts)
    keys = hasher.band_keys_batch(texts)
    assert sigs.dtype == np.uint32 and sigs.shape == (len(texts), cfg.num_perm)
    assert keys.dtype == np.uint64 and keys.shape == (len(texts), cfg.bands)
    for i, text in enumerate(texts):
        ref = _reference_signature(hasher, text)
        assert np.array_equal(sigs[i], ref)
        assert np.array_equal(hasher.signature(text), ref)
        assert np.array_equal(keys[i], _reference_band_keys(hasher, ref))
        assert np.array_equal(hasher.band_keys(text), keys[i])


def test_empty_and_short_documents():
    hasher = MinHasher()
    empty = hasher.signature("")
    assert empty.shape == (P,) and empty.dtype == np.uint32 and (empty == mh.EMPTY_VALUE).all()
    assert np.array_equal(hasher.signature(" ?! \u2014 "), empty)
    keys = hasher.band_keys("")
    assert len(np.unique(keys)) == 450  # equal values in different bands give different keys
    assert np.array_equal(hasher.signature("Hello, world!"), hasher.signature("hello world"))
    assert estimate_jaccard(hasher.signature("hello world"), hasher.signature("hello there")) < 0.01


def test_batches_and_chunks_agree(monkeypatch):
    hasher = MinHasher()
    texts = [_raw_window(i) for i in range(6)] + ["", "short text"]
    whole = hasher.band_keys_batch(texts)
    monkeypatch.setattr(mh, "_CHUNK_CODE_POINTS", 300)  # forces a chunk per one or two texts
    assert np.array_equal(hasher.band_keys_batch(texts), whole)
    assert np.array_equal(np.stack([hasher.band_keys(t) for t in texts]), whole)
    assert hasher.band_keys_batch([]).shape == (0, 450)


# --------------------------------------------------------------------------------------------------
# statistics: estimates, band collisions, datasketch


@pytest.mark.parametrize("target", [0.3, 0.5, 0.8, 0.95])
def test_estimated_jaccard_close_to_exact(target):
    for seed in (1, 2):
        hasher = MinHasher(MinHashConfig(seed=seed))
        for i in range(3):
            a, b, exact = _planted_pair(10 * i + int(target * 100), target)
            assert abs(exact - target) < 0.02
            est = estimate_jaccard(hasher.signature(a), hasher.signature(b))
            assert abs(est - exact) <= 0.03, (target, seed, i, exact, est)


def test_estimate_errors_are_unbiased_and_binomial():
    """The 9,000 functions act as independent trials: error spread ~ sqrt(J(1-J)/9000), mean ~ 0."""
    rng = np.random.default_rng(7)
    pairs = [_planted_pair(200 + i, float(rng.uniform(0.3, 0.95))) for i in range(100)]
    hasher = MinHasher()
    sig_a = hasher.signature_batch([p[0] for p in pairs])
    sig_b = hasher.signature_batch([p[1] for p in pairs])
    exact = np.array([p[2] for p in pairs])
    est = (sig_a == sig_b).mean(axis=1)
    z = (est - exact) / np.sqrt(exact * (1 - exact) / P)
    assert abs(z.mean()) < 0.4, z.mean()
    assert 0.7 < z.std() < 1.35, z.std()


def test_band_key_collisions():
    similar = [_planted_pair(400 + i, t) for i, t in enumerate(np.linspace(0.86, 0.97, 12))]
    different = [_planted_pair(500 + i, t) for i, t in enumerate(np.linspace(0.2, 0.5, 12))]
    assert min(p[2] for p in similar) >= 0.85 and max(p[2] for p in different) <= 0.5
    texts = [t for p in similar + different for t in p[:2]]
    shared_any = []
    for seed in range(1, 11):
        keys = MinHasher(MinHashConfig(seed=seed)).band_keys_batch(texts)
        shared_any.append((keys[0::2] == keys[1::2]).any(axis=1))
    shared_any = np.array(shared_any)  # (seeds, pairs)
    n = len(similar)
    assert shared_any[:, :n].mean() >= 0.99  # J >= 0.85: nearly always a candidate
    assert (~shared_any[:, n:]).mean() >= 0.99  # J <= 0.5: nearly never
    cfg = MinHashConfig()
    assert cfg.collision_probability(0.85) > 0.9999 and cfg.collision_probability(0.5) < 1e-3


def test_agrees_with_datasketch():
    datasketch = pytest.importorskip("datasketch")
    pairs = [_planted_pair(600 + i, t) for i, t in enumerate((0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95))]
    hasher = MinHasher()

    def ds_minhash(text):
        w = normalize_words(text)
        m = datasketch.MinHash(num_perm=P, seed=1)
        m.update_batch([" ".join(w[i:i + 5]).encode() for i in range(len(w) - 4)])
        return m

    ours, theirs = [], []
    for a, b, exact in pairs:
        ours.append(estimate_jaccard(hasher.signature(a), hasher.signature(b)))
        theirs.append(ds_minhash(a).jaccard(ds_minhash(b)))
        assert abs(theirs[-1] - exact) <= 0.03
    diff = np.array(ours) - np.array(theirs)
    assert np.abs(diff).mean() < 0.012, diff
    assert abs(diff.mean()) < 0.006, diff


def test_exact_jaccard():
    assert jaccard("a b c d e f", "A, b c d e f!") == 1.0
    assert jaccard("", "") == 1.0 and jaccard("", "a b c d e") == 0.0
    assert jaccard("a b c d e f", "a b c d e g") == pytest.approx(1 / 3)
    assert jaccard("a b c", "a b c d", ngram=2) == pytest.approx(2 / 3)


# --------------------------------------------------------------------------------------------------
# determinism, numba cache, config


_KEYS_SCRIPT = """
import hashlib, sys
from refinedweb.dedup.kernels.minhash import MinHasher, MinHashConfig
texts = [sys.argv[2], "", "Hello, world!"]
keys = MinHasher(MinHashConfig(seed=int(sys.argv[1]))).band_keys_batch(texts)
print(hashlib.sha256(keys.tobytes()).hexdigest())
"""


def test_deterministic_across_calls_and_processes():
    import hashlib

    text = _raw_window(11)
    texts = [text, "", "Hello, world!"]
    first = MinHasher(MinHashConfig(seed=5)).band_keys_batch(texts)
    assert np.array_equal(MinHasher(MinHashConfig(seed=5)).band_keys_batch(texts), first)
    assert not (MinHasher(MinHashConfig(seed=6)).band_keys_batch(texts) == first).any()
    out = subprocess.run([sys.executable, "-c", _KEYS_SCRIPT, "5", text], cwd=REPO, check=True,
                         capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == hashlib.sha256(first.tobytes()).hexdigest()


def test_numba_cache_fallback_logic(monkeypatch, tmp_path):
    from numba.core import config as numba_config

    monkeypatch.setattr(numba_config, "CACHE_DIR", "")
    monkeypatch.setattr(mh.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(mh, "_writable_dir", lambda path: False)
    chosen = mh._numba_cache_fallback()
    assert chosen is not None and chosen.startswith(str(tmp_path)) and numba_config.CACHE_DIR == chosen
    monkeypatch.setattr(numba_config, "CACHE_DIR", "/somewhere/given")  # NUMBA_CACHE_DIR wins
    assert mh._numba_cache_fallback() is None and numba_config.CACHE_DIR == "/somewhere/given"


_READ_ONLY_SCRIPT = """
import os, sys, tempfile
allowed = os.path.realpath(sys.argv[1])
real = tempfile.TemporaryFile
def guarded(*args, dir=None, **kwargs):  # every directory but the temp dir acts read-only
    if dir is not None and not os.path.realpath(dir).startswith(allowed):
        raise PermissionError(13, "read-only", dir)
    return real(*args, dir=dir, **kwargs)
tempfile.TemporaryFile = guarded
import numpy as np
from refinedweb.dedup.kernels import minhash as mh
assert mh.NUMBA_CACHE_FALLBACK and mh.NUMBA_CACHE_FALLBACK.startswith(allowed), mh.NUMBA_CACHE_FALLBACK
out = np.empty(3, np.uint64)
mh._band_keys(np.arange(6, dtype=np.uint32), np.arange(3, dtype=np.uint64), 2, out)
print(mh.NUMBA_CACHE_FALLBACK)
"""


def test_numba_cache_works_with_read_only_package_and_home(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["TMPDIR"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-c", _READ_ONLY_SCRIPT, str(tmp_path)], cwd=REPO, env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    cache = out.stdout.strip()
    assert any(name.endswith(".nbi") for _, _, files in os.walk(cache) for name in files)


def test_config_defaults_and_paper_section(paper_config):
    cfg = MinHashConfig.from_config(paper_config["dedup"]["minhash"])  # extra keys (jaccard_check, ...) ignored
    assert cfg == MinHashConfig() == MinHashConfig.from_config({})
    assert (cfg.num_perm, cfg.bands, cfg.rows, cfg.ngram, cfg.seed) == (9000, 450, 20, 5, 1)
    assert cfg.threshold() == pytest.approx(0.7367, abs=1e-3)
    assert MinHashConfig.from_config({"num_perm": 128, "bands": 32, "rows": 4, "seed": 3}).threshold() == \
        pytest.approx((1 / 32) ** (1 / 4))


@pytest.mark.parametrize("section, words", [
    ({"bands": 400}, ["bands", "rows", "num_perm", "400 x 20"]),
    ({"num_perm": 9001}, ["num_perm"]),
    ({"rows": 0}, ["rows", ">= 1"]),
    ({"ngram": "five"}, ["ngram", "integer"]),
    ({"ngram": 4.5}, ["ngram", "integer"]),
    ({"bands": True}, ["bands", "integer"]),
    ({"seed": -1}, ["seed"]),
    ({"num_perm": None}, ["num_perm", "integer"]),
])
def test_config_validation(section, words):
    with pytest.raises(UserError) as err:
        MinHashConfig.from_config(section)
    message = str(err.value)
    assert "\n" not in message and all(w in message for w in words), message
    assert "dedup.minhash." in message


def test_config_validation_direct():
    with pytest.raises(UserError):
        MinHashConfig(num_perm=100, bands=9, rows=10)
    with pytest.raises(UserError):
        MinHashConfig.from_config([("num_perm", 10)])
