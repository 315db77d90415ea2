"""The incremental job (pipelines/incremental.sh) against a local HTTP CommonCrawl layout that gains a
second crawl: only the new crawl is processed, URLs kept from the first are dropped from the second
(seen-URL store across dumps), and both crawls' manifests describe their shards exactly."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds

from .conftest import REPO, SAMPLES
from .servers import FlakyFileServer

CRAWLS = {"CC-MAIN-2023-06": ["dolma_sample-0000.warc.gz", "resiliparse_warcfile.warc.gz"],
          "CC-MAIN-2023-14": ["dolma_sample-0000.warc.gz", "dolma_sample-0001.warc.gz"]}   # repeats a file of the first


def layout(root: Path, crawls: list[str]) -> None:
    for crawl in crawls:
        lines = []
        for i, name in enumerate(CRAWLS[crawl]):
            rel = f"crawl-data/{crawl}/segments/{i}/warc/{name}"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(SAMPLES / name, root / rel)
            lines.append(rel)
        (root / f"crawl-data/{crawl}/warc.paths.gz").write_bytes(gzip.compress("\n".join(lines).encode() + b"\n"))
    (root / "collinfo.json").write_text(json.dumps([{"id": c, "name": c} for c in reversed(crawls)]))


def incremental(server_url: str, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "COLLINFO": f"{server_url}collinfo.json"}
    return subprocess.run(["bash", str(REPO / "pipelines" / "incremental.sh"), str(out), "--workers", "2",
                           "--progress", "off", "--set", f"fetch.base_uri={server_url}",
                           "--set", "fetch.start_jitter_seconds=0",
                           "--set", "url_filter.blocklist=[package:demo_blocklist.txt]"],
                          capture_output=True, text=True, timeout=900, cwd=REPO, env=env)


def check_manifest(folder: Path) -> dict:
    manifest = json.loads((folder / ".refinedweb/manifest.json").read_text())
    for shard in manifest["shards"]:
        path = folder / shard["path"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == shard["sha256"]
        assert path.stat().st_size == shard["bytes"]
    table = ds.dataset(str(folder), format="parquet").to_table()
    assert table.num_rows == manifest["totals"]["rows"]
    assert sum(table.column("token_count").to_pylist()) == manifest["totals"]["tokens"]
    return manifest


def test_incremental_job_processes_only_new_crawls_and_carries_urls(tmp_path):
    www, out = tmp_path / "www", tmp_path / "out"
    www.mkdir()
    layout(www, ["CC-MAIN-2023-06"])
    with FlakyFileServer(www) as server:
        first = incremental(server.url, out)
        assert first.returncode == 0, first.stderr[-3000:]
        assert "1 crawl(s) to process: CC-MAIN-2023-06" in first.stderr
        old = out / "CC-MAIN-2023-06"
        assert (old / "report.html").exists()
        stamp = (old / "dedup" / ".refinedweb/manifest.json").stat().st_mtime_ns

        layout(www, ["CC-MAIN-2023-06", "CC-MAIN-2023-14"])        # a new crawl appears
        listed = subprocess.run([sys.executable, "-m", "refinedweb", "crawls", "--collinfo", f"{server.url}collinfo.json"],
                                capture_output=True, text=True, cwd=REPO, timeout=120)
        assert listed.stdout.split() == ["CC-MAIN-2023-06", "CC-MAIN-2023-14"]      # oldest first
        second = incremental(server.url, out)
        assert second.returncode == 0, second.stderr[-3000:]
        assert "1 crawl(s) to process: CC-MAIN-2023-14" in second.stderr
        again = incremental(server.url, out)
        assert "0 crawl(s) to process" in again.stderr

    assert (old / "dedup" / ".refinedweb/manifest.json").stat().st_mtime_ns == stamp     # the first crawl was not redone
    new = out / "CC-MAIN-2023-14"
    first_manifest, new_manifest = check_manifest(old / "dedup"), check_manifest(new / "dedup")
    stats = json.loads((new / "dedup" / ".refinedweb/stats.json").read_text())
    # dolma_sample-0000 is in both crawls: its URLs, kept in the first, are dropped from the second
    seen = stats["methods"]["url"]["seen_in_earlier_runs"]
    assert seen > 0
    old_urls = set(ds.dataset(str(old / "dedup"), format="parquet").to_table().column("url").to_pylist())
    new_urls = set(ds.dataset(str(new / "dedup"), format="parquet").to_table().column("url").to_pylist())
    assert not old_urls & new_urls
    assert first_manifest["totals"]["rows"] > 0 and new_manifest["totals"]["rows"] > 0
    records = [json.loads(p.read_text()) for p in sorted((out / "_url_seen" / "runs").glob("*.json"))]
    assert [r["urls"] for r in records] == [len(old_urls), len(new_urls)]      # one contribution per crawl
