"""Curated corpora as they come: JSONL (plain, .gz, .zst), the text under another name, other fields kept as
columns, a line that is not JSON and a .gz cut short counted (file and line) without losing the rest; read by
dedup, document stages over existing files, mix, and tokenize from a mix config in the same job."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml

from .conftest import REPO, shared
from .serial import dedup_in_process


@pytest.fixture(scope="module")
def jsonl(tmp_path_factory):
    """Real sentences of many languages as documents (a `content` field, an `url` on some, a `meta` object),
    one not-JSON line, two exact copies, and a second file cut short."""
    folder = tmp_path_factory.mktemp("jsonl")
    with gzip.open(shared("langid", "lingua_testdata", "sentences_all.jsonl.gz"), "rt") as fh:
        sentences = [json.loads(line) for line in fh]
    docs = []
    for i in range(0, 6000, 30):
        group = sentences[i:i + 30]
        docs.append({"content": " ".join(s["text"] for s in group), "language": group[0].get("language", ""),
                     "meta": {"n": i}, **({"url": f"https://corpus.example/{i}"} if i % 60 else {})})
    docs += [dict(docs[3]), dict(docs[7])]                              # exact copies, later in the input
    lines = [json.dumps(d, ensure_ascii=False) for d in docs]
    lines.insert(5, "{this is not json")
    with gzip.open(folder / "a.jsonl.gz", "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    whole = gzip.compress(("\n".join(lines) + "\n").encode())
    (folder / "b.jsonl.gz").write_bytes(whole[: len(whole) * 2 // 3])
    return folder, docs


def test_dedup_reads_jsonl(jsonl, tmp_path):
    folder, docs = jsonl
    got, stats = dedup_in_process([folder / "a.jsonl.gz"], tmp_path / "out", "inputs.text_field=content")
    assert len(got) == len(docs) - 2 and stats["jsonl"]["bad_lines"] == 1
    assert stats["jsonl"]["bad_line_examples"][0].endswith("a.jsonl.gz:6: not JSON (Expecting property name "
                                                           "enclosed in double quotes: line 1 column 2 (char 1))")
    rows = list(got.values())
    assert {"text", "id", "url", "language", "meta"} <= set(rows[0])                # fields kept as columns
    assert sum(r["url"] is None for r in rows) == sum("url" not in d for d in docs[:-2])   # missing URLs stay
    assert all(r["id"].startswith(str(folder / "a.jsonl.gz") + ":") for r in rows)
    both, stats = dedup_in_process([folder], tmp_path / "both", "inputs.text_field=content")
    assert stats["jsonl"]["files"] == 2 and stats["jsonl"]["truncated_inputs"] == 1
    assert len(both) == len(got)                       # the cut file's documents are all copies of the first's


def test_document_stages_over_jsonl(jsonl, tmp_path):
    folder, docs = jsonl
    result = subprocess.run([sys.executable, "-m", "refinedweb", "run", "--stage", "quality", "--input",
                             str(folder / "a.jsonl.gz"), "--output", str(tmp_path / "out"), "--workers", "1",
                             "--set", "inputs.text_field=content", "--set", "quality.min_stop_words=0", "--set", "quality.stop_words=[]",
                             "--progress", "off"], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    table = ds.dataset(str(tmp_path / "out" / "quality"), format="parquet").to_table()
    assert {"text", "language", "meta", "id", "url"} <= set(table.column_names)
    stats = json.loads((tmp_path / "out" / "quality" / ".refinedweb" / "stats.json").read_text())
    assert stats["totals"]["records"] == len(docs) and stats["totals"]["reconciled"]
    assert not (tmp_path / "out" / "_work").exists()


def test_mix_of_jsonl_and_parquet_then_tokens_in_one_job(jsonl, tmp_path):
    folder, docs = jsonl
    web = tmp_path / "web"
    web.mkdir()
    pq.write_table(pa.table({"id": [f"w{i}" for i in range(300)], "url": [f"https://w.org/{i}" for i in range(300)],
                             "text": [f"web page {i}: " + "lorem ipsum dolor " * (i % 40 + 5) for i in range(300)]}),
                   web / "web.parquet")
    config = tmp_path / "mix.yaml"
    config.write_text(yaml.safe_dump({
        "mix": {"total_tokens": 60_000, "seed": 1, "sources": [
            {"name": "web", "input": str(web), "weight": 0.5},
            {"name": "sentences", "input": str(folder / "a.jsonl.gz"), "weight": 0.5, "text_field": "content",
             "max_epochs": 3}]},
        "tokenize": {"format": "nanotron", "shard_max_tokens": 20_000}}))
    result = subprocess.run([sys.executable, "-m", "refinedweb", "mix", "--config", str(config), "--output",
                             str(tmp_path / "out"), "--workers", "2"], capture_output=True, text=True, timeout=600,
                            cwd=REPO, env=dict(os.environ))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "mix_report.json").read_text())
    assert report["jsonl"]["bad_lines"] == 1
    shares = {s["name"]: s["tokens"] for s in report["sources"]}
    assert shares["web"] > 0 and shares["sentences"] > 0
    manifest = json.loads((tmp_path / "out" / "tokenized" / ".refinedweb" / "manifest.json").read_text())
    assert manifest["format"] == "nanotron" and set(manifest["corpora"]) == {"web", "sentences"}
    assert "tokenized:" in result.stdout
