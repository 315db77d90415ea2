"""`refinedweb inspect` on every kind of output folder, and the report's example documents."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from refinedweb.config import load_config
from refinedweb.runtime.filter_pass import Pipeline, filter_file
from refinedweb.runtime.tokenize_job import run_tokenize

from .conftest import REPO, SAMPLES
from .serial import SerialRuntime, dedup_in_process

BLOCKLIST = "url_filter.blocklist=[package:demo_blocklist.txt]"


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    cfg = load_config(overrides=[BLOCKLIST, "output.write_dropped=true"])
    pipeline = Pipeline.build(cfg)
    for name in ("dolma_sample-0000.warc.gz", "cc_whirlwind_whirlwind.warc.gz"):
        filter_file(str(SAMPLES / name), cfg, str(root / "out"), pipeline)
    dedup_in_process([root / "out" / "filtered"], root / "out", BLOCKLIST)
    texts = [{"text": f"Document number {i} of the {c} corpus, with a few words.", "corpus": c}
             for i, c in enumerate(["books", "web"] * 20)]
    pq.write_table(pa.Table.from_pylist(texts), root / "mixed.parquet")
    run_tokenize([str(root / "mixed.parquet")], str(root / "tok"), load_config(), runtime=SerialRuntime(),
                 log=lambda m: None)
    return root, texts


def inspect(*args):
    result = subprocess.run([sys.executable, "-m", "refinedweb", "inspect", *map(str, args)], capture_output=True,
                            text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_text_folders(outputs):
    root, _ = outputs
    first = inspect(root / "out", "--n", "3")                       # the root: its last stage, dedup
    assert first.count("══════") == 3 and "dedup/" in first and "language=en" in first
    assert inspect(root / "out", "--n", "3") == first != inspect(root / "out", "--n", "3", "--seed", "1")
    table = pq.read_table(next((root / "out" / "dropped").glob("*.parquet")), columns=["stage", "reason"]).to_pylist()
    stage, reason = max(((r["stage"], r["reason"]) for r in table if r["stage"] != "read"),
                        key=[(r["stage"], r["reason"]) for r in table].count)
    dropped = inspect(root / "out" / "dropped", "--n", "2", "--reason", f"{stage}:{reason}")
    assert dropped.count(f"reason={reason}") == 2 and f"stage={stage}" in dropped
    assert inspect(root / "out" / "dropped", "--reason", "no_such_reason").startswith("no document in")
    english = inspect(root / "out" / "filtered", "--n", "2", "--lang", "en", "--chars", "50")
    assert english.count("language=en") == 2 and "more characters]" in english


def test_tokenized_folders_decode_back_to_text(outputs):
    root, texts = outputs
    shown = inspect(root / "tok", "--n", "5")
    assert shown.count("══════") >= 3 and "<|endoftext|>" in shown
    decoded = [block.split("──────\n", 1)[1].strip() for block in shown.split("══════")[1:]]
    originals = {t["text"] + "<|endoftext|>" for t in texts}
    assert decoded and all(d in originals for d in decoded)
    books = inspect(root / "tok", "--n", "3", "--corpus", "books")
    assert books.count("══════") >= 1


def test_the_report_shows_examples_of_what_each_filter_removed(outputs):
    root, _ = outputs
    result = subprocess.run([sys.executable, "-m", "refinedweb", "report", str(root / "out")], capture_output=True,
                            text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
    page = (root / "out" / "report.html").read_text()
    assert "<h2>Examples</h2>" in page and "<summary>en (2 examples)" in page
    assert any(f"<summary>{stage}:" in page for stage in ("quality", "repetition", "langid", "line_filter"))
    assert "<summary>read:" not in page                     # records without text are not examples
