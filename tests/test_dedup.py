"""The dedup stage: on Ray through the CLI once, and in-process (same driver, units run one after
another) for everything that compares settings: the work split must never change what is found."""

import json
import os
import subprocess
import sys
import zlib

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from refinedweb.dedup.kernels.windows import ExactSubstringConfig
from refinedweb.dedup.reference.suffix_array import dedup_part

from .conftest import REPO, shared
from .dedup_corpus import make_corpus, make_planted, split_sentences
from .serial import dedup_in_process


def run_cli(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "refinedweb", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=dict(os.environ))


@pytest.fixture(scope="module")
def sentences():
    truth = json.loads(shared("extraction", "scrapinghub_aeb", "ground-truth.json").read_text())
    return split_sentences([v["articleBody"] for v in truth.values()])


@pytest.fixture(scope="module")
def corpus(sentences, tmp_path_factory):
    corpus = make_corpus(sentences, n_docs=200)
    folder = tmp_path_factory.mktemp("corpus")
    rows = corpus.rows
    for i, chunk in enumerate((rows[:90], rows[90:180], rows[180:])):
        pq.write_table(pa.Table.from_pylist(chunk), folder / f"input-{i}.parquet")
    return corpus, folder


def _dedup(folder, out, *sets):
    result = run_cli("run", "--stage", "dedup", "--workers", "2", "--input", str(folder), "--output", str(out),
                     *[a for s in sets for a in ("--set", s)])
    assert result.returncode == 0, result.stderr[-3000:]
    table = ds.dataset(str(out / "dedup"), format="parquet", exclude_invalid_files=True).to_table()
    stats = json.loads((out / "dedup" / ".refinedweb/stats.json").read_text())
    return {r["id"]: r for r in table.to_pylist()}, stats, result


@pytest.fixture(scope="module")
def deduped(corpus, tmp_path_factory):
    """The default settings on Ray, with 3 parts (so the shuffles cross tasks)."""
    _, folder = corpus
    return _dedup(folder, tmp_path_factory.mktemp("dedup"), "dedup.parts=3")


def test_near_duplicates_found_and_distinct_documents_untouched(corpus, deduped):
    c, _ = corpus
    out, stats, _ = deduped
    originals = {r["id"]: r for r in c.rows}
    high = [(a, b, j) for a, b, j in c.near_pairs if j >= 0.8]
    low = [(a, b, j) for a, b, j in c.near_pairs if j <= 0.3]
    assert len(high) >= 8 and len(low) >= 4, c.near_pairs
    for a, b, j in high:                      # recall at J >= 0.8: the later copy goes, the first stays
        assert a in out and b not in out, (a, b, j)
    for a, b, j in low:                       # dissimilar enough: both stay
        assert a in out and b in out, (a, b, j)
    for doc_id in c.untouched:
        assert doc_id in out and out[doc_id]["text"] == originals[doc_id]["text"], doc_id
        assert out[doc_id]["note"] == originals[doc_id]["note"]        # other columns pass through
    assert stats["methods"]["minhash"]["clusters"] >= len(high)


def test_repeated_passage_removed_from_every_copy(corpus, deduped):
    c, _ = corpus
    out, stats, _ = deduped
    probe = " ".join(c.passage.split()[10:40])
    assert not [doc_id for doc_id in out if probe in out[doc_id]["text"]]     # remove_all (Lee et al.'s tool)
    for doc_id in c.passage_carriers:
        assert doc_id in out                   # the documents stay, only the passage goes
    assert stats["methods"]["exact_substring"]["duplicate_spans"] >= 4
    assert stats["methods"]["exact_substring"]["chars_removed"] >= 4 * len(c.passage) * 0.9


def test_url_duplicates_keep_the_first(corpus, deduped):
    c, _ = corpus
    out, stats, _ = deduped
    for group in c.url_groups:
        assert group[0] in out and all(g not in out for g in group[1:])
        assert out[group[0]]["url_duplicate_count"] == len(group)       # the kept document counts its URL's copies
    assert stats["methods"]["url"]["duplicates_in_run"] == sum(len(g) - 1 for g in c.url_groups)
    assert sum(r["url_duplicate_count"] - 1 for r in out.values()) == stats["methods"]["url"]["duplicates_in_run"]


def test_stats_reconcile_and_ray_equals_in_process(corpus, deduped, tmp_path):
    c, folder = corpus
    out, stats, result = deduped
    t = stats["totals"]
    assert t["docs_in"] == len(c.rows) and t["docs_out"] == len(out)
    chain = [stats["methods"][s] for s in ("minhash", "exact_substring", "url")]
    assert chain[0]["docs_in"] == len(c.rows) and chain[-1]["docs_out"] == len(out)
    for before, after in zip(chain, chain[1:]):
        assert after["docs_in"] == before["docs_out"]
    for st in chain:
        assert st["docs_in"] - st["docs_out"] == st["docs_removed"]
    assert "minhash" in result.stdout and "exact_substring" in result.stdout
    assert stats["worker_peak_rss_mb"] < stats["worker_memory_mb"]
    local, _ = dedup_in_process([folder], tmp_path)          # one part, no Ray: the same output
    assert local == out


# ------------------------------------------------------------------ the work split changes nothing

@pytest.fixture(scope="module")
def planted(sentences, tmp_path_factory):
    corpus = make_planted(sentences, n_docs=900, seed=3)
    folder = tmp_path_factory.mktemp("planted")
    rows = corpus.rows
    bounds = [0, 150, 160, 500, 501, 800, len(rows)]          # uneven files, one of a single row
    for i in range(len(bounds) - 1):
        pq.write_table(pa.Table.from_pylist(rows[bounds[i]:bounds[i + 1]]), folder / f"in-{i}.parquet",
                       row_group_size=64)
    return corpus, folder


@pytest.fixture(scope="module")
def reference(planted, tmp_path_factory):
    """One part, one bucket per method, one pass, components in one union-find, texts hashed at once."""
    _, folder = planted
    return dedup_in_process([folder], tmp_path_factory.mktemp("ref"), "dedup.exact_substring.max_part_bytes=1000000000")


SPLITS = [
    ["dedup.parts=4"],
    ["dedup.parts=16", "dedup.exact_substring.max_part_bytes=300000", "dedup.minhash.band_groups=7"],
    ["dedup.parts=5", "dedup.minhash.band_groups=2", "dedup.task_memory_mb=0.01",
     "dedup.exact_substring.max_part_bytes=20000"],       # many passes per bucket, component rounds
]


@pytest.mark.parametrize("sets", SPLITS, ids=["parts4", "parts16-chunks300k", "passes-and-rounds"])
def test_work_split_never_changes_the_result(planted, reference, sets, tmp_path):
    _, folder = planted
    expected, expected_stats = reference
    got, stats = dedup_in_process([folder], tmp_path, *sets)
    assert got == expected                                    # same documents, same text, same columns
    for stage in ("minhash", "exact_substring", "url"):
        for key in ("docs_in", "docs_out", "chars_removed"):
            assert stats["methods"][stage][key] == expected_stats["methods"][stage][key], (stage, key)
    if "dedup.task_memory_mb=0.01" in sets:
        assert "round" in stats["methods"]["minhash"]["components"]
        assert all(stats["methods"][s]["max_passes"] > 1 for s in ("minhash", "exact_substring"))


def test_planted_duplicates_are_found_across_the_whole_corpus(planted, reference):
    c, _ = planted
    out, stats = reference
    url_losers = {g[1] for g in c.url_groups}
    high = [(a, b) for a, b, j in c.near_pairs if j >= 0.8]
    assert len(high) >= 25
    for a, b in high:
        assert b not in out, (a, b)
        assert a in out or a in url_losers, (a, b)
    for passage in c.passages:                 # remove_all: no copy of any passage is left anywhere
        probe = " ".join(passage.split()[5:45])
        assert not [i for i, r in out.items() if probe in r["text"]]
    for group in c.url_groups:
        assert group[1] not in out


@pytest.mark.parametrize("policy", ["remove_all", "keep_first"])
def test_exact_substrings_equal_one_suffix_array_over_all_text(planted, tmp_path, policy):
    """Window hashes shuffled over 16 parts in 300 kB chunks find exactly what one suffix array over the
    whole concatenated corpus finds (Lee et al.'s rule, both policies)."""
    c, folder = planted
    got, _ = dedup_in_process([folder], tmp_path, "dedup.methods=[exact_substring]", "dedup.parts=16",
                              f"dedup.exact_substring.policy={policy}", "dedup.exact_substring.max_part_bytes=300000")
    result = dedup_part([r["text"] for r in c.rows], ExactSubstringConfig(policy=policy))
    expected = {r["id"]: t for r, t in zip(c.rows, result.texts) if t is not None}
    assert result.duplicate_spans > 60
    assert {i: r["text"] for i, r in got.items()} == expected


def test_jaccard_check_is_the_same_whatever_the_split(planted, tmp_path):
    c, folder = planted
    check = ["dedup.methods=[minhash]", "dedup.minhash.jaccard_check=true", "dedup.minhash.jaccard_threshold=0.9"]
    one, s1 = dedup_in_process([folder], tmp_path / "one", *check)
    many, s2 = dedup_in_process([folder], tmp_path / "many", *check, "dedup.parts=6", "dedup.task_memory_mb=0.1")
    assert one == many
    m1, m2 = s1["methods"]["minhash"], s2["methods"]["minhash"]
    assert m2["max_passes"] > 1                    # the budget split the buckets into passes
    assert m1["candidate_pairs"] == m2["candidate_pairs"] and m1["pairs_after_check"] == m2["pairs_after_check"]
    assert m1["pairs_after_check"] < m1["candidate_pairs"]
    above = {b for a, b, j in c.near_pairs if j >= 0.9}
    between = {b for a, b, j in c.near_pairs if 0.5 <= j < 0.88}
    assert above and not above & set(one)                 # verified pairs still removed
    assert between and between <= set(one)                # pairs below the checked threshold are kept
    plain, _ = dedup_in_process([folder], tmp_path / "plain", "dedup.methods=[minhash]")
    caught = {b for a, b, j in c.near_pairs if 0.85 <= j < 0.88}
    assert not caught & set(plain)                        # ...which plain LSH removes


# ------------------------------------------------------------------------------- smaller behaviours

def test_url_store_carries_across_runs(corpus, tmp_path):
    c, folder = corpus
    store = tmp_path / "seen-urls"
    first, stats1 = dedup_in_process([folder], tmp_path / "run1", f"dedup.url.seen={store}", "dedup.methods=[url]")
    assert stats1["methods"]["url"]["seen_store"]["contribution_urls"] == len(first)
    second, stats2 = dedup_in_process([folder], tmp_path / "run2", f"dedup.url.seen={store}", "dedup.methods=[url]",
                                      "dedup.parts=3")
    assert second == {} and stats2["methods"]["url"]["seen_in_earlier_runs"] == len(first)


def test_rows_without_a_url_or_text_are_not_duplicates_of_each_other(tmp_path):
    """20 distinct documents whose URL is null or empty, 5 whose text is empty, and two whose URLs differ only
    in the case of a path after a port that does not parse, through the CLI's default dedup: none removes
    another (a missing value is not a value, a path is case-sensitive); each is counted."""
    texts = [f"document {i}: " + " ".join(f"w{(i * 7919 + j * 104729) % 100003}" for j in range(80)) for i in range(20)]
    rows = [{"id": f"n{i}", "url": None if i % 2 else "", "text": t} for i, t in enumerate(texts)]
    rows += [{"id": f"e{i}", "url": f"https://e.org/{i}", "text": "" if i % 2 else None} for i in range(5)]
    # a port that does not parse: the paths differ in case only, the URLs are two pages
    rows += [{"id": f"p{i}", "url": f"http://E.org:99999999/{path}",
              "text": f"page {path}: " + " ".join(f"v{(i * 31 + j * 7919) % 50021}" for j in range(80))}
             for i, path in enumerate(("Path", "path"))]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "no-keys.parquet")
    result = run_cli("run", "--stage", "dedup", "--workers", "1", "--input", str(tmp_path / "no-keys.parquet"),
                     "--output", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr[-3000:]
    kept = ds.dataset(str(tmp_path / "out" / "dedup"), format="parquet").to_table().column("id").to_pylist()
    assert sorted(kept) == sorted(r["id"] for r in rows)
    stages = json.loads((tmp_path / "out" / "dedup" / ".refinedweb/stats.json").read_text())["methods"]
    assert stages["url"]["no_url"] == 20 and stages["minhash"]["no_words"] == 5
    assert stages["exact_substring"]["too_short"] == 5
    assert "no_url 20" in result.stdout


def test_missing_text_column_is_a_clear_error(tmp_path):
    pq.write_table(pa.table({"id": ["a"], "url": ["https://x.org/"]}), tmp_path / "bad.parquet")
    result = run_cli("run", "--stage", "dedup", "--input", str(tmp_path / "bad.parquet"), "--output", str(tmp_path / "o"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("refinedweb: error: Parquet input")
    assert "missing column(s) text" in result.stderr


def test_commoncrawl_style_revisit_records_are_real_exact_duplicates(tmp_path):
    """pywb's iana.org crawl: 123 revisit records each repeat an earlier response's payload (same
    WARC-Payload-Digest) — real exact duplicates as crawlers record them (here CSS, JavaScript and SVG
    resources). Each revisit becomes a document with its original's payload text; MinHash must remove
    every one of them and keep one copy of each original."""
    from warcio.archiveiterator import ArchiveIterator

    originals, revisits = {}, []
    with open(shared("warc", "pywb_iana.warc.gz"), "rb") as fh:
        for record in ArchiveIterator(fh):
            headers = record.rec_headers
            digest = headers.get_header("WARC-Payload-Digest")
            if record.rec_type == "response":
                try:
                    text = record.content_stream().read().decode("utf-8")
                except UnicodeDecodeError:
                    continue                      # fonts, icons: not text
                if len(text.split()) >= 20 and digest not in originals:
                    originals[digest] = {"id": headers.get_header("WARC-Record-ID"),
                                         "url": headers.get_header("WARC-Target-URI"), "text": text}
            elif record.rec_type == "revisit" and digest in originals:
                revisits.append({"id": headers.get_header("WARC-Record-ID"),
                                 "url": headers.get_header("WARC-Target-URI"), "text": originals[digest]["text"]})
    assert len(revisits) >= 50
    revisited = {o["id"] for o in originals.values() if any(r["text"] == o["text"] for r in revisits)}
    rows = list(originals.values()) + revisits
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "iana.parquet")
    out, stats = dedup_in_process([tmp_path / "iana.parquet"], tmp_path / "out", "dedup.methods=[minhash]",
                                  "dedup.parts=2")
    assert not {r["id"] for r in revisits} & set(out)
    assert revisited <= set(out)
    assert stats["methods"]["minhash"]["docs_removed"] >= len(revisits)


def test_documents_without_words_are_not_near_duplicates(tmp_path):
    """Empty and punctuation-only texts share no shingles: MinHash must not cluster them (they would all
    have the same all-max signature)."""
    rows = [{"id": f"e{i}", "url": f"https://e.org/{i}", "text": t} for i, t in enumerate(["", "...", " ", "!!"])]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "e.parquet")
    out, stats = dedup_in_process([tmp_path / "e.parquet"], tmp_path / "out", "dedup.methods=[minhash]")
    assert len(out) == 4 and stats["methods"]["minhash"]["removed"] == 0


@pytest.mark.parametrize("parts", [1, 3])
def test_url_priority_column(tmp_path, parts):
    rows = [{"id": "old", "url": "https://x.org/a", "text": "one two three", "date": "2019-01-01"},
            {"id": "other", "url": "https://x.org/b", "text": "seven eight", "date": None},
            {"id": "new", "url": "http://www.x.org/a/", "text": "four five six", "date": "2023-06-01"},
            {"id": "newer-but-null", "url": "https://x.org/a", "text": "nine", "date": None}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "u.parquet")
    first, _ = dedup_in_process([tmp_path / "u.parquet"], tmp_path / "a", "dedup.methods=[url]", f"dedup.parts={parts}")
    assert sorted(first) == ["old", "other"]
    assert (first["old"]["url_duplicate_count"], first["other"]["url_duplicate_count"]) == (3, 1)
    latest, _ = dedup_in_process([tmp_path / "u.parquet"], tmp_path / "b", "dedup.methods=[url]",
                                 "dedup.url.priority=date", f"dedup.parts={parts}")
    assert sorted(latest) == ["new", "other"]
    numbers = [{**r, "date": i * 10 if r["date"] else None} for i, r in enumerate(rows)]
    pq.write_table(pa.Table.from_pylist(numbers), tmp_path / "n.parquet")
    by_number, _ = dedup_in_process([tmp_path / "n.parquet"], tmp_path / "c", "dedup.methods=[url]",
                                    "dedup.url.priority=date", f"dedup.parts={parts}")
    assert sorted(by_number) == ["new", "other"]


def test_each_method_sees_exactly_what_the_earlier_ones_left(planted, tmp_path):
    """URL, then MinHash, then exact substrings in one run equals exact substrings run alone over the output of
    URL + MinHash (same input order: one part, one output shard): what the last method saw is exactly what the
    earlier ones left. And the order matters: another order removes other documents."""
    _, folder = planted
    order = "dedup.methods=[url, minhash, exact_substring]"
    chain, stats = dedup_in_process([folder], tmp_path / "chain", order, "dedup.parts=1")
    first, first_stats = dedup_in_process([folder], tmp_path / "first", "dedup.methods=[url, minhash]", "dedup.parts=1")
    assert len(list((tmp_path / "first" / "dedup").rglob("*.parquet"))) == 1
    then, then_stats = dedup_in_process([tmp_path / "first" / "dedup"], tmp_path / "then",
                                        "dedup.methods=[exact_substring]", "dedup.parts=1")
    assert {i: r["text"] for i, r in chain.items()} == {i: r["text"] for i, r in then.items()}
    methods = stats["methods"]
    assert list(methods) == ["url", "minhash", "exact_substring"]
    assert methods["url"]["docs_removed"] > 0 and methods["minhash"]["docs_removed"] > 0
    assert methods["exact_substring"]["docs_in"] == first_stats["totals"]["docs_out"] == len(first)
    assert methods["exact_substring"]["chars_removed"] == then_stats["methods"]["exact_substring"]["chars_removed"] > 0
    # a split in this order too (tiny memory budgets, 30 s here: test_work_split_never_changes_the_result)
    split, _ = dedup_in_process([folder], tmp_path / "split", order, "dedup.parts=7")
    assert split == chain
    reordered, _ = dedup_in_process([folder], tmp_path / "reordered", "dedup.methods=[exact_substring, minhash, url]")
    assert set(reordered) != set(chain)


def test_parts_are_contiguous_ranges_of_the_input_order():
    from refinedweb.dedup.corpus import Corpus

    corpus = Corpus(("a",), (5,), 2)
    assert corpus.slices(0) == [(0, 0, 2)] and corpus.slices(1) == [(0, 2, 5)]
    assert corpus.part_of(np.array([0, 1, 2, 4])).tolist() == [0, 0, 1, 1]
    empty = Corpus(("a", "b"), (0, 3), 5)
    assert [empty.slices(p) for p in range(5)] == [[], [(1, 0, 1)], [], [(1, 1, 2)], [(1, 2, 3)]]


def test_partition_by_language_writes_a_folder_per_language_and_finds_the_same(planted, reference, tmp_path):
    """RefinedWeb-Europe's layout after dedup: `dedup/lang=xx/`, the languages deduplicated as one corpus, so the
    same documents as without folders (planted duplicates cross languages here), whatever the split."""
    corpus, folder = planted
    languages = ["de", "fr", "pl"]
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for path in sorted(folder.glob("*.parquet")):
        table = pq.read_table(path)
        assigned = [languages[zlib.crc32(doc_id.encode()) % 3] if zlib.crc32(doc_id.encode()) % 50 else None
                    for doc_id in table.column("id").to_pylist()]          # ~2% without a language
        if "language" in table.column_names:
            table = table.drop(["language"])
        pq.write_table(table.append_column("language", pa.array(assigned)), mixed / path.name, row_group_size=64)
    flat, _ = dedup_in_process([mixed], tmp_path / "flat", "dedup.exact_substring.max_part_bytes=1000000000")
    assert set(flat) == set(reference[0])
    for sets in (["dedup.parts=1"], ["dedup.parts=5", "output.shard_max_rows=40"]):
        out = tmp_path / f"by-language-{sets[0][-1]}"
        got, _ = dedup_in_process([mixed], out, "langid.partition_by_language=true", *sets)
        assert got == flat
        folders = sorted(p.name for p in (out / "dedup").iterdir() if p.is_dir() and not p.name.startswith("."))
        assert folders == [f"lang={lang}" for lang in languages] + ["lang=x"]     # x: no language, as in filtered/
        for lang in languages:
            rows = ds.dataset(str(out / "dedup" / f"lang={lang}"), format="parquet").to_table(columns=["language"])
            assert set(rows.column("language").to_pylist()) == {lang} and rows.num_rows > 0
        unlabelled = ds.dataset(str(out / "dedup" / "lang=x"), format="parquet").to_table(columns=["language"])
        assert unlabelled.num_rows == sum(r["language"] is None for r in flat.values()) > 0
        manifest = json.loads((out / "dedup" / ".refinedweb" / "manifest.json").read_text())
        counted = manifest["totals"]["languages"]
        assert {lang: counted[lang]["rows"] for lang in languages} == \
            {lang: sum(r["language"] == lang for r in flat.values()) for lang in languages}


def test_the_kept_member_of_a_cluster_carries_its_size(planted, reference, tmp_path):
    """duplicate_count: every document MinHash removed is counted once, in the kept member of its cluster; a
    document in no cluster has 1; the same whatever the split (components in one task or in rounds)."""
    c, folder = planted
    one, stats = dedup_in_process([folder], tmp_path / "one", "dedup.methods=[minhash]")
    rounds, in_rounds = dedup_in_process([folder], tmp_path / "rounds", "dedup.methods=[minhash]", "dedup.parts=5",
                                         "dedup.task_memory_mb=0.05")
    assert "round" in in_rounds["methods"]["minhash"]["components"]
    assert one == rounds
    counts = {i: r["duplicate_count"] for i, r in one.items()}
    assert sum(n - 1 for n in counts.values()) == stats["methods"]["minhash"]["docs_removed"] > 20
    related = {x for a, b, _ in c.near_pairs for x in (a, b)}
    assert sum(counts[i] == 1 for i in counts if i not in related) > 0.9 * len([i for i in counts if i not in related])
    originals = {a for a, b, j in c.near_pairs if j >= 0.9}
    assert originals and all(counts[a] >= 2 for a in originals)
    assert all(r["duplicate_count"] >= 1 for r in reference[0].values())       # the default chain writes it too
