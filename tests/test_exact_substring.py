"""Exact-substring deduplication: the suffix-array reference (refinedweb/dedup/reference/suffix_array.py) and
the cutting kernels (refinedweb/dedup/kernels/windows.py), on real text where it matters."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from refinedweb.config import load_config
from refinedweb.dedup.kernels import windows as kw
from refinedweb.dedup.reference import suffix_array as es
from refinedweb.dedup.reference.suffix_array import (
    ExactSubstringConfig,
    dedup_part,
    find_repeated_ranges,
    tokenize,
)
from refinedweb.errors import UserError
from refinedweb.stages.tokens import get_encoding

from .conftest import shared

K = 50


# ------------------------------------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def articles() -> list[str]:
    truth = json.loads(shared("extraction", "scrapinghub_aeb", "ground-truth.json").read_text(encoding="utf-8"))
    return [truth[key]["articleBody"] for key in sorted(truth) if truth[key].get("articleBody")]


def toks(text: str) -> list[int]:
    return tokenize([text])[0].tolist()


def paragraphs(article: str) -> list[str]:
    return [p.strip() for p in article.split("\n") if p.strip()]


def words(text: str) -> int:
    return len(text.split())


def passage(articles: list[str], lo: int = 70, hi: int = 160, ascii_only: bool = True, skip: int = 0) -> str:
    """A real paragraph of lo..hi GPT-2 tokens that occurs once in the corpus."""
    seen = 0
    for article in articles:
        for p in paragraphs(article):
            if lo <= len(toks(p)) <= hi and (p.isascii() or not ascii_only) and sum(a.count(p) for a in articles) == 1:
                if seen == skip:
                    return p
                seen += 1
    raise AssertionError("no passage found")


class Contexts:
    """Real paragraphs (>= 60 words, ASCII) used around planted passages. Every context used as text *before*
    a cut ends with a token not used by another, and every context *after* a cut starts with a token not
    used by another, so a planted repeat is exactly the passage plus the blank lines around it."""

    def __init__(self, articles: list[str], exclude: set[str]):
        self.pool = [p for a in articles for p in paragraphs(a)
                     if words(p) >= 60 and p.isascii() and p not in exclude and len(toks(p)) < 400]
        self.last: set[int] = set()
        self.first: set[int] = set()
        self.used: set[str] = set()

    def before(self) -> str:
        return self._take(lambda t: t[-1] not in self.last, lambda t: self.last.add(t[-1]))

    def after(self) -> str:
        return self._take(lambda t: t[0] not in self.first, lambda t: self.first.add(t[0]))

    def _take(self, ok, mark) -> str:
        for p in self.pool:
            t = toks(p)
            if p not in self.used and ok(t):
                self.used.add(p)
                mark(t)
                return p
        raise AssertionError("context pool exhausted")


def brute_force(arrays: list[list[int]], k: int, policy: str) -> list[list[tuple[int, int]]]:
    """Reference: mark every in-document k-window that occurs twice (remove_all) / that occurs at an earlier
    position of the part (keep_first), then take the maximal runs of marked tokens."""
    first: dict[tuple[int, ...], tuple[int, int]] = {}
    count: dict[tuple[int, ...], int] = {}
    for d, a in enumerate(arrays):
        for p in range(len(a) - k + 1):
            w = tuple(a[p:p + k])
            first.setdefault(w, (d, p))
            count[w] = count.get(w, 0) + 1
    out = []
    for d, a in enumerate(arrays):
        marked = [False] * len(a)
        for p in range(len(a) - k + 1):
            w = tuple(a[p:p + k])
            if count[w] > 1 and (policy == "remove_all" or first[w] != (d, p)):
                marked[p:p + k] = [True] * k
        runs, start = [], None
        for i, m in enumerate(marked + [False]):
            if m and start is None:
                start = i
            elif not m and start is not None:
                runs.append((start, i))
                start = None
        out.append(runs)
    return out


def longest_common_run(a: list[int], b: list[int]) -> int:
    best = 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                cur[j + 1] = prev[j] + 1
                best = max(best, cur[j + 1])
        prev = cur
    return best


# ------------------------------------------------------------------------------ behaviour on real text

@pytest.fixture(scope="module")
def planted(articles):
    """Three documents, each: before + blank line + P + blank line + after (P a real paragraph)."""
    p = passage(articles)
    ctx = Contexts(articles, {p})
    parts = [(ctx.before(), ctx.after()) for _ in range(3)]
    docs = [f"{b}\n\n{p}\n\n{a}" for b, a in parts]
    return p, parts, docs


def test_passage_in_three_documents_keep_first(planted):
    p, parts, docs = planted
    r = dedup_part(docs, ExactSubstringConfig(policy="keep_first"))
    assert r.texts[0] is docs[0]                                  # first occurrence kept, text untouched
    for i in (1, 2):
        assert r.texts[i] == f"{parts[i][0]}\n\n{parts[i][1]}"     # later occurrences removed exactly
        assert r.removed_chars[i] == len(p) + 4                    # the passage and its two "\n\n"
    assert r.removed_chars[0] == 0
    assert r.duplicate_spans == 2
    assert r.tokens == sum(len(toks(d)) for d in docs)


def test_passage_in_three_documents_remove_all(planted):
    p, parts, docs = planted
    r = dedup_part(docs, ExactSubstringConfig(policy="remove_all"))
    assert r.texts == [f"{b}\n\n{a}" for b, a in parts]
    assert r.duplicate_spans == 3


def _prefix_text(tokens: list[int], n: int) -> str | None:
    """The text of the first n tokens, if it re-tokenises to exactly them and ends in a letter."""
    enc = get_encoding("gpt2")
    try:
        text = enc.decode_bytes(tokens[:n]).decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if toks(text) == tokens[:n] and text[-1].isalpha() and text[0].isalpha() else None


@pytest.mark.parametrize("n", [K - 1, K])
def test_repeat_of_49_tokens_is_kept_and_50_removed(articles, n):
    source = toks(passage(articles, lo=120, hi=400, skip=1))
    start = next(s for s in range(len(source) - n) if _prefix_text(source[s:], n) is not None)
    shared_text = _prefix_text(source[start:], n)
    ctx = Contexts(articles, set())
    a_tail, b_head = ctx.after(), ctx.before()
    doc_a = f"{shared_text}\n\n{a_tail}"        # the shared span opens A (nothing before it)
    doc_b = f"{b_head}\n\n{shared_text}"        # and closes B (nothing after it)
    assert longest_common_run(toks(doc_a), toks(doc_b)) == n
    r = dedup_part([doc_a, doc_b], ExactSubstringConfig(policy="keep_first"))
    assert r.texts[0] is doc_a
    if n < K:
        assert r.texts[1] is doc_b and r.duplicate_spans == 0
    else:
        assert r.texts[1] == b_head and r.duplicate_spans == 1


def test_repeats_within_one_document(articles):
    p = passage(articles)
    ctx = Contexts(articles, {p})
    c1, c2 = ctx.before(), ctx.before()
    ctx.first.add(toks(c2)[0])
    c3 = ctx.after()
    doc = f"{c1}\n\n{p}\n\n{c2}\n\n{p}\n\n{c3}"
    keep = dedup_part([doc], ExactSubstringConfig(policy="keep_first"))
    assert keep.texts == [f"{c1}\n\n{p}\n\n{c2}\n\n{c3}"]
    assert keep.duplicate_spans == 1
    gone = dedup_part([doc], ExactSubstringConfig(policy="remove_all"))
    assert gone.texts == [f"{c1}\n\n{c2}\n\n{c3}"]
    assert gone.duplicate_spans == 2


def test_no_match_across_a_document_boundary(articles):
    q = passage(articles, lo=70, hi=90, skip=2)
    qt = toks(q)
    enc = get_encoding("gpt2")
    # split q between two words; each half, even with the two "\n" tokens next to it, is shorter than K
    m = next(m for m in range(len(qt) - K + 3, K - 2)
             if enc.decode([qt[m]]).startswith(" ") and toks(enc.decode(qt[:m])) == qt[:m]
             and toks(enc.decode(qt[m:])) == qt[m:])
    assert m + 2 < K and len(qt) - m + 2 < K <= len(qt)
    head, tail = enc.decode(qt[:m]), enc.decode(qt[m:])
    ctx = Contexts(articles, {q})
    a, b, c, d = ctx.before(), ctx.after(), ctx.before(), ctx.after()
    docs = [f"{a}\n\n{head}", f"{tail}\n\n{b}", f"{c}\n\n{q}\n\n{d}"]   # docs 0|1 end/start with q's halves
    for policy in ("keep_first", "remove_all"):
        r = dedup_part(docs, ExactSubstringConfig(policy=policy))
        assert r.duplicate_spans == 0 and all(t is s for t, s in zip(r.texts, docs))
    # control: the same halves inside one document do repeat q
    joined = dedup_part([f"{a}\n\n{head}{tail}\n\n{b}", docs[2]], ExactSubstringConfig(policy="keep_first"))
    assert joined.duplicate_spans == 1 and q not in joined.texts[1] and q in joined.texts[0]
    # the same at token level, with the end of one document + the start of the next = a third document
    arrays = [np.array([7, 8, 9] + qt[:m]), np.array(qt[m:] + [1, 2, 3]), np.array([4] + qt + [5])]
    assert find_repeated_ranges(arrays, K, "remove_all") == [[], [], []]


def test_utf8_never_cut_inside_a_character(articles):
    s = " " + passage(articles, lo=60, hi=200, ascii_only=False)   # a real non-English paragraph
    assert not s.isascii()
    ctx = Contexts(articles, set())
    a_head, b_head = ctx.before(), ctx.before()
    doc_a = f"{a_head}\n\nWow 🙀{s}"
    doc_b = f"{b_head}\n\nYes 😀{s}"
    # 🙀 and 😀 both end with the byte token b"\x80": the repeat starts inside the emoji of both documents
    ta, tb = toks(doc_a), toks(doc_b)
    assert ta[-len(toks(s)) - 1] == tb[-len(toks(s)) - 1] == 222
    assert ta[-len(toks(s)) - 2] != tb[-len(toks(s)) - 2]
    keep = dedup_part([doc_a, doc_b], ExactSubstringConfig(policy="keep_first"))
    assert keep.texts == [doc_a, f"{b_head}\n\nYes 😀"]              # the emoji stays whole
    gone = dedup_part([doc_a, doc_b], ExactSubstringConfig(policy="remove_all"))
    assert gone.texts == [f"{a_head}\n\nWow 🙀", f"{b_head}\n\nYes 😀"]
    for t in keep.texts + gone.texts:
        assert "\ufffd" not in t and t.encode("utf-8").decode("utf-8") == t


def test_char_ranges_keep_partial_characters_whole():
    """Random removed token ranges over accented / CJK / emoji text: exactly the characters whose bytes are
    all removed disappear."""
    rng = random.Random(7)
    alphabet = list("aé ü漢字中文遂邃ñ\n") + ["😀", "🙀", "🤖", "🦜", "👍🏽"]
    partial = 0
    for _ in range(150):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        tokens = tokenize([text])[0]
        n = len(tokens)
        cuts = sorted(rng.sample(range(n + 1), min(n + 1, 2 * rng.randint(1, 3))))
        ranges = [(cuts[i], cuts[i + 1]) for i in range(0, len(cuts) - 1, 2) if cuts[i] < cuts[i + 1]]
        if not ranges:
            continue
        lengths = kw._token_byte_lengths()[tokens]
        bounds = np.concatenate(([0], np.cumsum(lengths)))
        removed_bytes = set()
        for a, b in ranges:
            removed_bytes.update(range(bounds[a], bounds[b]))
        expected, offset = [], 0
        for i, ch in enumerate(text):
            size = len(ch.encode("utf-8"))
            covered = sum(o in removed_bytes for o in range(offset, offset + size))
            partial += 0 < covered < size
            if covered == size:
                expected.append(i)
            offset += size
        got = [i for a, b in kw._char_ranges(text, tokens, ranges) for i in range(a, b)]
        assert got == expected
    assert partial > 20   # the rule was exercised


def test_documents_falling_under_min_words_are_dropped(articles):
    p = passage(articles)
    ctx = Contexts(articles, {p})
    short_head = "Short note before the copied paragraph."
    ctx.last.add(toks(short_head)[-1])
    long_doc = f"{ctx.before()}\n\n{p}"
    short_doc = f"{short_head}\n\n{p}"
    assert words(short_doc) >= 50 > words(short_head)
    r = dedup_part([long_doc, short_doc], ExactSubstringConfig(policy="keep_first"))
    assert r.texts == [long_doc, None]
    assert r.removed_chars[1] > 0
    kept = dedup_part([long_doc, short_doc], ExactSubstringConfig(min_words=0))
    assert kept.texts[1] == short_head
    tiny = "Too short to matter, but untouched."                     # nothing removed: never dropped here
    assert dedup_part([tiny], ExactSubstringConfig(policy="keep_first")).texts == [tiny]


def test_deterministic(articles):
    docs = articles[:40] + [articles[3] + "\n\n" + articles[5], articles[5][: len(articles[5]) // 2]]
    first = dedup_part(docs, ExactSubstringConfig(policy="keep_first"))
    second = dedup_part(list(docs), ExactSubstringConfig(policy="keep_first"))
    assert first.texts == second.texts and first.removed_chars == second.removed_chars
    assert first.duplicate_spans == second.duplicate_spans > 0
    arrays = tokenize(docs)
    assert find_repeated_ranges(arrays, K) == find_repeated_ranges([a.copy() for a in arrays], K)


def test_tokenize_is_encode_ordinary():
    enc = get_encoding("gpt2")
    texts = ["Hello world", "<|endoftext|> is plain text here", "a\ud800b lone surrogate", "", "漢字 😀 é"]
    assert [t.tolist() for t in tokenize(texts)] == [enc.encode_ordinary(t) for t in texts]


def test_whitespace_at_cuts():
    assert kw._cut("one two three four", [(3, 7)]) == "one three four"          # " two" removed
    assert kw._cut("para one.\n\nCOPY\n\npara two.", [(11, 15)]) == "para one.\n\npara two."
    assert kw._cut("end.\n\nCOPY\n\nNext", [(4, 12)]) == "end.\n\nNext"          # cut took the newlines
    assert kw._cut("line\nCOPY\nline", [(5, 9)]) == "line\nline"                # a whole line
    assert kw._cut("line\n\nCOPY\n\nline", [(5, 11)]) == "line\n\nline"          # cut inside blank lines
    assert kw._cut("a\n\n\n\nCOPY\n\n\nb", [(5, 9)]) == "a\n\nb"
    assert kw._cut("a \n b", [(1, 4)]) == "a\nb"                                 # a whitespace-only cut
    assert kw._cut("COPY  rest  ", [(0, 4)]) == "rest"
    assert kw._cut("a X b Y c", [(2, 3), (6, 7)]) == "a b c"
    assert kw._cut("abXYcd", [(2, 4)]) == "abcd"                                 # inside a word: no space


# ------------------------------------------------------------------------------------ exact algorithm

def _random_case(rng: random.Random) -> tuple[list[list[int]], int]:
    vocab = rng.randint(3, 5)
    k = rng.randint(4, 6)
    arrays = [[rng.randrange(vocab) for _ in range(rng.choice([0, rng.randint(1, 12), rng.randint(10, 40)]))]
              for _ in range(rng.randint(1, 6))]
    if rng.random() < 0.3:   # mostly unique text with a few planted repeats: the prefilter has work to do
        arrays = [[rng.randrange(1000) for _ in range(len(a))] for a in arrays]
        for _ in range(rng.randint(1, 3)):
            src, dst = rng.randrange(len(arrays)), rng.randrange(len(arrays))
            if len(arrays[src]) >= k:
                at = rng.randrange(len(arrays[src]) - k + 1)
                span = arrays[src][at:at + k + rng.randint(0, 3)]
                pos = rng.randint(0, len(arrays[dst]))
                arrays[dst] = arrays[dst][:pos] + span + arrays[dst][pos:]
    return arrays, k


@pytest.mark.parametrize("seed", range(4))
def test_matches_brute_force_on_random_tokens(seed, monkeypatch):
    rng = random.Random(seed)
    for case in range(80):
        arrays, k = _random_case(rng)
        # also exercise the 1-, 2- and 4-byte symbol paths of the suffix sort
        scale = rng.choice([1, 1, 997, 40_009])
        big = [np.array([x * scale + 3 for x in a], dtype=np.int64) for a in arrays]
        for policy in ("keep_first", "remove_all"):
            want = brute_force(arrays, k, policy)
            assert find_repeated_ranges(big, k, policy) == want, (seed, case, policy, k, arrays)
            part = es._concatenate(big)
            assert es._find(part, k, policy, prefilter=False) == want       # suffix array of the whole part
            with monkeypatch.context() as m:
                m.setattr(es, "_PREFILTER_MAX_SHARE", 2.0)                   # always sort the regions only
                assert es._find(part, k, policy) == want


def test_prefilter_is_exact_even_with_a_colliding_hash(monkeypatch):
    """The hash only selects candidate regions; collisions add regions but never change the result."""
    rng = random.Random(11)
    cases = [_random_case(rng) for _ in range(60)]
    monkeypatch.setattr(es, "_PREFILTER_MAX_SHARE", 2.0)
    for collide in (lambda text, k: np.zeros(len(text) - k + 1, dtype=np.uint64),
                    lambda text, k: (text[:len(text) - k + 1] % 2).astype(np.uint64) << np.uint64(63)):
        monkeypatch.setattr(es, "_window_hashes", collide)
        for arrays, k in cases:
            part = es._concatenate([np.array(a, dtype=np.int64) for a in arrays])
            for policy in ("keep_first", "remove_all"):
                assert es._find(part, k, policy) == brute_force(arrays, k, policy)


def test_prefilter_regions_on_real_text(articles):
    """On real text the candidate regions are a small share, and sorting them alone changes nothing."""
    docs = articles[:60] + [articles[1][:3000] + "\n\n" + articles[7][:2000], articles[7][1000:4000]]
    part = es._concatenate(tokenize(docs))
    lo, hi = es._candidate_regions(part, K)
    assert 0 < int((hi - lo).sum()) < 0.2 * len(part.text)
    fast = es._find(part, K, "keep_first")
    assert fast == es._find(part, K, "keep_first", prefilter=False)
    assert any(fast)


def test_suffix_array_and_lcp_are_exact():
    rng = np.random.default_rng(3)
    for dtype, high in ((np.uint8, 4), (np.uint16, 5), (np.uint16, 60_000), (np.uint32, 100_000)):
        for _ in range(20):
            text = rng.integers(0, high, rng.integers(1, 60)).astype(dtype)
            if high < 10:
                text = np.tile(text, 3)
            sa = es._suffix_array(text.copy())
            want = sorted(range(len(text)), key=lambda i: text[i:].tolist())
            assert sa.tolist() == want
            lcp = es._lcp(text, sa)
            for i in range(len(text) - 1):
                a, b = text[sa[i]:].tolist(), text[sa[i + 1]:].tolist()
                n = 0
                while n < min(len(a), len(b)) and a[n] == b[n]:
                    n += 1
                assert lcp[i] == n


def test_overlapping_repeats_rule():
    # a a a a a, k = 2: windows at 1, 2, 3 are later copies of the window at 0 -> only the first token stays
    assert find_repeated_ranges([np.array([0] * 5)], 2, "keep_first") == [[(1, 5)]]
    assert find_repeated_ranges([np.array([0] * 5)], 2, "remove_all") == [[(0, 5)]]
    # adjacent removal windows merge into one range
    arrays = [np.array([1, 2, 3, 4, 5, 6]), np.array([9, 1, 2, 3, 7, 4, 5, 6, 9])]
    assert find_repeated_ranges(arrays, 3, "keep_first") == [[], [(1, 4), (5, 8)]]
    arrays = [np.array([1, 2, 3, 4, 5, 6]), np.array([9, 1, 2, 3, 4, 5, 6, 9])]
    assert find_repeated_ranges(arrays, 3, "keep_first") == [[], [(1, 7)]]
    # a window that starts in an earlier document and one later in the same document
    assert find_repeated_ranges([np.array([5, 6, 7, 5, 6, 7])], 3, "keep_first") == [[(3, 6)]]


# -------------------------------------------------------------------------------------- parts, config

def test_config():
    section = load_config()["dedup"]["exact_substring"]
    cfg = ExactSubstringConfig.from_config(section)
    assert (cfg.min_tokens, cfg.policy, cfg.min_words) == (50, "remove_all", 50)
    assert cfg.max_part_bytes == int(section["max_part_bytes"])
    assert ExactSubstringConfig.from_config({}) == ExactSubstringConfig()
    assert ExactSubstringConfig.from_config(None).max_part_bytes == int(section["max_part_bytes"])
    assert ExactSubstringConfig.from_config({"policy": "remove_all", "min_tokens": "20"}).min_tokens == 20
    for bad, fragment in (({"policy": "first"}, "policy"), ({"min_tokens": 0}, "min_tokens"),
                          ({"min_tokens": -3}, "min_tokens"), ({"min_tokens": "x"}, "min_tokens"),
                          ({"min_words": 2.5}, "min_words"), ({"max_part_bytes": 0}, "max_part_bytes")):
        with pytest.raises(UserError) as info:
            ExactSubstringConfig.from_config(bad)
        assert fragment in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(UserError):
        find_repeated_ranges([np.array([1, 2])], 0, "keep_first")


def test_empty_and_tiny_parts():
    assert dedup_part([], ExactSubstringConfig(policy="keep_first")).texts == []
    r = dedup_part(["", "hello"], ExactSubstringConfig(policy="keep_first"))
    assert r.texts == ["", "hello"] and r.duplicate_spans == 0 and r.tokens == 1
