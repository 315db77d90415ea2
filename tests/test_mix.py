"""`refinedweb mix`: token shares and totals, epochs and shortfalls, determinism, shuffling across
sources within shards, token counting for sources without `token_count`, S3, and the Falcon configs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml

from refinedweb.mix.plan import MixConfig, RowGroup, apply_cut, select
from refinedweb.stages.tokens import count_tokens

from .conftest import REPO
from .readers import assert_every_reader_reads
from .serial import mix_in_process  # what is planned and written; `mixed`, S3 and the readers' run the CLI on Ray
from .servers import moto_s3
from .test_output import docs

CLI = [sys.executable, "-m", "refinedweb"]


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """web: 2,400 docs with token_count in 3 files; books: 300 docs without token_count or language (its
    tokens are counted); code: 300 docs with only id, text, token_count."""
    root = tmp_path_factory.mktemp("sources")
    table = docs(3000, seed=3)
    for name in ("web", "books", "code"):
        (root / name).mkdir()
    for i in range(3):
        pq.write_table(table.slice(i * 800, 800), root / "web" / f"w{i}.parquet", row_group_size=100)
    pq.write_table(table.slice(2400, 300).drop_columns(["token_count", "language", "language_score"]),
                   root / "books" / "b.parquet", row_group_size=50)
    pq.write_table(table.slice(2700, 300).select(["id", "text", "token_count"]), root / "code" / "c.parquet",
                   row_group_size=60)
    return root


def mix_config(root: Path, path: Path, total: int = 400_000, seed: int = 0, **extra) -> Path:
    config = {"mix": {"total_tokens": total, "seed": seed, "shard_max_bytes": 300_000, **extra, "sources": [
        {"name": "web", "input": str(root / "web"), "weight": 0.75},
        {"name": "books", "input": str(root / "books"), "weight": 0.15, "max_epochs": 3},
        {"name": "code", "input": f"{root / 'code'}/*.parquet", "weight": 0.10, "max_epochs": 2}]}}
    path.write_text(yaml.safe_dump(config))
    return path


def run_mix(config: Path, output: str, *extra: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "mix", "--config", str(config), "--output", output, "--workers", "2", *extra],
                          capture_output=True, text=True, timeout=600, cwd=REPO, env=env)


@pytest.fixture(scope="module")
def mixed(sources, tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    result = run_mix(mix_config(sources, root / "mix.yaml"), str(root / "out"))
    assert result.returncode == 0, result.stderr[-3000:]
    return root / "out", json.loads((root / "out" / "mix_report.json").read_text()), result


def test_shares_and_total_match_the_config(mixed):
    out, report, result = mixed
    assert abs(report["total_tokens"] - 400_000) <= 0.02 * 400_000
    by_name = {s["name"]: s for s in report["sources"]}
    for name, weight in (("web", 0.75), ("books", 0.15), ("code", 0.10)):
        assert abs(by_name[name]["share"] - weight) <= 0.015, by_name[name]
    table = ds.dataset(str(out / "mix"), format="parquet").to_table()
    assert table.num_rows == report["documents"]
    tokens = {}
    for corpus, n in zip(table.column("corpus").to_pylist(), table.column("token_count").to_pylist()):
        tokens[corpus] = tokens.get(corpus, 0) + n
    assert tokens == {name: s["tokens"] for name, s in by_name.items()}
    assert "web" in result.stdout and "mix_report.json" in result.stdout


def test_mix_output_reads_with_every_readme_reader(mixed, tmp_path, monkeypatch):
    out = mixed[0]
    rows = assert_every_reader_reads(out / "mix", tmp_path / "hf", monkeypatch)
    assert rows == json.loads((out / "mix" / ".refinedweb/manifest.json").read_text())["totals"]["rows"]


def test_every_input_column_plus_corpus(mixed):
    out, _, _ = mixed
    schema = ds.dataset(str(out / "mix"), format="parquet").schema
    assert set(schema.names) == {"id", "url", "text", "source", "date", "language", "language_score", "token_count",
                                 "corpus"}
    table = ds.dataset(str(out / "mix"), format="parquet").to_table()
    books = table.filter(pa.compute.equal(table.column("corpus"), "books")).to_pylist()
    assert books and all(r["language"] is None for r in books)
    # the books had no token_count: the mix counted GPT-2 tokens
    assert all(r["token_count"] == count_tokens(r["text"], "gpt2") for r in books[:20])


def test_small_sources_are_repeated_up_to_max_epochs(mixed):
    _, report, _ = mixed
    by_name = {s["name"]: s for s in report["sources"]}
    # web (0.55 epochs) is sampled; no source exceeds its max_epochs
    assert 0 < by_name["web"]["epochs"] < 1
    for s in report["sources"]:
        assert s["epochs"] <= s["max_epochs"] + 1e-9


def test_documents_are_shuffled_across_sources_within_shards(mixed):
    out, report, _ = mixed
    manifest = json.loads((out / "mix" / ".refinedweb/manifest.json").read_text())
    assert report["shards"] == manifest["totals"]["shards"] >= 2
    for shard in manifest["shards"]:
        corpora = pq.read_table(out / "mix" / shard["path"], columns=["corpus"]).column("corpus").to_pylist()
        runs = 1 + sum(a != b for a, b in zip(corpora, corpora[1:]))
        n = len(corpora)
        expected = 1 + (n * n - sum(corpora.count(c) ** 2 for c in set(corpora))) / n   # of a random order
        assert set(corpora) == {"web", "books", "code"}             # every shard holds every source
        assert runs >= 0.7 * expected, (shard["path"], runs, expected)   # blocks by source would give ~3
        assert shard["bytes"] <= 300_000


def test_deterministic_for_a_seed_and_different_for_another(sources, mixed, tmp_path):
    """The same seed gives the same shards, byte for byte, whether two Ray workers (`mixed`) or one process
    run the units; another seed gives others."""
    out, _, _ = mixed
    mix_in_process(mix_config(sources, tmp_path / "same.yaml"), tmp_path / "same")
    first = json.loads((out / "mix" / ".refinedweb/manifest.json").read_text())["shards"]
    second = json.loads((tmp_path / "same" / "mix" / ".refinedweb/manifest.json").read_text())["shards"]
    assert [s["sha256"] for s in first] == [s["sha256"] for s in second]
    mix_in_process(mix_config(sources, tmp_path / "other.yaml", seed=1), tmp_path / "other")
    third = json.loads((tmp_path / "other" / "mix" / ".refinedweb/manifest.json").read_text())["shards"]
    assert [s["sha256"] for s in first] != [s["sha256"] for s in third]


def test_shortfall_fails_per_source_unless_allowed(sources, tmp_path):
    from refinedweb.errors import UserError

    big = mix_config(sources, tmp_path / "big.yaml", total=2_000_000)
    with pytest.raises(UserError) as error:            # the CLI prints a UserError as one line, exit 2
        mix_in_process(big, tmp_path / "big")
    line = str(error.value)
    # web (1 epoch allowed) and code (2) cannot reach 75% / 10% of 2M tokens; books (3 epochs) can
    assert "web: " in line and "code: " in line and "books: " not in line and "allow_shortfall" in line
    assert "\n" not in line
    allowed = mix_config(sources, tmp_path / "allowed.yaml", total=2_000_000, allow_shortfall=True)
    mix_in_process(allowed, tmp_path / "allowed")
    report = json.loads((tmp_path / "allowed" / "mix_report.json").read_text())
    by_name = {s["name"]: s for s in report["sources"]}
    assert by_name["code"]["epochs"] == pytest.approx(2.0) and by_name["code"]["shortfall_tokens"] > 0
    assert by_name["web"]["epochs"] == pytest.approx(1.0) and by_name["web"]["shortfall_tokens"] > 0
    assert 1.0 < by_name["books"]["epochs"] <= 3.0 and by_name["books"]["shortfall_tokens"] <= 1000


def test_plan_cuts_the_last_row_group_at_the_budget():
    cfg = MixConfig.from_config({"mix": {"total_tokens": 1050, "sources": [{"name": "a", "input": "x", "weight": 1}]}})
    groups = [RowGroup(0, "f", g, 10, 100, 1000) for g in range(20)]
    (plan,) = select(cfg, groups)
    assert plan.cut is not None
    import numpy as np

    apply_cut(plan, np.full(10, 10))
    assert plan.tokens == 1050 and plan.documents == 105


def test_bad_mix_configs_are_one_line_errors(tmp_path):
    cases = {"nomix.yaml": ({"other": 1}, "top-level 'mix:'"),
             "badkey.yaml": ({"mix": {"total_tokens": 10, "sorces": []}}, "unknown mix key(s) sorces"),
             "noweight.yaml": ({"mix": {"total_tokens": 10, "sources": [{"name": "a", "input": "x"}]}}, "missing weight")}
    for name, (content, message) in cases.items():
        (tmp_path / name).write_text(yaml.safe_dump(content))
        result = run_mix(tmp_path / name, str(tmp_path / "out"))
        assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr


@pytest.mark.parametrize("name,total,weights", [
    ("falcon-40b.yaml", 10**12, {"refinedweb-english": 0.75, "refinedweb-europe": 0.07, "books": 0.06,
                                 "conversations": 0.05, "code": 0.05, "technical": 0.02}),
    ("falcon-7b.yaml", 1.5 * 10**12, {"refinedweb-english": 0.79, "books": 0.07, "conversations": 0.06,
                                      "code": 0.03, "refinedweb-french": 0.03, "technical": 0.02}),
])
def test_shipped_falcon_mixtures(name, total, weights):
    cfg = MixConfig.from_config(yaml.safe_load((REPO / "configs" / "mix" / name).read_text()))
    assert cfg.total_tokens == total
    assert {s.name: round(s.weight, 6) for s in cfg.sources} == weights


def test_shipped_rehydration_mixture():
    cfg = MixConfig.from_config(yaml.safe_load((REPO / "configs" / "mix" / "rehydrated.yaml").read_text()))
    web = cfg.sources[0].repeat
    assert web.column == "duplicate_count" and web.times == (1, 2, 3, 2, 1)
    import numpy as np

    assert web.times_of(np.array([1, 2, 4, 5, 100, 101, 5000, np.nan])).tolist() == [1, 2, 2, 3, 3, 2, 1, 1]


def test_mix_from_and_to_s3(sources, mixed, tmp_path):
    import boto3

    out, _, _ = mixed
    with moto_s3():
        client = boto3.client("s3")
        client.create_bucket(Bucket="mix-in")
        client.create_bucket(Bucket="mix-out")
        for path in sources.rglob("*.parquet"):
            client.upload_file(str(path), "mix-in", path.relative_to(sources).as_posix())
        config = tmp_path / "s3.yaml"
        config.write_text(yaml.safe_dump({"mix": {"total_tokens": 400_000, "seed": 0, "shard_max_bytes": 300_000,
                                                  "sources": [
            {"name": "web", "input": "s3://mix-in/web/*.parquet", "weight": 0.75},
            {"name": "books", "input": "s3://mix-in/books/*.parquet", "weight": 0.15, "max_epochs": 3},
            {"name": "code", "input": "s3://mix-in/code/*.parquet", "weight": 0.10, "max_epochs": 2}]}}))
        result = run_mix(config, "s3://mix-out/run/", env=dict(os.environ))
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads(client.get_object(Bucket="mix-out", Key="run/mix_report.json")["Body"].read())
        manifest = json.loads(client.get_object(Bucket="mix-out", Key="run/mix/.refinedweb/manifest.json")["Body"].read())
        rows = set()
        for shard in manifest["shards"]:
            body = client.get_object(Bucket="mix-out", Key=f"run/mix/{shard['path']}")["Body"].read()
            table = pq.read_table(pa.BufferReader(body), columns=["corpus", "id"])
            rows |= set(zip(table.column("corpus").to_pylist(), table.column("id").to_pylist()))
    local = ds.dataset(str(out / "mix"), format="parquet").to_table(columns=["corpus", "id"])
    # the same plan: the same documents (epochs repeat ids, so compare as sets)
    assert rows == set(zip(local.column("corpus").to_pylist(), local.column("id").to_pylist()))
    assert report["total_tokens"] == json.loads((out / "mix_report.json").read_text())["total_tokens"]


REHYDRATE = {"column": "duplicate_count", "bins": [{"max": 1, "times": 1}, {"max": 4, "times": 2},
                                                       {"max": 100, "times": 3}, {"times": 1}]}


def weighted_source(root: Path) -> pa.Table:
    """600 documents with a heavy-tailed duplicate_count (as MinHash writes it) and a quality_score, some null."""
    import numpy as np

    rng = np.random.default_rng(11)
    table = docs(600, seed=5)
    counts = np.where(rng.random(600) < 0.7, 1, rng.zipf(1.6, 600).clip(1, 5000) + 1)
    scores = rng.random(600)
    table = table.append_column("duplicate_count", pa.array(counts.astype(np.int32)))
    table = table.append_column("quality_score", pa.array([None if i % 50 == 0 else float(s)
                                                           for i, s in enumerate(scores)], pa.float64()))
    (root / "web").mkdir(parents=True)
    for i in range(3):
        pq.write_table(table.slice(i * 200, 200), root / "web" / f"w{i}.parquet", row_group_size=40)
    return table


def times_of(value, bins, missing=1):
    if value is None:
        return missing
    for entry in bins:
        if "max" not in entry or value <= entry["max"]:
            return entry["times"]


@pytest.mark.parametrize("repeat", [
    REHYDRATE,                                                      # FineWeb-2-style rehydration
    {"column": "quality_score", "bins": [{"max": 0.3, "times": 0}, {"max": 0.8, "times": 1}, {"times": 3}],
     "missing": 0},                                                 # quality bins: the worst never, the best x3
])
def test_documents_repeat_by_a_column_bin(tmp_path, repeat):
    table = weighted_source(tmp_path)
    rows = table.to_pylist()
    want = {r["id"]: times_of(r[repeat["column"]], repeat["bins"], repeat.get("missing", 1)) for r in rows}
    total = sum(r["token_count"] * want[r["id"]] for r in rows)         # exactly one weighted epoch
    config = tmp_path / "mix.yaml"
    config.write_text(yaml.safe_dump({"mix": {"total_tokens": total, "seed": 1, "shard_max_bytes": 200_000, "sources": [
        {"name": "web", "input": str(tmp_path / "web"), "weight": 1.0, "repeat": repeat}]}}))
    mix_in_process(config, tmp_path / "out")
    out = ds.dataset(str(tmp_path / "out" / "mix"), format="parquet").to_table()
    seen: dict[str, int] = {}
    for doc_id in out.column("id").to_pylist():
        seen[doc_id] = seen.get(doc_id, 0) + 1
    assert seen == {k: v for k, v in want.items() if v}                # each document exactly `times` times
    report = json.loads((tmp_path / "out" / "mix_report.json").read_text())
    (source,) = report["sources"]
    bins = source["repeat"]["bins"]
    assert source["repeat"]["column"] == repeat["column"] and source["tokens"] == total
    for entry in bins:                                              # effective epochs per bin = its times
        assert entry["epochs"] == (entry["times"] if entry["tokens"] else 0.0), entry
    assert sum(b["documents"] for b in bins) == 600 and sum(b["documents_written"] for b in bins) == out.num_rows
    assert any(v > 1 for v in want.values()) and (repeat.get("missing", 1) or any(v == 0 for v in want.values()))


def test_repeat_copies_land_apart_and_a_budget_cut_stays_exact(tmp_path):
    """Half an epoch of a rehydrated source: the tokens are the target within one document, and a
    document's copies are not side by side."""
    table = weighted_source(tmp_path)
    rows = table.to_pylist()
    weighted = sum(r["token_count"] * times_of(r["duplicate_count"], REHYDRATE["bins"]) for r in rows)
    config = tmp_path / "mix.yaml"
    config.write_text(yaml.safe_dump({"mix": {"total_tokens": weighted // 2, "seed": 2, "shard_max_bytes": 100_000,
                                              "sources": [{"name": "web", "input": str(tmp_path / "web"),
                                                           "weight": 1.0, "repeat": REHYDRATE}]}}))
    mix_in_process(config, tmp_path / "out")
    report = json.loads((tmp_path / "out" / "mix_report.json").read_text())
    assert abs(report["total_tokens"] - weighted // 2) <= max(r["token_count"] for r in rows)
    files = sorted((tmp_path / "out" / "mix").glob("*.parquet"))
    assert len(files) >= 2
    where: dict[str, set] = {}
    for n, path in enumerate(files):
        for doc_id in pq.read_table(path, columns=["id"]).column("id").to_pylist():
            where.setdefault(doc_id, set()).add(n)
    multi = [ids for ids in where if times_of(next(r["duplicate_count"] for r in rows if r["id"] == ids),
                                              REHYDRATE["bins"]) > 1]
    assert sum(len(where[i]) > 1 for i in multi) / len(multi) > 0.3   # copies dealt to different shards


@pytest.mark.parametrize("repeat, message", [
    ({"column": "x", "bins": [{"max": 1, "times": 1}]}, "the last one"),
    ({"column": "x", "bins": [{"max": 5, "times": 1}, {"max": 2, "times": 1}, {"times": 1}]}, "must increase"),
    ({"column": "x", "bins": [{"times": 1.5}]}, "whole number"),
    ({"column": "x", "bins": [{"max": 1, "times": 0}, {"times": 0}], "missing": 0}, "every bin has times 0"),
    ({"bins": [{"times": 1}]}, "repeat must be a mapping"),
])
def test_bad_repeat_configs(repeat, message):
    from refinedweb.errors import UserError

    with pytest.raises(UserError, match=message):
        MixConfig.from_config({"mix": {"total_tokens": 10, "sources": [{"name": "a", "input": "x", "weight": 1,
                                                                        "repeat": repeat}]}})
