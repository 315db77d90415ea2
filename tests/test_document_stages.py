"""Document stages over Parquet that already exists (`refinedweb run --stage quality,tests.toy_c4_stage --input
out/dedup --output out2`): our own dedup output, `lang=xx` tree included, through a packaged and a user's stage;
every input column passes through, with the same accounting, resume, report and one-line errors as filter."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml

from refinedweb.config import load_config
from refinedweb.runtime.filter_pass import Pipeline, filter_file

from .conftest import REPO, SAMPLES
from .serial import dedup_in_process

CLI = [sys.executable, "-m", "refinedweb"]
BLOCKLIST = "url_filter.blocklist=[package:demo_blocklist.txt]"


@pytest.fixture(scope="module")
def deduped(tmp_path_factory):
    """Our own dedup output of two sample WARCs, one folder per language."""
    root = tmp_path_factory.mktemp("docs")
    cfg = load_config(overrides=[BLOCKLIST, "langid.partition_by_language=true", "langid.languages=[en, de]"])
    pipeline = Pipeline.build(cfg)
    for name in ("dolma_sample-0000.warc.gz", "dolma_sample-0001.warc.gz"):
        assert filter_file(str(SAMPLES / name), cfg, str(root / "in"), pipeline)["status"] == "ok"
    dedup_in_process([root / "in" / "filtered"], root / "in", BLOCKLIST, "langid.partition_by_language=true",
                     "langid.languages=[en, de]")
    return root


def run(root, *args, env=None):
    return subprocess.run([*CLI, "run", *args], capture_output=True, text=True, timeout=600, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def test_stages_over_our_dedup_output(deduped, tmp_path):
    config = tmp_path / "c4.yaml"
    config.write_text(yaml.safe_dump({"c4_punctuation": {"min_fraction": 0.6}}))
    source = deduped / "in" / "dedup"
    inputs = ds.dataset(str(source), format="parquet", exclude_invalid_files=True).to_table()
    out = tmp_path / "out2"
    command = ["--stage", "quality,tests.toy_c4_stage", "--workers", "2", "--config", str(config), "--input",
               str(source), "--output", str(out), "--set", BLOCKLIST, "--set", "output.write_dropped=true",
               "--set", "quality.min_words=120", "--progress", "plain"]
    first = run(deduped, *command)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "c4_punctuation" in first.stdout and "errors" in first.stdout.splitlines()[0]     # the funnel

    folder = out / "c4_punctuation"
    kept = ds.dataset(str(folder), format="parquet").to_table()
    assert set(inputs.column_names) | {"terminal_punct_fraction"} == set(kept.column_names)  # columns pass through
    assert 0 < kept.num_rows < inputs.num_rows
    assert all(f >= 0.6 for f in kept.column("terminal_punct_fraction").to_pylist())
    by_id = {r["id"]: r for r in inputs.to_pylist()}
    for row in kept.to_pylist():                             # untouched but for the new column
        assert {k: v for k, v in row.items() if k != "terminal_punct_fraction"} == by_id[row["id"]]
    languages = {p.name for p in folder.iterdir() if p.name.startswith("lang=")}
    assert languages and languages <= {p.name for p in source.iterdir() if p.name.startswith("lang=")}
    for path in folder.glob("lang=*/*.parquet"):             # each row in its language's folder
        assert set(pq.read_table(path, columns=["language"]).column("language").to_pylist()) == {path.parent.name[5:]}

    stats = json.loads((folder / ".refinedweb" / "stats.json").read_text())
    assert stats["stage"] == "documents" and stats["totals"]["reconciled"]
    assert stats["totals"]["records"] == inputs.num_rows and stats["totals"]["kept"] == kept.num_rows
    assert list(stats["stages"]) == ["read", "quality", "c4_punctuation"]
    assert stats["stages"]["quality"]["dropped"].get("too_few_words") and stats["stages"]["c4_punctuation"]["dropped"]
    dropped = ds.dataset(str(out / "dropped"), format="parquet").to_table()
    assert dropped.num_rows == inputs.num_rows - kept.num_rows
    assert set(dropped.column("stage").to_pylist()) == {"quality", "c4_punctuation"}
    manifest = json.loads((folder / ".refinedweb" / "manifest.json").read_text())
    assert manifest["totals"]["rows"] == kept.num_rows

    again = run(deduped, *command)                            # resume: every file is done
    assert again.returncode == 0 and "resuming: " in again.stderr and ", 0 to go" in again.stderr
    report = subprocess.run([*CLI, "report", str(out)], capture_output=True, text=True, timeout=600, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert report.returncode == 0, report.stderr
    assert "C4 terminal punctuation" in (out / "report.html").read_text()


def test_what_cannot_run_over_parquet_is_refused_in_one_line(deduped, tmp_path):
    extract = run(deduped, "--stage", "quality,extract", "--input", str(deduped / "in" / "dedup"), "--output",
                  str(tmp_path / "o"))
    assert extract.returncode == 2 and extract.stderr.count("\n") == 1
    assert "extract read the page's HTML, which Parquet input does not have" in extract.stderr
    pq.write_table(pa.table({"id": ["a"], "body": ["x"]}), tmp_path / "no-text.parquet")
    no_text = run(deduped, "--stage", "quality", "--input", str(tmp_path / "no-text.parquet"), "--output",
                  str(tmp_path / "o"))
    assert no_text.returncode == 2 and "has no string column 'text'" in no_text.stderr
    unknown = run(deduped, "--stage", "qualty", "--input", str(tmp_path / "no-text.parquet"), "--output",
                  str(tmp_path / "o"))
    assert unknown.returncode == 2 and "no stage 'qualty'" in unknown.stderr
