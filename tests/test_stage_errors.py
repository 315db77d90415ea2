"""A stage that raises is an error, not a filter: one bad page costs only itself, but a stage that raises on
more than `filter.max_error_fraction` of a file's documents fails that file (listed, exit 1, a re-run
retries it), and errors are shown apart from drops in the funnel, the stats and the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.dataset as ds
import pytest
import yaml

from refinedweb.config import load_config
from refinedweb.runtime.filter_pass import Pipeline, filter_file

from .conftest import REPO, SAMPLES

CLI = [sys.executable, "-m", "refinedweb"]
BLOCKLIST = "url_filter.blocklist=[package:demo_blocklist.txt]"
STAGES = ["url_filter", "pre_langid", "extract", "langid", "tests.toy_broken_stage", "repetition", "quality",
          "line_filter", "tokens"]
BROKEN = "dolma_sample-0000"          # the input whose documents the toy stage raises on


def config(tmp_path, **section) -> str:
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump({"filter": {"stages": STAGES},
                                    "toy_broken": {"flag": str(tmp_path / "bug"), "inputs_containing": BROKEN,
                                                   **section}}))
    return str(path)


def test_one_bad_page_costs_only_itself(tmp_path):
    (tmp_path / "bug").touch()
    cfg = load_config(config(tmp_path, first=1), [BLOCKLIST])
    result = filter_file(str(SAMPLES / f"{BROKEN}.warc.gz"), cfg, str(tmp_path / "out"), Pipeline.build(cfg))
    assert result["status"] == "ok" and result["reconciled"]
    assert result["errors"] == {"toy_broken:ValueError": 1}
    assert result["stages"]["toy_broken"]["docs_in"] > 20 and result["kept"] > 0


@pytest.mark.parametrize("fraction,fails", [(0.01, True), (1.0, False)])
def test_a_stage_raising_on_a_share_above_the_limit_fails_the_file(tmp_path, fraction, fails):
    (tmp_path / "bug").touch()
    cfg = load_config(config(tmp_path, first=3), [BLOCKLIST, f"filter.max_error_fraction={fraction}",
                                                  "output.shard_max_rows=1"])
    out = tmp_path / "out"
    result = filter_file(str(SAMPLES / f"{BROKEN}.warc.gz"), cfg, str(out), Pipeline.build(cfg))
    docs_in = result["stages"]["toy_broken"]["docs_in"]
    assert 3 > 0.01 * docs_in                             # 3 errors are above 1% of this file
    if fails:
        assert result["status"] == "failed"
        assert result["error"].startswith(f"stage toy_broken raised on 3 of {docs_in} documents, above "
                                          "filter.max_error_fraction=0.01 (first: ValueError: toy stage bug)")
        assert not list(out.rglob("*.parquet")) and not (out / "filtered" / ".refinedweb" / "done").exists()
    else:
        assert result["status"] == "ok" and list(out.rglob("*.parquet"))


def test_a_broken_stage_fails_its_files_loudly_and_a_rerun_resumes_them(tmp_path):
    """Through the CLI: the input the stage raises on fails (exit 1, listed with the stage and the share), the
    other completes; errors have their own funnel column and stats; once the bug is gone the same command
    redoes only the failed file."""
    flag = tmp_path / "bug"
    flag.touch()
    out = tmp_path / "out"
    inputs = [str(SAMPLES / f"{BROKEN}.warc.gz"), str(SAMPLES / "aut_example.warc.gz")]
    command = [*CLI, "run", "--stage", "all", "--workers", "2", "--config", config(tmp_path), "--input", *inputs,
               "--output", str(out), "--set", BLOCKLIST, "--set", "output.write_dropped=true", "--progress", "off"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert first.returncode == 1, first.stderr[-3000:]
    assert "Traceback" not in first.stderr
    assert "refinedweb: 1 of 2 input file(s) failed:" in first.stderr
    failed_line = next(line for line in first.stderr.splitlines() if BROKEN in line and "raised on" in line)
    assert "stage toy_broken raised on" in failed_line and "filter.max_error_fraction=0.01" in failed_line
    assert "dedup skipped until every input file is filtered" in first.stderr
    header = first.stdout.splitlines()[0].split()
    assert header[:5] == ["stage", "docs", "left", "%", "of"] and "errors" in header
    broken_row = next(line for line in first.stdout.splitlines() if line.startswith("toy_broken"))
    stats = json.loads((out / "filtered" / ".refinedweb" / "stats.json").read_text())
    errors = stats["stages"]["toy_broken"]["errors_total"]
    assert errors > 0 and broken_row.split()[3] == str(errors)            # the errors column, not a drop reason
    assert stats["stages"]["toy_broken"]["dropped_total"] == 0 and stats["totals"]["errors"] == errors
    assert [f["status"] for f in stats["files"]] == ["failed", "ok"]
    assert not (out / "filtered" / ".refinedweb" / "manifest.json").exists()
    assert {r for r in ds.dataset(str(out / "filtered"), format="parquet").to_table().column("source").to_pylist()} \
        == {inputs[1]}
    report = subprocess.run([*CLI, "report", str(out)], env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert report.returncode == 0, report.stderr
    page = (out / "report.html").read_text()
    assert "<th>errors</th>" in page and "Failed input files" in page and "toy_broken raised on" in page

    flag.unlink()                                         # the bug fixed: the same command again
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resuming: 1 file(s) already done, 1 to go" in second.stderr
    stats = json.loads((out / "filtered" / ".refinedweb" / "stats.json").read_text())
    assert stats["totals"]["files_failed"] == 0 and stats["totals"]["reconciled"] and stats["totals"]["errors"] == 0
    assert (out / "dedup" / ".refinedweb" / "manifest.json").exists()
