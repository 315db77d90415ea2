"""Crash-safe resume: kill -9 the CLI's whole process group mid-run, re-run the same command, and get
exactly the documents of an uninterrupted run, none twice. Plus config-change refusal and --overwrite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from .conftest import REPO, SAMPLES
from .procs import alive, processes, stat
from .servers import moto_s3

# alone (`serial`): its runs use both cores for minutes each; among the parallel tests the suite took 17:10
# against 14:39-15:34 with it run alone (2 cores). Its kills reach only its own runs' workers (by session).
pytestmark = pytest.mark.serial

CLI = [sys.executable, "-m", "refinedweb"]
INPUTS: list[str] = []     # 8 files: the 6 bundled samples and second copies of two (filled by `inputs`)
MEMORY_CAP_MB = 1000
# small shards so that a file commits shards before it is finished; 4 parts so dedup has many units;
# an 80 MB object store (Ray's minimum is 75 MB) and a per-worker memory cap
SETTINGS = ["--set", "url_filter.blocklist=[package:demo_blocklist.txt]", "--set", "output.shard_max_rows=5",
            "--set", "dedup.parts=4", "--set", "dedup.keep_work=true",
            "--set", "run.object_store_mb=80", "--set", f"run.worker_memory_mb={MEMORY_CAP_MB}"]


@pytest.fixture(scope="module", autouse=True)
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    samples = sorted(SAMPLES.glob("*.warc.gz"))
    for path in samples:
        (folder / path.name).symlink_to(path)
    for path in samples[3:5]:
        (folder / f"copy-{path.name}").symlink_to(path)
    INPUTS[:] = sorted(str(p) for p in folder.iterdir())
    assert len(INPUTS) == 8


def command(out: Path | str, *extra: str, stage: str = "all") -> list[str]:
    return [*CLI, "run", "--stage", stage, "--workers", "2", "--input", *INPUTS, "--output", str(out), *SETTINGS, *extra]


def run(out: Path | str, *extra: str, stage: str = "all") -> subprocess.CompletedProcess:
    return subprocess.run(command(out, *extra, stage=stage), capture_output=True, text=True, timeout=600, cwd=REPO)


def ids(folder: Path) -> Counter:
    """(input file, record id) of every document: two inputs are copies of others, so ids alone repeat."""
    table = ds.dataset(str(folder), format="parquet", exclude_invalid_files=True).to_table(columns=["source", "id"])
    return Counter(zip(table.column("source").to_pylist(), table.column("id").to_pylist()))


def rows(folder: Path) -> dict[tuple, dict]:
    table = ds.dataset(str(folder), format="parquet", exclude_invalid_files=True).to_table()
    return {(r["source"], r["id"]): r for r in table.to_pylist()}


def kill_when(out: Path | str, ready, timeout: float = 300, log: Path | None = None, stage: str = "all",
              command: list[str] | None = None) -> str:
    """Start the CLI in its own process group, SIGKILL the whole group once `ready()` is true."""
    log = log or out.parent / f"{out.name}.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(command or globals()["command"](out, stage=stage), stdout=fh, stderr=subprocess.STDOUT, cwd=REPO,
                                start_new_session=True)
        deadline = time.time() + timeout
        try:
            while not ready():
                if proc.poll() is not None:
                    pytest.fail(f"the run ended (exit {proc.returncode}) before the kill point:\n{log.read_text()[-3000:]}")
                if time.time() > deadline:
                    pytest.fail("kill point not reached in time")
                time.sleep(0.05)
        finally:
            working = task_workers(proc.pid)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    # Ray's workers have process groups of their own: they die with the raylet (die_with_parent), not ~2 s
    # later, when they could still write into the output the re-run is cleaning up
    deadline = time.time() + 1
    while (left := [pid for pid in working if alive(pid)]) and time.time() < deadline:
        time.sleep(0.02)
    assert not left, f"task workers {left} outlived the killed run"
    return log.read_text()


def task_workers(session: int, tasks: tuple[str, ...] = ("ray::_filter_task", "ray::_call")) -> list[int]:
    """The Ray workers of a run started in its own session that are running (or have run) one of `tasks`: this
    run's own, whatever other Ray runs beside it."""
    return [pid for pid, cmd in processes() if cmd.startswith(tasks)
            and (fields := stat(pid)) is not None and int(fields[3]) == session]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole") / "out"
    result = run(out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_eight_files_two_workers_small_object_store_stay_under_the_memory_cap(uninterrupted):
    for stage in ("filtered", "dedup"):
        stats = json.loads((uninterrupted / stage / ".refinedweb/stats.json").read_text())
        assert stats["worker_memory_mb"] == MEMORY_CAP_MB
        assert 50 < stats["worker_peak_rss_mb"] < MEMORY_CAP_MB, stats["worker_peak_rss_mb"]
    stats = json.loads((uninterrupted / "filtered" / ".refinedweb/stats.json").read_text())
    assert stats["totals"]["files"] == 8 and stats["totals"]["files_failed"] == 0 and stats["totals"]["reconciled"]
    assert all(f["worker_peak_rss_mb"] < MEMORY_CAP_MB for f in stats["files"])


def test_kill_after_first_shard_then_resume(uninterrupted, tmp_path):
    out = tmp_path / "out"
    kill_when(out, lambda: any((out / "filtered").glob("*.parquet")))
    filtered_done = len(list((out / "filtered" / ".refinedweb/done").glob("*.json")))
    assert filtered_done < len(INPUTS), "the kill came too late to test anything"
    assert not (out / "filtered" / ".refinedweb/stats.json").exists()

    result = run(out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming: {filtered_done} file(s) already done" in result.stderr or filtered_done == 0
    for stage in ("filtered", "dedup"):
        got, want = ids(out / stage), ids(uninterrupted / stage)
        assert max(got.values()) == 1, f"{stage}: a document appears twice"
        assert got == want
        assert rows(out / stage) == rows(uninterrupted / stage)
    assert not list(out.rglob(".*.tmp"))
    stats = json.loads((out / "filtered" / ".refinedweb/stats.json").read_text())
    assert stats["totals"]["reconciled"] and stats["totals"]["files"] == len(INPUTS)
    assert stats["files_resumed"] == filtered_done
    whole = json.loads((uninterrupted / "filtered" / ".refinedweb/stats.json").read_text())
    for key in ("records", "kept", "dropped", "errors", "tokens"):
        assert stats["totals"][key] == whole["totals"][key], key


# The dedup stage alone over the uninterrupted run's filter output, with a tiny task memory so that buckets
# are read in several passes and components go through large/small-star rounds: a knob that must not change
# the output, so the uninterrupted run's dedup/ is the expected result here too.
DEDUP_TINY = ["--set", "dedup.task_memory_mb=0.01"]
# On S3 (moto, ~40 ms a request) 0.01 MB writes ~1,400 work objects and takes two minutes; 0.1 MB still finds
# components out of core (large/small-star rounds) over ~540 of them
DEDUP_S3 = ["--set", "dedup.task_memory_mb=0.1"]
# What the docs say never changes results may change between attempts (raised after an out-of-memory failure)
DEDUP_OTHER_KNOBS = ["--set", "dedup.task_memory_mb=64", "--set", "dedup.parts=2", "--set", "dedup.minhash.band_groups=2",
                     "--set", "dedup.exact_substring.max_part_bytes=5000"]


def dedup_command(source: Path, out: Path | str, *extra: str, knobs: list[str] = DEDUP_TINY) -> list[str]:
    return [*CLI, "run", "--stage", "dedup", "--workers", "2", "--input", str(source / "filtered"),
            "--output", str(out), *SETTINGS, *knobs, *extra]


def finished_units(done: Path) -> set[str]:
    """The units with a marker: one file each, or (a finished phase) in one `phase=…` file."""
    out = set()
    for path in done.glob("*.json"):
        if path.name.startswith("phase="):
            out |= set(json.loads(path.read_text()))
        else:
            out.add(path.name.removesuffix(".json"))
    return out


def test_dedup_killed_in_five_phases_one_after_another_then_resumed(uninterrupted, tmp_path, monkeypatch):
    """kill -9 in the MinHash buckets, then (resumed) in a component round, then, with other values of the knobs
    that never change results, in the exact-substring buckets, in the URL scans and in the output phase, with
    the seen-URL store on: each run resumes the previous one's state, the last one finishes. The output is the
    uninterrupted run's (which had no store: an empty store changes nothing), the store holds this run's URLs."""
    out = tmp_path / "out"
    store = tmp_path / "store"
    done = out / "dedup" / ".refinedweb/done"
    seen: set[str] = set()
    scratch = tmp_path / "tmp"             # the runs' temp folder (Ray's own stays where it is): what kills leave
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setenv("RAY_TMPDIR", tempfile.gettempdir())
    left: set[str] = set()
    phases = ("minhash-bucket-", "cc-r=", "exact-bucket-", "url-scan-", "finish-")
    for i, phase in enumerate(phases):
        def reached(seen=seen, wanted=phases[i:]) -> bool:   # a new marker of this phase (or a later one)
            return any(u not in seen and u.startswith(wanted) for u in finished_units(done))

        knobs = DEDUP_TINY if i < 2 else DEDUP_OTHER_KNOBS
        kill_when(out, reached, command=dedup_command(uninterrupted, out, "--set", f"dedup.url.seen={store}",
                                                      knobs=knobs), log=tmp_path / f"{phase}log")
        markers = finished_units(done)
        assert markers > seen and not any(m.startswith("merge-") for m in markers), phase
        assert not (out / "dedup" / ".refinedweb/stats.json").exists()
        seen = markers
        left |= {p.name for p in scratch.iterdir()}

    result = subprocess.run(dedup_command(uninterrupted, out, "--set", f"dedup.url.seen={store}",
                                          knobs=DEDUP_OTHER_KNOBS), capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "unit(s) of work were already done" in result.stderr
    assert "resuming with the earlier run's 4 part(s)" in result.stderr
    # the killed tasks' spools are gone (their names say whose), and so is every spool of the finished run
    assert any(name.startswith(("refinedweb-shuffle-", "refinedweb-parts-")) for name in left), left
    assert not [p.name for p in scratch.iterdir()]
    got = ids(out / "dedup")
    assert max(got.values()) == 1
    assert got == ids(uninterrupted / "dedup")
    assert rows(out / "dedup") == rows(uninterrupted / "dedup")
    stats = json.loads((out / "dedup" / ".refinedweb/stats.json").read_text())
    assert stats["units_resumed"] >= len(seen) - 1
    assert "round" in stats["methods"]["minhash"]["components"]     # the first attempt's way, kept
    assert stats["totals"] == {**json.loads((uninterrupted / "dedup" / ".refinedweb/stats.json").read_text())["totals"],
                               "wall_seconds": stats["totals"]["wall_seconds"],
                               "docs_per_second": stats["totals"]["docs_per_second"]}
    record, = [json.loads(p.read_text()) for p in (store / "runs").glob("*.json")]
    assert record["urls"] == len({r["url"] for r in rows(out / "dedup").values() if r["url"]})
    assert stats["methods"]["url"]["seen_store"]["contribution_urls"] == record["urls"]


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
    result = run(out, "--overwrite", "--set", "langid.threshold=0.9", "--limit", "3", stage="filter")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not stale.exists()
    assert "resuming" not in result.stderr
    kept = rows(out / "filtered")
    assert kept and all(r["language_score"] >= 0.9 for r in kept.values())
    assert set(kept) < set(ids(uninterrupted / "filtered"))
    record = json.loads((out / "filtered" / ".refinedweb/run.json").read_text())
    assert record["settings"]["langid.threshold"] == 0.9


def test_output_without_a_run_record_is_not_mixed_into(tmp_path):
    out = tmp_path / "out"
    (out / "filtered").mkdir(parents=True)
    (out / "filtered" / "someone-else-00000.parquet").write_bytes(b"PAR1")
    result = run(out)
    assert result.returncode == 2
    assert "without a run record" in result.stderr


def test_a_dedup_task_that_fails_for_good_stops_the_run_in_one_line_saying_to_rerun(tmp_path):
    """A Parquet input whose footer is fine but whose data pages are corrupt: the plan (footers) passes,
    the scan task fails; the run stops with exit 1 and one line, not a traceback."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "in"
    folder.mkdir()
    texts = [f"document {i} " + " ".join(f"w{(i * j) % 997}" for j in range(300)) for i in range(50)]
    path = folder / "docs.parquet"
    pq.write_table(pa.table({"id": [str(i) for i in range(50)], "url": [f"https://e.org/{i}" for i in range(50)],
                             "text": texts}), path, compression="zstd")
    data = bytearray(path.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    for i in range(8, len(data) - footer - 8, 7):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    result = subprocess.run([*CLI, "run", "--stage", "dedup", "--workers", "1", "--input", str(folder),
                             "--output", str(tmp_path / "out")], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("refinedweb: stopped: a task failed (") and "run the same command again to resume" in last


def test_kill_and_resume_on_s3(uninterrupted, tmp_path):
    """The filter stage, then the dedup stage, on S3 (moto server): objects and markers committed before the
    kill are kept, the dedup work folder (records, pairs, decisions) lives on S3 too."""
    import boto3
    import pyarrow.fs as pafs

    with moto_s3() as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="rw-resume")

        def objects(prefix: str) -> list[str]:
            return [o["Key"] for o in client.list_objects_v2(Bucket="rw-resume", Prefix=prefix).get("Contents", [])]

        kill_when("s3://rw-resume/run/", lambda: any(k.endswith(".parquet") for k in objects("run/filtered/")),
                  log=tmp_path / "killed.log", stage="filter")
        done_before = len(objects("run/filtered/.refinedweb/done/"))
        assert done_before < len(INPUTS)
        result = run("s3://rw-resume/run/", stage="filter")
        assert result.returncode == 0, result.stderr[-3000:]
        fs = pafs.S3FileSystem(endpoint_override=endpoint, access_key=os.environ["AWS_ACCESS_KEY_ID"],
                               secret_key=os.environ["AWS_SECRET_ACCESS_KEY"], region="us-east-1")
        for stage in ("filtered",):
            table = ds.dataset(f"rw-resume/run/{stage}", filesystem=fs, format="parquet",
                               exclude_invalid_files=True).to_table()
            got = {(r["source"], r["id"]): r for r in table.to_pylist()}
            assert table.num_rows == len(got), f"{stage}: a document appears twice"
            assert got == rows(uninterrupted / stage)
        stats = json.loads(client.get_object(Bucket="rw-resume", Key="run/filtered/.refinedweb/stats.json")["Body"].read())
        assert stats["files_resumed"] == done_before and stats["totals"]["reconciled"]
        assert not client.list_multipart_uploads(Bucket="rw-resume").get("Uploads")

        store = ["--set", "dedup.url.seen=s3://rw-resume/seen/"]
        kill_when("s3://rw-resume/run/", lambda: any(k.endswith(".json") for k in objects("run/dedup/.refinedweb/done/exact-scan-")
                                                     + objects("run/dedup/.refinedweb/done/phase=exact-scan")),
                  log=tmp_path / "killed-dedup.log",
                  command=dedup_command(uninterrupted, "s3://rw-resume/run/", *store, knobs=DEDUP_S3))
        assert any("_work/dedup/minhash" in k for k in objects("run/_work/"))
        result = subprocess.run(dedup_command(uninterrupted, "s3://rw-resume/run/", *store, knobs=DEDUP_S3),
                                capture_output=True, text=True, timeout=600, cwd=REPO)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "unit(s) of work were already done" in result.stderr
        stats = json.loads(client.get_object(Bucket="rw-resume", Key="run/dedup/.refinedweb/stats.json")["Body"].read())
        assert "large/small-star" in stats["methods"]["minhash"]["components"]
        table = ds.dataset("rw-resume/run/dedup", filesystem=fs, format="parquet", exclude_invalid_files=True).to_table()
        got = {(r["source"], r["id"]): r for r in table.to_pylist()}
        assert table.num_rows == len(got) and got == rows(uninterrupted / "dedup")
        record, = [json.loads(client.get_object(Bucket="rw-resume", Key=k)["Body"].read()) for k in objects("seen/runs/")
                   if k.endswith(".json")]
        assert record["urls"] == len({r["url"] for r in got.values() if r["url"]})


def test_a_killed_ray_worker_is_retried(uninterrupted, tmp_path):
    """SIGKILL a Ray worker while it runs a filter task: Ray retries the task (run.max_retries) and the
    output is still exactly the uninterrupted run's."""
    out = tmp_path / "out"
    log = tmp_path / "run.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(command(out, stage="filter"), stdout=fh, stderr=subprocess.STDOUT, cwd=REPO,
                                start_new_session=True)
        killed = None
        deadline = time.time() + 300
        try:
            while killed is None and proc.poll() is None and time.time() < deadline:
                found = task_workers(proc.pid, ("ray::_filter_task",))
                if found:
                    killed = found[0]
                    os.kill(killed, signal.SIGKILL)
                time.sleep(0.05)
            code = proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert killed is not None, "no running filter task was seen"
    assert code == 0, log.read_text()[-3000:]
    for stage in ("filtered",):
        got = ids(out / stage)
        assert max(got.values()) == 1 and got == ids(uninterrupted / stage)
        assert rows(out / stage) == rows(uninterrupted / stage)
    stats = json.loads((out / "filtered" / ".refinedweb/stats.json").read_text())
    assert stats["totals"]["files_failed"] == 0 and stats["totals"]["reconciled"]
