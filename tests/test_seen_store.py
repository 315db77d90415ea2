"""The seen-URL store (`dedup.url.seen`): a run never removes its own documents because of its own earlier
attempt (--overwrite, changed inputs, a resume after a crash at any point), reads the other runs'
contributions by key range, and finds exactly what a whole-store lookup finds; local and on S3 (moto)."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from refinedweb.dedup import seen_store
from refinedweb.dedup.shuffle import key_range, range_start
from refinedweb.io.storage import open_storage

from .serial import dedup_in_process
from .servers import moto_s3

URL_ONLY = ("dedup.methods=[url]",)


def write_corpus(folder, n: int, first: int = 0, seed: int = 0, files: int = 3) -> list[dict]:
    """`n` distinct documents; every 10th repeats the URL of the one before it (in another spelling), every
    17th has no URL (null or empty)."""
    rng = random.Random(seed)
    rows = []
    for i in range(first, first + n):
        url = f"https://site{i % 13}.example.org/page/{i}"
        if i % 10 == 9:
            url = f"http://www.site{(i - 1) % 13}.example.org/page/{i - 1}/"
        if i % 17 == 0:
            url = None if i % 2 else ""
        words = " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "eta", "theta"]) + str(rng.randrange(10**6))
                         for _ in range(60))
        rows.append({"id": f"d{i:05d}", "url": url, "text": f"document {i} {words}"})
    folder.mkdir(parents=True, exist_ok=True)
    step = -(-len(rows) // files)
    for k in range(files):
        pq.write_table(pa.Table.from_pylist(rows[k * step:(k + 1) * step]), folder / f"in-{first}-{k}.parquet")
    return rows


def record_of(store, output) -> dict:
    text = open_storage(str(store)).read_text(f"runs/{seen_store.run_name(f'{output}/dedup')}.json")
    return json.loads(text) if text else {}


# ----------------------------------------------------------------------------------------- the kernels

@pytest.mark.parametrize("ranges", [1, 3, 7, 640, 8192, 10_000])
def test_key_ranges_are_contiguous_and_equal(ranges):
    rng = np.random.default_rng(ranges)
    keys = np.concatenate([rng.integers(0, 2**64 - 1, 20_000, dtype=np.uint64, endpoint=True),
                           np.array([0, 2**64 - 1], dtype=np.uint64),
                           np.array([range_start(r, ranges) for r in range(ranges)], dtype=np.uint64)])
    got = key_range(keys, ranges)
    starts = np.array([range_start(r, ranges) for r in range(ranges)], dtype=np.uint64)
    assert (got == np.searchsorted(starts, keys, side="right") - 1).all()
    assert range_start(0, ranges) == 0 and range_start(ranges, ranges) == 1 << 64


@pytest.mark.parametrize("buckets,passes", [(1, 1), (5, 1), (64, 3), (300, 2)])
def test_bucket_slices_find_exactly_the_stored_hashes(tmp_path, buckets, passes):
    """A contribution of 3 range files (one empty); every bucket reads only its slices, in chunks of 7
    hashes, within one pass's share of the key space: membership equals a lookup in the whole set."""
    rng = np.random.default_rng(buckets)
    stored = np.unique(rng.integers(0, 2**64 - 1, 30_000, dtype=np.uint64))
    stored = stored[key_range(stored, 3) != 1]                      # range 1 of 3 left empty
    store = open_storage(str(tmp_path / "store"))
    seen = {"store": str(tmp_path / "store"), "run": "other-run", "attempt": "a1"}
    written = [seen_store.write_range(store, seen, r, stored[key_range(stored, 3) == r]) for r in range(3)]
    record = seen_store.commit(store, seen, written, "/data/other/dedup")
    assert record["urls"] == len(stored) and record["ranges"] == 3
    slices = seen_store.bucket_slices(store, [record], buckets)
    queries = np.unique(np.concatenate([stored[::3], rng.integers(0, 2**64 - 1, 30_000, dtype=np.uint64)]))
    expected = np.isin(queries, stored)
    bucket = key_range(queries, buckets)
    read = 0
    for b in range(buckets):
        lo, hi = range_start(b, buckets), range_start(b + 1, buckets)
        read += sum(n for _, _, n in slices[b])
        for k in range(passes):
            mine = queries[(bucket == b) & ((queries >> np.uint64(32)) % np.uint64(passes) == np.uint64(k))]
            keep = (lambda h, k=k: (h >> np.uint64(32)) % np.uint64(passes) == np.uint64(k)) if passes > 1 else None
            got = seen_store.seen_in(store, slices[b], mine, lo, hi, keep, chunk_keys=7)
            assert (got == np.isin(mine, stored)).all()
    assert expected.sum() > 5000
    assert read <= len(stored) + buckets * 2 * seen_store.STRIDE      # each bucket reads its slice, not the store


def test_an_old_single_file_store_is_refused_in_one_line(tmp_path):
    old = tmp_path / "_url_seen.npy"
    np.save(old, np.arange(3, dtype=np.uint64))
    from refinedweb.errors import UserError

    with pytest.raises(UserError, match="names a file: the seen-URL store is a folder now"):
        seen_store.open_store(str(old))


# ------------------------------------------------------------------------- every re-run path, in-process

def test_a_run_never_removes_its_own_documents(tmp_path):
    """The issue's case: the same run again, --overwrite, and changed inputs give one clean run's output;
    another run reads this one's contribution; this run re-run after it does not lose what it keeps."""
    corpus = tmp_path / "corpus"
    rows = write_corpus(corpus, 120)
    store = f"seen={tmp_path / 'store'}"
    clean, _ = dedup_in_process([corpus], tmp_path / "clean", *URL_ONLY)
    with_url = [r for r in clean.values() if r["url"]]
    assert 100 < len(clean) < 120 and len(clean) - len(with_url) == len([r for r in rows if not r["url"]])

    first, stats = dedup_in_process([corpus], tmp_path / "a", *URL_ONLY, f"dedup.url.{store}")
    assert first == clean
    assert stats["methods"]["url"]["seen_store"]["contribution_urls"] == len(with_url)
    assert stats["methods"]["url"]["no_url"] == len([r for r in rows if not r["url"]]) == 8 and stats["methods"]["url"]["seen_in_earlier_runs"] == 0
    record = record_of(tmp_path / "store", tmp_path / "a")
    assert record["urls"] == len(with_url)

    again, stats = dedup_in_process([corpus], tmp_path / "a", *URL_ONLY, f"dedup.url.{store}")
    assert again == clean and stats["methods"]["url"]["seen_in_earlier_runs"] == 0

    from refinedweb.config import load_config
    from refinedweb.runtime.dedup_job import run_dedup_stage

    from .serial import SerialRuntime
    cfg = load_config(overrides=[*URL_ONLY, f"dedup.url.{store}"])
    summary = run_dedup_stage([str(corpus)], str(tmp_path / "a"), cfg, runtime=SerialRuntime(), log=lambda m: None,
                              overwrite=True)
    assert summary["totals"]["docs_out"] == len(clean) and summary["methods"]["url"]["seen_in_earlier_runs"] == 0
    assert record_of(tmp_path / "store", tmp_path / "a")["attempt"] != record["attempt"]
    assert len(list((tmp_path / "store" / "runs" / record["run"]).iterdir())) == 1      # the old attempt is gone

    more = tmp_path / "corpus-more"
    write_corpus(more, 30, first=120, seed=1, files=1)
    grown, _ = dedup_in_process([corpus, more], tmp_path / "a", *URL_ONLY, f"dedup.url.{store}")
    grown_clean, _ = dedup_in_process([corpus, more], tmp_path / "grown-clean", *URL_ONLY)
    assert grown == grown_clean and len(grown) > len(clean)

    # another run (another output) over the first corpus: every URL is the first run's
    other, stats = dedup_in_process([corpus], tmp_path / "b", *URL_ONLY, f"dedup.url.{store}")
    assert set(other) == {i for i, r in clean.items() if not r["url"]}
    assert stats["methods"]["url"]["seen_in_earlier_runs"] == len(with_url)
    assert stats["methods"]["url"]["seen_store"]["runs_read"] == 1
    # ...and the first run started over after it keeps what it kept (the other run kept none of those URLs)
    summary = run_dedup_stage([str(corpus), str(more)], str(tmp_path / "a"), cfg, runtime=SerialRuntime(),
                              log=lambda m: None, overwrite=True)
    assert summary["totals"]["docs_out"] == len(grown)


CRASH_POINTS = ["url-bucket", "finish", "url-store", "commit", "stats"]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_crash_at_any_point_then_the_same_command(tmp_path, monkeypatch, point):
    """A crash in the middle of each phase that touches the store, after the contribution is committed but
    before the stage's stats and manifest: the same command gives one clean run's output and contribution."""
    from refinedweb.dedup import output
    from refinedweb.dedup.methods import url
    from refinedweb.runtime import dedup_job

    corpus = tmp_path / "corpus"
    write_corpus(corpus, 90)
    earlier = tmp_path / "earlier"
    write_corpus(earlier, 40, first=70, seed=2, files=1)         # another run sharing 20 URLs
    store = f"dedup.url.seen={tmp_path / 'store'}"
    sets = (*URL_ONLY, store, "dedup.parts=3", "run.worker_memory_mb=500", "dedup.task_memory_mb=0.001")
    dedup_in_process([earlier], tmp_path / "earlier-out", *sets)
    clean_store = tmp_path / "clean-store"
    import shutil
    shutil.copytree(tmp_path / "store", clean_store)
    clean, clean_stats = dedup_in_process([corpus], tmp_path / "clean", *URL_ONLY, f"dedup.url.seen={clean_store}")
    assert clean_stats["methods"]["url"]["seen_in_earlier_runs"] > 0

    class Crash(Exception):
        pass

    calls = {"n": 0}

    def crash_on_second(real):
        def wrapped(*args):
            calls["n"] += 1
            if calls["n"] == 2:
                raise Crash(point)
            return real(*args)
        return wrapped

    if point == "url-bucket":
        monkeypatch.setattr(url, "url_bucket", crash_on_second(url.url_bucket))
    elif point == "finish":
        monkeypatch.setattr(output, "finish_part", crash_on_second(output.finish_part))
    elif point == "url-store":   # one of the contribution's two range files is written
        monkeypatch.setattr(url, "store_range", crash_on_second(url.store_range))
    elif point == "commit":       # the range files are there, the record is not
        monkeypatch.setattr(seen_store, "commit", lambda *a: (_ for _ in ()).throw(Crash(point)))
    else:                          # the contribution is committed; the stage's stats and manifest are not
        monkeypatch.setattr(dedup_job, "_summarise", lambda *a: (_ for _ in ()).throw(Crash(point)))
    with pytest.raises(Crash):
        dedup_in_process([corpus], tmp_path / "out", *sets)
    monkeypatch.undo()
    got, stats = dedup_in_process([corpus], tmp_path / "out", *sets)
    assert got == clean
    assert stats["methods"]["url"]["seen_in_earlier_runs"] == clean_stats["methods"]["url"]["seen_in_earlier_runs"]
    assert record_of(tmp_path / "store", tmp_path / "out")["urls"] == record_of(clean_store, tmp_path / "clean")["urls"]
    assert stats["units_resumed"] > 0
    assert record_of(tmp_path / "store", tmp_path / "out")["ranges"] == 2


def test_every_path_on_s3(tmp_path):
    """Store and output on S3 (moto): --overwrite, a crash after the commit, and changed inputs."""
    import boto3
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    from refinedweb.config import load_config
    from refinedweb.runtime import dedup_job

    from .serial import SerialRuntime

    corpus = tmp_path / "corpus"
    write_corpus(corpus, 90)
    clean, _ = dedup_in_process([corpus], tmp_path / "clean", *URL_ONLY)
    with moto_s3() as endpoint:
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="rw-seen")
        fs = pafs.S3FileSystem(endpoint_override=endpoint, access_key="testing-key-id",
                               secret_key="testing-secret-key-SENSITIVE", region="us-east-1")
        cfg = load_config(overrides=[*URL_ONLY, "dedup.url.seen=s3://rw-seen/seen/", "dedup.parts=2"])

        def run(inputs, overwrite=False):
            summary = dedup_job.run_dedup_stage([str(i) for i in inputs], "s3://rw-seen/out/", cfg, runtime=SerialRuntime(),
                                                log=lambda m: None, overwrite=overwrite)
            table = ds.dataset("rw-seen/out/dedup", filesystem=fs, format="parquet", exclude_invalid_files=True).to_table()
            return {r["id"]: r for r in table.to_pylist()}, summary

        first, summary = run([corpus])
        assert first == clean
        urls = summary["methods"]["url"]["seen_store"]["contribution_urls"]
        again, summary = run([corpus], overwrite=True)
        assert again == clean and summary["methods"]["url"]["seen_store"]["contribution_urls"] == urls

        real = dedup_job._summarise
        dedup_job._summarise = lambda *a: (_ for _ in ()).throw(RuntimeError("killed"))
        try:
            with pytest.raises(RuntimeError):
                run([corpus], overwrite=True)
        finally:
            dedup_job._summarise = real
        resumed, summary = run([corpus])
        assert resumed == clean and summary["units_resumed"] > 0

        more = tmp_path / "more"
        write_corpus(more, 20, first=90, seed=1, files=1)
        grown, _ = run([corpus, more])
        grown_clean, _ = dedup_in_process([corpus, more], tmp_path / "grown-clean", *URL_ONLY)
        assert grown == grown_clean
        root = boto3.client("s3", endpoint_url=endpoint)
        root.create_bucket(Bucket="rw-seen-root")               # a store at a bucket's root
        assert seen_store.snapshot(seen_store.open_store("s3://rw-seen-root/"), "x") == []
        root.put_object(Bucket="rw-seen", Key="old-store.npy", Body=b"x")
        from refinedweb.errors import UserError
        with pytest.raises(UserError, match="names a file"):
            seen_store.open_store("s3://rw-seen/old-store.npy")
        store = open_storage("s3://rw-seen/seen/")
        assert len(store.list("runs", "*.json")) == 1 and len(store.list_folders(
            f"runs/{seen_store.run_name('s3://rw-seen/out/dedup')}")) == 1


def test_overwrite_and_changed_inputs_through_the_cli(tmp_path):
    """The command as README shows it, with the store on: the same output after --overwrite (it used to read
    its own URLs back as seen and write 0 documents), and after its inputs changed."""
    import subprocess
    import sys

    import pyarrow.dataset as ds

    from .conftest import REPO

    out, store = tmp_path / "out", tmp_path / "store"
    command = [sys.executable, "-m", "refinedweb", "run", "--input", "refinedweb/resources/samples/", "--output", str(out),
               "--config", "configs/demo.yaml", "--set", f"dedup.url.seen={store}", "--progress", "off"]

    def run(*extra):
        result = subprocess.run([*command, *extra], capture_output=True, text=True, timeout=600, cwd=REPO)
        assert result.returncode == 0, result.stderr[-3000:]
        table = ds.dataset(str(out / "dedup"), format="parquet").to_table()
        stats = json.loads((out / "dedup" / ".refinedweb" / "stats.json").read_text())["methods"]["url"]
        return sorted(zip(table.column("source").to_pylist(), table.column("id").to_pylist())), stats

    first, stats = run()
    assert len(first) > 50 and stats["seen_in_earlier_runs"] == 0
    again, stats = run("--overwrite")
    assert again == first and stats["seen_in_earlier_runs"] == 0
    assert stats["seen_store"] == {**stats["seen_store"], "runs_read": 0, "contribution_urls": len(first)}

    extra = tmp_path / "extra"                  # the inputs change: the dedup stage starts over
    write_corpus(extra, 30, files=1)
    result = subprocess.run([sys.executable, "-m", "refinedweb", "run", "--stage", "dedup", "--input", str(out / "filtered"),
                             str(extra), "--output", str(out), "--config", "configs/demo.yaml",
                             "--set", f"dedup.url.seen={store}", "--progress", "off"],
                            capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "the inputs differ from the earlier run's: starting this stage over" in result.stderr
    clean, _ = dedup_in_process([out / "filtered", extra], tmp_path / "clean",
                                "url_filter.blocklist=[package:demo_blocklist.txt]")
    got = ds.dataset(str(out / "dedup"), format="parquet").to_table().column("id").to_pylist()
    assert sorted(got) == sorted(clean) and len(got) == len(first) + 30 - 3      # 3 of the 30 repeat a URL
    assert record_of(store, out)["urls"] == len([r for r in clean.values() if r["url"]])
