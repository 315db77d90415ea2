"""Crash-safe resume: kill -9 the CLI's whole process group mid-run, re-run the same command, and get
exactly the documents of an uninterrupted run, none twice. Plus config-change refusal and --overwrite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from .conftest import REPO, SAMPLES

CLI = [sys.executable, "-m", "refinedweb"]
INPUTS = [str(p) for p in sorted(SAMPLES.glob("*.warc.gz"))]
# small shards so that a file commits shards before it is finished; 4 parts so dedup has many units
SETTINGS = ["--set", "url_filter.blocklist=[package:demo_blocklist.txt]", "--set", "output.max_rows_per_shard=5",
            "--set", "dedup.parts=4", "--set", "dedup.keep_work=true"]


def command(out: Path, *extra: str) -> list[str]:
    return [*CLI, "run", "--stage", "all", "--workers", "2", "--input", *INPUTS, "--output", str(out), *SETTINGS, *extra]


def run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(out, *extra), capture_output=True, text=True, timeout=600, cwd=REPO)


def ids(folder: Path) -> Counter:
    table = ds.dataset(str(folder), format="parquet", exclude_invalid_files=True).to_table(columns=["id"])
    return Counter(table.column("id").to_pylist())


def rows(folder: Path) -> dict[str, dict]:
    table = ds.dataset(str(folder), format="parquet", exclude_invalid_files=True).to_table()
    return {r["id"]: r for r in table.to_pylist()}


def kill_when(out: Path, ready, timeout: float = 300) -> str:
    """Start the CLI in its own process group, SIGKILL the whole group once `ready()` is true."""
    log = out.parent / f"{out.name}.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(command(out), stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        deadline = time.time() + timeout
        try:
            while not ready():
                if proc.poll() is not None:
                    pytest.fail(f"the run ended (exit {proc.returncode}) before the kill point:\n{log.read_text()[-3000:]}")
                if time.time() > deadline:
                    pytest.fail("kill point not reached in time")
                time.sleep(0.05)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    return log.read_text()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "out"
    result = run(out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_kill_after_first_shard_then_resume(uninterrupted, tmp_path):
    out = tmp_path / "out"
    kill_when(out, lambda: any((out / "filtered").glob("*.parquet")))
    filtered_done = len(list((out / "filtered" / "_done").glob("*.json")))
    assert filtered_done < len(INPUTS), "the kill came too late to test anything"
    assert not (out / "filtered" / "stats.json").exists()

    result = run(out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming: {filtered_done} file(s) already done" in result.stderr or filtered_done == 0
    for stage in ("filtered", "dedup"):
        got, want = ids(out / stage), ids(uninterrupted / stage)
        assert max(got.values()) == 1, f"{stage}: a document appears twice"
        assert got == want
        assert rows(out / stage) == rows(uninterrupted / stage)
    assert not list(out.rglob(".*.tmp"))
    stats = json.loads((out / "filtered" / "stats.json").read_text())
    assert stats["totals"]["reconciled"] and stats["totals"]["files"] == len(INPUTS)
    assert stats["files_resumed"] == filtered_done
    whole = json.loads((uninterrupted / "filtered" / "stats.json").read_text())
    for key in ("records", "kept", "dropped", "errors", "tokens"):
        assert stats["totals"][key] == whole["totals"][key], key


def test_kill_in_the_middle_of_dedup_then_resume(uninterrupted, tmp_path):
    out = tmp_path / "out"
    done = out / "dedup" / "_done"
    # the first phase-2 unit finished: phase 1 is complete and phase 2/3 are not
    kill_when(out, lambda: any(done.glob("edges-*.json")))
    markers = {p.name for p in done.glob("*.json")}
    assert not any(m.startswith("finish-") for m in markers)
    assert not (out / "dedup" / "stats.json").exists()

    result = run(out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming: 6 file(s) already done, 0 to go" in result.stderr   # the filter stage is not redone
    assert "unit(s) of work were already done" in result.stderr
    got = ids(out / "dedup")
    assert max(got.values()) == 1
    assert got == ids(uninterrupted / "dedup")
    assert rows(out / "dedup") == rows(uninterrupted / "dedup")
    stats = json.loads((out / "dedup" / "stats.json").read_text())
    assert stats["units_resumed"] >= len([m for m in markers if m.startswith("partition-")])
    assert stats["totals"] == {**json.loads((uninterrupted / "dedup" / "stats.json").read_text())["totals"],
                               "wall_seconds": stats["totals"]["wall_seconds"],
                               "docs_per_second": stats["totals"]["docs_per_second"]}


def test_finished_run_is_not_redone(uninterrupted, tmp_path):
    out = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(uninterrupted), str(out)], check=True)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    started = time.time()
    result = run(out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Ray:" not in result.stderr            # nothing was left to do: Ray was not even started
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == before
    assert time.time() - started < 60


def test_a_different_config_is_refused_naming_the_keys(uninterrupted, tmp_path):
    out = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(uninterrupted), str(out)], check=True)
    result = run(out, "--set", "langid.threshold=0.7", "--set", "quality.min_words=40")
    assert result.returncode == 2
    lines = [l for l in result.stderr.splitlines() if l.startswith("refinedweb:")]
    assert len(lines) == 1
    assert "langid.threshold: 0.65 -> 0.7" in lines[0] and "quality.min_words: 50 -> 40" in lines[0]
    assert "--overwrite" in lines[0]

    dedup_only = subprocess.run([*CLI, "run", "--stage", "dedup", "--input", str(out / "filtered"), "--output", str(out),
                                 *SETTINGS, "--set", "dedup.minhash.ngram=6"],
                                capture_output=True, text=True, timeout=600, cwd=REPO)
    assert dedup_only.returncode == 2
    assert "dedup.minhash.ngram: 5 -> 6" in dedup_only.stderr


def test_overwrite_starts_over(uninterrupted, tmp_path):
    out = tmp_path / "copy"
    subprocess.run(["cp", "-a", str(uninterrupted), str(out)], check=True)
    stale = out / "filtered" / "stale-from-another-run-00000.parquet"
    stale.write_bytes((next((out / "filtered").glob("*.parquet"))).read_bytes())
    result = run(out, "--overwrite", "--set", "langid.threshold=0.9")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not stale.exists()
    assert "resuming" not in result.stderr
    kept = rows(out / "filtered")
    assert kept and all(r["language_score"] >= 0.9 for r in kept.values())
    assert set(kept) < set(ids(uninterrupted / "filtered"))
    record = json.loads((out / "filtered" / "_run.json").read_text())
    assert record["settings"]["langid.threshold"] == 0.9


def test_output_without_a_run_record_is_not_mixed_into(tmp_path):
    out = tmp_path / "out"
    (out / "filtered").mkdir(parents=True)
    (out / "filtered" / "someone-else-00000.parquet").write_bytes(b"PAR1")
    result = run(out)
    assert result.returncode == 2
    assert "without a run record" in result.stderr
