"""The stage contract: a stage added as one module plus one YAML section is accounted, fingerprinted,
reported and written with no other edit; how documents are chunked never changes results."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml

from refinedweb.config import load_config
from refinedweb.runtime.filter_pass import Pipeline, filter_file

from .conftest import REPO, SAMPLES

CLI = [sys.executable, "-m", "refinedweb"]
BLOCKLIST = "url_filter.blocklist=[package:demo_blocklist.txt]"
STAGES = ["url_filter", "pre_langid", "extract", "langid", "repetition", "quality", "tests.toy_c4_stage",
          "line_filter", "tokens"]


def user_config(tmp_path, **section) -> str:
    path = tmp_path / "with-c4.yaml"
    path.write_text(yaml.safe_dump({"filter": {"stages": STAGES}, "c4_punctuation": {"min_fraction": 0.5, **section}}))
    return str(path)


def test_a_stage_added_as_one_module_and_one_section(tmp_path):
    config = user_config(tmp_path)
    out = tmp_path / "out"
    inputs = [str(SAMPLES / "dolma_sample-0000.warc.gz"), str(SAMPLES / "aut_example.warc.gz")]
    env = {**os.environ, "PYTHONPATH": str(REPO)}          # the user's module is importable on the workers
    run = subprocess.run([*CLI, "run", "--stage", "filter", "--workers", "1", "--config", config, "--input", *inputs,
                          "--output", str(out), "--set", BLOCKLIST, "--progress", "off"],
                         env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "c4_punctuation" in run.stdout                               # in the funnel
    stats = json.loads((out / "filtered" / ".refinedweb" / "stats.json").read_text())
    stages = stats["stages"]
    assert list(stages) == ["read", "url_filter", "pre_langid", "extract", "langid", "repetition", "quality",
                            "c4_punctuation", "line_filter", "tokens"]                    # accounted, in order
    assert stages["c4_punctuation"]["docs_in"] == stages["quality"]["kept"]
    assert stages["line_filter"]["docs_in"] == stages["c4_punctuation"]["kept"]
    assert stages["c4_punctuation"]["dropped"].get("few_terminal_lines", 0) > 0
    assert stats["totals"]["reconciled"]
    table = ds.dataset(str(out / "filtered"), format="parquet").to_table()                   # written
    fractions = table.column("terminal_punct_fraction").to_pylist()
    assert table.num_rows == stats["totals"]["kept"] > 0 and all(f >= 0.5 for f in fractions)
    run_record = json.loads((out / "filtered" / ".refinedweb" / "run.json").read_text())      # fingerprinted
    assert run_record["settings"]["c4_punctuation.min_fraction"] == 0.5
    changed = subprocess.run([*CLI, "run", "--stage", "filter", "--config", config, "--input", *inputs, "--output",
                              str(out), "--set", BLOCKLIST, "--set", "c4_punctuation.min_fraction=0.6"],
                             env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert changed.returncode == 2 and "c4_punctuation.min_fraction: 0.5 -> 0.6" in changed.stderr
    report = subprocess.run([*CLI, "report", str(out)], env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert report.returncode == 0, report.stderr                                              # reported
    assert "C4 terminal punctuation" in (out / "report.html").read_text()


def filtered_rows(tmp_path, name: str, *overrides: str) -> tuple[list, list, dict]:
    cfg = load_config(user_config(tmp_path), [BLOCKLIST, "output.write_dropped=true", *overrides])
    out = tmp_path / name
    result = filter_file(str(SAMPLES / "dolma_sample-0000.warc.gz"), cfg, str(out), Pipeline.build(cfg))
    read = [pq.read_table(p).to_pylist() for p in sorted((out / "filtered").glob("*.parquet"))]
    dropped = [pq.read_table(p).to_pylist() for p in sorted((out / "dropped").glob("*.parquet"))]
    return read, dropped, {k: {**v, "seconds": 0} for k, v in result["stages"].items()}


def test_chunking_and_the_batch_entry_point_never_change_results(tmp_path):
    reference = filtered_rows(tmp_path, "one", "filter.chunk_documents=1")
    assert reference[0] and reference[1]
    for name, overrides in (("seven", ["filter.chunk_documents=7"]), ("default", []),
                            ("batch", ["c4_punctuation.batch=true", "filter.chunk_documents=5"])):
        assert filtered_rows(tmp_path, name, *overrides) == reference, name


def test_stage_names_and_sections_are_checked_in_one_line(tmp_path):
    from refinedweb.errors import UserError

    with pytest.raises(UserError, match="no stage module 'qualty'"):
        load_config(overrides=["filter.stages=[url_filter, qualty]"])
    with pytest.raises(UserError, match="unknown config key 'c4_punctuation'"):
        load_config(overrides=["c4_punctuation.min_fraction=0.5"])     # a section for a stage not configured
    with pytest.raises(UserError, match="is not a stage"):
        load_config(overrides=["filter.stages=[os.path]"])
