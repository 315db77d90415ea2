"""Hostile input (tests/hostile.py builds it): every file is read to the end or stopped with a reason,
within a time and memory bound, and its records reconcile: read = kept + dropped + errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from refinedweb.config import load_config
from refinedweb.runtime.filter_pass import Pipeline, filter_file

from . import hostile
from .conftest import REPO

SECONDS_PER_FILE = 15      # generous for a loaded CI machine: each takes 0.01-1.2 s here
MEMORY_CAP_MB = 1000
CONFIG = ["url_filter.blocklist=[package:demo_blocklist.txt]"]


@pytest.fixture(scope="module")
def hostile_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    return folder, hostile.build(folder)


@pytest.fixture(scope="module")
def stages():
    return Pipeline.build(load_config(overrides=CONFIG))


NAMES = ["truncated.warc.gz", "content_length_lies.warc", "content_length_lies.warc.gz", "page_50mb.warc.gz",
         "decompression_bombs.warc.gz", "nested_divs.warc.gz", "binary_as_html.warc.gz", "bad_charsets.warc.gz",
         "hostile_urls.warc.gz", "bad_content_encoding.warc.gz", "empty.warc.gz", "empty_member.warc.gz", "requests_only.warc.gz"]


@pytest.mark.parametrize("name", NAMES)
def test_hostile_file_is_bounded_and_accounted(name, hostile_set, stages, tmp_path):
    folder, expect = hostile_set
    want = expect[name]
    started = time.time()
    result = filter_file(str(folder / name), load_config(overrides=CONFIG), str(tmp_path), stages)
    assert time.time() - started < SECONDS_PER_FILE
    assert result["status"] == "ok", result["error"]
    assert result["reconciled"]
    assert result["records"] == want["records"]
    assert result["kept"] == want["kept"]
    for reason, n in want.get("dropped", {}).items():
        assert result["dropped"].get(reason) == n, result["dropped"]
    for note, n in want.get("notes", {}).items():
        assert result["notes"].get(note) == n, result["notes"]
    assert not result["errors"]


def test_every_builder_has_a_test(hostile_set):
    assert set(NAMES) == set(hostile_set[1])


def test_hostile_set_through_the_cli(hostile_set, tmp_path):
    """All of it in one Ray run: exit 0, every file reconciled, the worker under the memory cap, and nothing
    written outside the output root (record ids such as ../../x and /etc/passwd name no file)."""
    folder, expect = hostile_set
    out = tmp_path / "out"
    escape = Path("/tmp/refinedweb-escape")
    result = subprocess.run([sys.executable, "-m", "refinedweb", "run", "--stage", "all", "--workers", "1",
                             "--input", str(folder), "--output", str(out), "--set", f"run.worker_memory_mb={MEMORY_CAP_MB}",
                             "--set", "output.write_dropped=true", *[a for c in CONFIG for a in ("--set", c)]],
                            capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads((out / "filtered" / ".refinedweb/stats.json").read_text())
    assert stats["totals"]["files"] == len(expect) and stats["totals"]["files_failed"] == 0
    assert all(f["reconciled"] for f in stats["files"])
    assert stats["totals"]["records"] == sum(e["records"] for e in expect.values())
    assert stats["worker_peak_rss_mb"] < MEMORY_CAP_MB
    assert not escape.exists()
    root = out.resolve()
    for dirpath, _, files in os.walk(out):
        for f in files:
            assert root in (Path(dirpath) / f).resolve().parents
    kept = ds.dataset(str(out / "filtered"), format="parquet", exclude_invalid_files=True).to_table().to_pylist()
    urls = {r["url"] for r in kept}
    assert "https://bücher.example/путь/страница?q=ü" in urls
    assert "https://example.org/" + "a" * 4096 in urls
    assert {"../../../../tmp/refinedweb-escape", "/etc/passwd"} <= {r["id"] for r in kept}
