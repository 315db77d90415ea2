"""The dedup stage end to end on Ray (2 workers) over a generated corpus with planted duplicates."""

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from refinedweb.dedup.phases import part_of
from refinedweb.dedup.urls import url_hashes

from .conftest import REPO, shared
from .dedup_corpus import make_corpus, split_sentences


def run_cli(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "refinedweb", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=dict(os.environ))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    truth = json.loads(shared("extraction", "scrapinghub_aeb", "ground-truth.json").read_text())
    corpus = make_corpus(split_sentences([v["articleBody"] for v in truth.values()]), n_docs=200)
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
    stats = json.loads((out / "dedup" / "_stats.json").read_text())
    return {r["id"]: r for r in table.to_pylist()}, stats, result


@pytest.fixture(scope="module")
def deduped(corpus, tmp_path_factory):
    _, folder = corpus
    return _dedup(folder, tmp_path_factory.mktemp("dedup"))


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
    assert stats["stages"]["minhash"]["clusters"] >= len(high)


def test_repeated_passage_kept_once(corpus, deduped):
    c, _ = corpus
    out, stats, _ = deduped
    probe = " ".join(c.passage.split()[10:40])
    holders = [doc_id for doc_id in c.passage_carriers if doc_id in out and probe in out[doc_id]["text"]]
    assert holders == c.passage_carriers[:1]
    for doc_id in c.passage_carriers[1:]:
        assert doc_id in out                   # the document stays, only the passage goes
    assert stats["stages"]["exact_substring"]["duplicate_spans"] >= 3
    assert stats["stages"]["exact_substring"]["chars_removed"] >= 3 * len(c.passage) * 0.9


def test_url_duplicates_keep_the_first(corpus, deduped):
    c, _ = corpus
    out, stats, _ = deduped
    for group in c.url_groups:
        assert group[0] in out and all(g not in out for g in group[1:])
    assert stats["stages"]["url"]["duplicates_in_run"] == sum(len(g) - 1 for g in c.url_groups)


def test_stats_reconcile(corpus, deduped):
    c, _ = corpus
    out, stats, result = deduped
    t = stats["totals"]
    assert t["docs_in"] == len(c.rows) and t["docs_out"] == len(out)
    chain = [stats["stages"][s] for s in ("minhash", "exact_substring", "url")]
    assert chain[0]["docs_in"] == len(c.rows) and chain[-1]["docs_out"] == len(out)
    for before, after in zip(chain, chain[1:]):
        assert after["docs_in"] == before["docs_out"]
    for st in chain:
        assert st["docs_in"] - st["docs_out"] == st["docs_removed"]
    assert "minhash" in result.stdout and "exact_substring" in result.stdout


def test_deterministic(corpus, deduped, tmp_path):
    _, folder = corpus
    again, _, _ = _dedup(folder, tmp_path)
    first, _, _ = deduped
    assert again == first


def test_parts_are_deduplicated_on_their_own(corpus, tmp_path):
    c, folder = corpus
    out, stats, _ = _dedup(folder, tmp_path, "dedup.parts=3")
    assert len(stats["parts"]) == 3
    # each part's output is far below a 1 GiB shard: the three tails are merged into one shard
    assert all(p["tail"] and not p["shards"] for p in stats["parts"])
    assert [p.name for p in (tmp_path / "dedup").rglob("*.parquet")] == ["merged-00000-00000.parquet"]
    urls = {r["id"]: r["url"] for r in c.rows}
    part = dict(zip(urls, part_of(url_hashes(list(urls.values())), 3).tolist()))
    for a, b, j in c.near_pairs:
        if j >= 0.8:
            if part[a] == part[b]:
                assert a in out and b not in out
            else:                                  # different parts never meet
                assert a in out and b in out
    for group in c.url_groups:                      # URL duplicates always share a part
        assert group[0] in out and all(g not in out for g in group[1:])


def test_url_store_carries_across_runs(corpus, tmp_path):
    c, folder = corpus
    store = tmp_path / "seen-urls.npy"
    first, stats1, _ = _dedup(folder, tmp_path / "run1", f"dedup.url.seen={store}", "dedup.stages=[url]")
    assert stats1["url_seen_store_size"] == len(first)
    second, stats2, _ = _dedup(folder, tmp_path / "run2", f"dedup.url.seen={store}", "dedup.stages=[url]")
    assert second == {} and stats2["stages"]["url"]["seen_in_earlier_runs"] == len(first)


def test_missing_text_column_is_a_clear_error(tmp_path):
    pq.write_table(pa.table({"id": ["a"], "url": ["https://x.org/"]}), tmp_path / "bad.parquet")
    result = run_cli("run", "--stage", "dedup", "--input", str(tmp_path / "bad.parquet"), "--output", str(tmp_path / "o"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("refinedweb: error: Parquet input")
    assert "missing column(s) text" in result.stderr


def test_commoncrawl_style_revisit_records_are_real_exact_duplicates(tmp_path):
    """pywb's iana.org crawl: 123 revisit records each repeat an earlier response's payload (same
    WARC-Payload-Digest) — real exact duplicates as crawlers record them (here CSS, JavaScript and SVG
    resources). Each revisit becomes a document with its original's payload text; dedup (without the
    URL sub-stage) must remove every one of them and keep one copy of each original."""
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
    out, stats, _ = _dedup(tmp_path / "iana.parquet", tmp_path / "out", "dedup.stages=[minhash, exact_substring]",
                           "dedup.exact_substring.min_words=1")
    assert not {r["id"] for r in revisits} & set(out)
    assert revisited <= set(out)        # the first copy of each revisited payload survives (repeats inside
                                        # it, e.g. in jquery.js, may still be trimmed by exact substrings)
    assert stats["stages"]["minhash"]["docs_removed"] >= len(revisits)


def test_documents_without_words_are_not_near_duplicates(tmp_path):
    """Phases called directly (no Ray): empty and punctuation-only texts share no shingles, so MinHash
    must not cluster them (they would all have the same all-max signature)."""
    rows = [{"id": f"e{i}", "url": f"https://e.org/{i}", "text": t} for i, t in enumerate(["", "...", " ", "!!"])]
    result, minhash = _phases_in_process(tmp_path, rows, ["dedup.stages=[minhash]"])
    assert minhash["removed"] == 0 and result["docs_out"] == 4


def _phases_in_process(tmp_path, rows, overrides):
    """Run the three phases for one part without Ray; returns (phase 3 result, phase 2b result)."""
    from refinedweb.config import load_config
    from refinedweb.dedup.phases import (phase_band_edges, phase_finish, phase_merge_tails, phase_minhash,
                                         phase_partition, plan_tail_merges)
    from refinedweb.io.parquet import ShardLimits

    path = tmp_path / f"in-{len(list(tmp_path.glob('in-*')))}.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    cfg = load_config(overrides=overrides)
    out = str(tmp_path / f"out-{path.stem}")
    phase_partition(0, str(path), cfg, out)
    for group in range(cfg["dedup"]["minhash"]["band_groups"]):
        phase_band_edges(0, group, cfg, out)
    minhash = phase_minhash(0, cfg, out)
    result = phase_finish(0, cfg, out)
    tails = [result["tail"]] if result["tail"] else []
    for i, group in enumerate(plan_tail_merges(tails, ShardLimits.from_config(cfg["output"]))):
        phase_merge_tails(i, group, cfg, out)
    result["ids"] = sorted(r["id"] for r in ds.dataset(f"{out}/dedup", format="parquet",
                                                        exclude_invalid_files=True).to_table().to_pylist())
    return result, minhash


def test_band_groups_and_jaccard_check(corpus, tmp_path):
    c, _ = corpus
    rows = c.rows
    one, m1 = _phases_in_process(tmp_path, rows, ["dedup.stages=[minhash]", "dedup.minhash.band_groups=1"])
    many, m7 = _phases_in_process(tmp_path, rows, ["dedup.stages=[minhash]", "dedup.minhash.band_groups=7"])
    assert one["ids"] == many["ids"] and m1["candidate_pairs"] == m7["candidate_pairs"]   # grouping changes nothing
    checked, mc = _phases_in_process(tmp_path, rows, ["dedup.stages=[minhash]", "dedup.minhash.jaccard_check=true",
                                                      "dedup.minhash.jaccard_threshold=0.9"])
    assert mc["pairs_after_check"] <= mc["candidate_pairs"]
    above = {b for a, b, j in c.near_pairs if j >= 0.9}
    between = {b for a, b, j in c.near_pairs if 0.75 <= j < 0.88}
    assert not above & set(checked["ids"])               # verified pairs still removed
    assert between and between <= set(checked["ids"])     # pairs below the checked threshold are kept...
    surely_caught = {b for a, b, j in c.near_pairs if 0.85 <= j < 0.88}   # LSH catches J >= 0.85 with p > 0.9999
    assert surely_caught and not surely_caught & set(one["ids"])        # ...which plain LSH removes


def test_url_priority_column(tmp_path):
    rows = [{"id": "old", "url": "https://x.org/a", "text": "one two three", "date": "2019-01-01"},
            {"id": "new", "url": "http://www.x.org/a/", "text": "four five six", "date": "2023-06-01"},
            {"id": "other", "url": "https://x.org/b", "text": "seven eight", "date": "2020-01-01"}]
    first, _ = _phases_in_process(tmp_path, rows, ["dedup.stages=[url]"])
    assert first["ids"] == ["old", "other"]
    latest, _ = _phases_in_process(tmp_path, rows, ["dedup.stages=[url]", "dedup.url.priority=date"])
    assert latest["ids"] == ["new", "other"]
