"""The readers README names, called exactly as README writes them, for tests of every output folder."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest


def shard_ids(folder: Path) -> Counter:
    """The truth: the `id` of every row of every Parquet file under `folder` (outside hidden folders)."""
    ids: Counter = Counter()
    for path in folder.rglob("*.parquet"):
        if not any(part.startswith(".") for part in path.relative_to(folder).parts):
            ids.update(pq.read_table(path, columns=["id"]).column("id").to_pylist())
    return ids


def ids_by_reader(folder: Path, hf_cache: Path, monkeypatch) -> dict[str, Counter]:
    """`id`s of `folder` as each reader returns them."""
    duckdb = pytest.importorskip("duckdb")
    polars = pytest.importorskip("polars")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")                 # a local folder: nothing to fetch
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(hf_cache))
    datasets = pytest.importorskip("datasets")
    found = {
        "pyarrow.dataset": ds.dataset(str(folder), format="parquet").to_table(columns=["id"]).column("id").to_pylist(),
        "duckdb": [r[0] for r in duckdb.connect().execute(f"SELECT id FROM read_parquet('{folder}/**/*.parquet')").fetchall()],
        "polars": polars.scan_parquet(f"{folder}/**/*.parquet").select("id").collect().get_column("id").to_list(),
        "datasets": datasets.load_dataset("parquet", data_dir=str(folder), cache_dir=str(hf_cache / "datasets"))["train"]["id"],
    }
    return {reader: Counter(ids) for reader, ids in found.items()}


def assert_every_reader_reads(folder: Path, hf_cache: Path, monkeypatch) -> int:
    truth = shard_ids(folder)
    assert sum(truth.values()) > 0, folder
    for reader, ids in ids_by_reader(folder, hf_cache, monkeypatch).items():
        assert ids == truth, (reader, folder.name, sum(ids.values()), sum(truth.values()))
    return sum(truth.values())
