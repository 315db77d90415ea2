"""Training-ready output: sized shards and row groups, manifests with checksums, `refinedweb stats`, and
the output read as is by pyarrow.dataset, DuckDB and Polars."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from refinedweb.io.manifest import totals_of
from refinedweb.io.parquet import DOCUMENT_SCHEMA, ShardLimits, ShardWriter
from refinedweb.io.storage import LocalStorage

from .conftest import REPO

WORDS = [f"w{i}" for i in range(5000)]


def docs(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(50, 400)))) for _ in range(n)]
    return pa.table({"id": [f"d{i}" for i in range(n)], "url": [f"https://e.org/{i}" for i in range(n)], "text": texts,
                     "source": ["s"] * n, "date": [""] * n,
                     "language": [["en", "de", "fr"][i % 3] for i in range(n)],
                     "language_score": pa.array([0.9] * n, pa.float32()),
                     "token_count": pa.array([len(t.split()) for t in texts], pa.int32())}, schema=DOCUMENT_SCHEMA)


def write(tmp_path, table, limits, by_rows=False):
    writer = ShardWriter(LocalStorage(str(tmp_path)), "out", "shard", DOCUMENT_SCHEMA, limits)
    if by_rows:
        for row in table.to_pylist():
            writer.add(row)
    else:
        writer.add_table(table)
    return writer.close()


@pytest.mark.parametrize("by_rows", [False, True])
def test_shards_respect_the_byte_limit_and_entries_are_exact(tmp_path, by_rows):
    table = docs(3000)
    entries = write(tmp_path, table, ShardLimits(max_bytes=400_000, row_group_bytes=10**9), by_rows)
    assert len(entries) >= 3
    for entry in entries:
        path = tmp_path / entry["path"]
        assert entry["bytes"] == path.stat().st_size <= 400_000
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        shard = pq.read_table(path)
        assert entry["rows"] == shard.num_rows and entry["tokens"] == sum(shard.column("token_count").to_pylist())
        assert sum(v["rows"] for v in entry["languages"].values()) == shard.num_rows
    for entry in entries[:-1]:
        assert entry["bytes"] >= 0.6 * 400_000                       # filled, not cut early
        assert pq.ParquetFile(tmp_path / entry["path"]).metadata.num_row_groups >= 2   # groups: half a shard at most
    totals = totals_of(entries)
    assert totals["rows"] == 3000 and totals["tokens"] == sum(table.column("token_count").to_pylist())
    assert ds.dataset(str(tmp_path / "out"), format="parquet").to_table().sort_by("id").equals(table.sort_by("id"))


def test_token_and_row_limits(tmp_path):
    table = docs(2000, seed=1)
    entries = write(tmp_path / "t", table, ShardLimits(max_bytes=None, max_tokens=50_000, row_group_bytes=100_000))
    assert all(e["tokens"] <= 50_000 for e in entries) and all(e["tokens"] > 40_000 for e in entries[:-1])
    entries = write(tmp_path / "r", table, ShardLimits(max_bytes=None, max_rows=300))
    assert [e["rows"] for e in entries] == [300] * 6 + [200]


def test_statistics_skip_free_text_but_keep_short_columns(tmp_path):
    entries = write(tmp_path, docs(200), ShardLimits())
    meta = pq.ParquetFile(tmp_path / entries[0]["path"]).metadata.row_group(0)
    names = [meta.column(i).path_in_schema for i in range(meta.num_columns)]
    stats = {n: meta.column(i).statistics for i, n in enumerate(names)}
    assert stats["text"] is None or not stats["text"].has_min_max
    assert stats["language"].has_min_max and stats["token_count"].has_min_max


@pytest.fixture(scope="module")
def deduped(tmp_path_factory):
    """1,500 documents through `--stage dedup` with 4 parts and 60 kB shards: full part shards, and the
    parts' partly filled last shards merged into full ones."""
    root = tmp_path_factory.mktemp("sized")
    (root / "in").mkdir()
    table = docs(1500, seed=2)
    for i in range(3):
        pq.write_table(table.slice(500 * i, 500), root / "in" / f"docs-{i}.parquet")
    out = root / "out"
    result = subprocess.run([sys.executable, "-m", "refinedweb", "run", "--stage", "dedup", "--workers", "2",
                             "--input", str(root / "in"), "--output", str(out), "--set", "dedup.parts=4",
                             "--set", "output.shard_max_bytes=60000"],
                            capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, json.loads((out / "dedup" / ".refinedweb/manifest.json").read_text())


def test_dedup_output_is_rebalanced_and_listed(deduped):
    out, manifest = deduped
    files = sorted(p.relative_to(out / "dedup").as_posix() for p in (out / "dedup").rglob("*.parquet"))
    assert files == [s["path"] for s in manifest["shards"]]
    assert any(f.startswith("merged/") for f in files) and any(f.startswith("part-") for f in files)
    sizes = [s["bytes"] for s in manifest["shards"]]
    assert max(sizes) <= 60000
    small = [s for s in manifest["shards"] if s["bytes"] < 30000]
    assert len(small) <= 1 + len([f for f in files if f.startswith("merged/")]) // 2   # at most a last one per bin
    assert not (out / "_work").exists()


def test_output_reads_with_pyarrow_duckdb_and_polars(deduped):
    duckdb = pytest.importorskip("duckdb")
    polars = pytest.importorskip("polars")
    out, manifest = deduped
    folder = out / "dedup"
    table = ds.dataset(str(folder), format="parquet").to_table()      # the folder as is: no options needed
    assert table.num_rows == manifest["totals"]["rows"]
    assert sum(table.column("token_count").to_pylist()) == manifest["totals"]["tokens"]
    con = duckdb.connect()
    rows, tokens = con.execute(f"SELECT count(*), sum(token_count) FROM read_parquet('{folder}/**/*.parquet')").fetchone()
    assert (rows, tokens) == (manifest["totals"]["rows"], manifest["totals"]["tokens"])
    frame = polars.scan_parquet(f"{folder}/**/*.parquet").select(polars.len(), polars.col("token_count").sum()).collect()
    assert frame.row(0) == (manifest["totals"]["rows"], manifest["totals"]["tokens"])


def test_stats_command_answers_from_manifests(deduped):
    out, manifest = deduped
    text = subprocess.run([sys.executable, "-m", "refinedweb", "stats", str(out)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert text.returncode == 0, text.stderr
    assert f"{manifest['totals']['rows']:,} documents" in text.stdout and "dedup/" in text.stdout
    as_json = subprocess.run([sys.executable, "-m", "refinedweb", "stats", str(out / "dedup"), "--json"],
                             capture_output=True, text=True, cwd=REPO, timeout=120)
    assert json.loads(as_json.stdout)["."]["tokens"] == manifest["totals"]["tokens"]
    missing = subprocess.run([sys.executable, "-m", "refinedweb", "stats", str(out / "nope")],
                             capture_output=True, text=True, cwd=REPO, timeout=120)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1


def test_committed_files_get_the_umask_mode_not_the_temp_files_0600(tmp_path):
    import os

    storage = LocalStorage(str(tmp_path))
    old = os.umask(0o022)
    try:
        storage.write_text("a/b.json", "{}")
        assert (tmp_path / "a" / "b.json").stat().st_mode & 0o777 == 0o644
        os.umask(0o002)
        storage.write_bytes("c.bin", b"x")
        assert (tmp_path / "c.bin").stat().st_mode & 0o777 == 0o664
    finally:
        os.umask(old)


def test_output_is_readable_by_the_team(tmp_path):
    """The CLI under umask 027 (group may read, others not): every file of filter, dropped, dedup, the report
    and the seen-URL store is 0640 and every folder 0750 — not the 0600 of the temporary files they were."""
    import os
    import stat

    from .conftest import SAMPLES

    out, store = tmp_path / "out", tmp_path / "store"
    run = subprocess.run([sys.executable, "-m", "refinedweb", "run", "--workers", "1", "--config", "configs/demo.yaml",
                          "--input", str(SAMPLES / "dolma_sample-0001.warc.gz"), "--output", str(out),
                          "--set", f"dedup.url.seen={store}", "--progress", "off"],
                         capture_output=True, text=True, timeout=600, cwd=REPO, preexec_fn=lambda: os.umask(0o027))
    assert run.returncode == 0, run.stderr[-3000:]
    report = subprocess.run([sys.executable, "-m", "refinedweb", "report", str(out)], capture_output=True, text=True,
                            timeout=600, cwd=REPO, preexec_fn=lambda: os.umask(0o027))
    assert report.returncode == 0, report.stderr[-2000:]
    files = [p for root in (out, store) for p in root.rglob("*") if p.is_file()]
    folders = [p for root in (out, store) for p in root.rglob("*") if p.is_dir()]
    kinds = {p.suffix for p in files}
    assert {".parquet", ".json", ".html", ".png", ".bin", ".npz"} <= kinds
    assert any("dropped" in p.parts for p in files) and any("dedup" in p.parts for p in files)
    wrong = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files
             if stat.S_IMODE(p.stat().st_mode) != 0o640}
    assert not wrong
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o750 for p in folders)
