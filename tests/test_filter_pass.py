"""The per-file filter pass without Ray: accounting, partitioning, dropped output, fault isolation."""

import gc
import json
import weakref

import pyarrow.dataset as ds
import pytest

from refinedweb.config import load_config
from refinedweb.runtime.filter_pass import Pipeline, filter_file, shard_prefix
from refinedweb.stages.blocklist import load_blocklist
from refinedweb.stats import summarise

from .conftest import SAMPLES, shared


def _run(tmp_path, uri, overrides=()):
    cfg = load_config(overrides=["url_filter.blocklist=[package:demo_blocklist.txt]", *overrides])
    stages = Pipeline.build(cfg, load_blocklist(cfg["url_filter"]["blocklist"]))
    return cfg, filter_file(str(uri), cfg, str(tmp_path), stages)


def _assert_reconciled(result):
    assert result["status"] == "ok", result["error"]
    assert result["records"] == result["kept"] + sum(result["dropped"].values()) + sum(result["errors"].values())
    assert result["reconciled"]
    stages = result["stages"]
    order = list(stages)                     # pipeline order: read, then filter.stages
    assert order == ["read", *load_config()["filter"]["stages"]]
    for before, after in zip(order, order[1:]):
        assert stages[after]["docs_in"] == stages[before]["kept"], (before, after)
    assert stages["tokens"]["tokens"] == result["tokens"]
    if stages["extract"]["kept"]:
        # HTML is much larger than the text extracted from it
        assert stages["read"]["chars_kept"] > stages["extract"]["chars_kept"] > 0


def test_every_shared_warc_is_accounted_for(tmp_path):
    folder = shared("warc")
    expected = {json.loads(l)["file"]: json.loads(l) for l in (folder / "STATS.jsonl").read_text().splitlines() if l}
    for path in sorted(folder.glob("*.gz")):
        _, result = _run(tmp_path / path.name, path)
        _assert_reconciled(result)
        info = expected.get(path.name)
        if info and not info.get("error") and path.name.endswith(".warc.gz"):
            assert result["records"] == sum(info["types"].values()), path.name
    _, clipped = _run(tmp_path / "clipped", folder / "resiliparse_clipped.warc.gz")
    assert clipped["notes"] == {"truncated_record": 1, "truncated_input": 1} and clipped["records"] == 1


def test_partition_by_language(tmp_path):
    _, result = _run(tmp_path, SAMPLES / "cc2008_arc2warc_1213893279526_0.warc.gz",
                     ["langid.partition_by_language=true", "langid.languages=[en, de, es, fr]"])
    _assert_reconciled(result)
    folders = {p.name for p in (tmp_path / "filtered").iterdir() if p.is_dir() and not p.name.startswith((".", "_"))}
    assert "lang=en" in folders and len(folders) >= 2
    for folder in folders:
        rows = ds.dataset(str(tmp_path / "filtered" / folder), format="parquet").to_table().to_pylist()
        assert {r["language"] for r in rows} == {folder.removeprefix("lang=")}


def test_dropped_documents_carry_stage_and_reason(tmp_path):
    _, result = _run(tmp_path, SAMPLES / "resiliparse_warcfile.warc.gz", ["output.write_dropped=true"])
    rows = ds.dataset(str(tmp_path / "dropped"), format="parquet").to_table().to_pylist()
    assert len(rows) == sum(result["dropped"].values())
    by_key = {}
    for r in rows:
        key = f"{r['stage']}:{r['reason']}"
        by_key[key] = by_key.get(key, 0) + 1
    assert by_key == result["dropped"]


def test_an_exception_in_a_stage_is_counted_not_fatal(tmp_path, monkeypatch):
    # one document in three raises: counted per stage and type, the file goes on (the share that fails a file,
    # filter.max_error_fraction, is tested in test_stage_errors.py)
    cfg = load_config(overrides=["url_filter.blocklist=[]", "filter.max_error_fraction=1"])
    stages = Pipeline.build(cfg)
    calls = {"n": 0}

    def flaky(doc):
        calls["n"] += 1
        if calls["n"] % 3 == 0:
            raise ValueError("boom")
        return None

    next(s for s in stages.stages if s.name == "repetition").apply = flaky
    result = filter_file(str(SAMPLES / "dolma_sample-0000.warc.gz"), cfg, str(tmp_path), stages)
    _assert_reconciled(result)
    assert result["errors"] == {"repetition:ValueError": calls["n"] // 3}
    assert result["stages"]["repetition"]["errors"] == {"ValueError": calls["n"] // 3}


def test_disabled_stages_pass_documents_through(tmp_path):
    _, result = _run(tmp_path, SAMPLES / "dolma_sample-0000.warc.gz",
                     ["repetition.enabled=false", "quality.enabled=false", "line_filter.enabled=false",
                      "url_filter.enabled=false", "langid.pre_extraction_min_score=null"])
    _assert_reconciled(result)
    for name in ("repetition", "quality", "line_filter", "url_filter", "pre_langid"):
        assert result["stages"][name]["dropped"] == {}


def test_shard_names_are_deterministic_and_safe():
    a = shard_prefix("/data/crawl/CC-MAIN-2023-06/x.warc.gz")
    assert a == shard_prefix("/data/crawl/CC-MAIN-2023-06/x.warc.gz")
    assert a != shard_prefix("/data/other/CC-MAIN-2023-06/x.warc.gz")
    evil = shard_prefix("/tmp/../../etc/pass wd;rm -rf.warc.gz")
    assert "/" not in evil and ".." not in evil and " " not in evil


def test_failed_input_is_reported(tmp_path):
    cfg = load_config(overrides=["url_filter.blocklist=[]"])
    result = filter_file(str(tmp_path / "vanished.warc.gz"), cfg, str(tmp_path / "out"), Pipeline.build(cfg))
    assert result["status"] == "failed" and "vanished" in result["error"]
    summary = summarise([result], 1.0)
    assert summary["totals"]["files_failed"] == 1


def test_a_file_that_fails_midway_leaves_no_shards_and_no_marker(tmp_path, monkeypatch):
    """Shards a file committed before failing (size rotation) are removed: a failed file contributes nothing
    until a re-run processes it whole."""
    import refinedweb.runtime.filter_pass as filter_pass
    from refinedweb.io.remote import FetchError

    real_iter_pages = filter_pass.iter_pages

    def fails_midway(stream, cfg):
        for i, item in enumerate(real_iter_pages(stream, cfg)):
            if i == 400:
                raise FetchError("giving up on https://host.example/x.warc.gz after 8 attempts (HTTP 503)")
            yield item

    monkeypatch.setattr(filter_pass, "iter_pages", fails_midway)
    _, result = _run(tmp_path, SAMPLES / "aut_example.warc.gz", ["output.shard_max_rows=2"])
    assert result["status"] == "failed" and "FetchError" in result["error"]
    assert result["kept"] >= 2          # at least one shard had been committed before the failure
    assert not list((tmp_path / "filtered").rglob("*.parquet"))
    assert not list((tmp_path / "filtered").rglob("*.json"))
    assert not list(tmp_path.rglob(".*.tmp"))


def test_a_task_freezes_what_was_alive_before_it_and_only_while_it_runs(tmp_path):
    """settled_heap (around every filter task in a worker): what was alive before the task is frozen out of the
    collector's full collections while the task runs, the task's own garbage cycles are collected as before,
    and after the task (even one that fails) everything is collectable again, so nothing frozen leaks."""
    from refinedweb.runtime.ray_runner import settled_heap

    class Node:
        pass

    def cycle():
        a, b = Node(), Node()
        a.other, b.other = b, a
        return a

    assert gc.get_freeze_count() == 0
    before = cycle()                                   # alive when the task starts, dropped during it
    before_ref = weakref.ref(before)
    with settled_heap():
        assert gc.get_freeze_count() > 0
        del before
        made = cycle()                                 # the task's own cycle
        made_ref = weakref.ref(made)
        del made
        gc.collect()
        assert made_ref() is None                      # collected during the task
        assert before_ref() is not None                # frozen: left for after the task
        _, result = _run(tmp_path, SAMPLES / "dolma_sample-0000.warc.gz")
        _assert_reconciled(result)
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert before_ref() is None                        # collectable again after the task

    with pytest.raises(RuntimeError):
        with settled_heap():
            raise RuntimeError("a failing task")
    assert gc.get_freeze_count() == 0
