"""Reading a WARC locally vs through a loopback HTTP server vs through an S3 endpoint (moto server):
raw MB/s of our resumable stream, and the filter stage's docs/s over each.

    .venv/bin/python benchmarks/fetch_speed.py [--pages 500]

Both servers run on 127.0.0.1 in this process (tests/servers.py), so the numbers show our client's
overhead, not a real network's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import boto3  # noqa: E402

from refinedweb.config import load_config  # noqa: E402
from refinedweb.io.inputs import open_input  # noqa: E402
from refinedweb.io.remote import FetchConfig  # noqa: E402
from refinedweb.runtime.filter_pass import Pipeline, filter_file  # noqa: E402
from refinedweb.stages.blocklist import load_blocklist  # noqa: E402
from tests.servers import FlakyFileServer, moto_s3  # noqa: E402


def read_mb_per_s(uri: str, fetch: FetchConfig, size: int, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        with open_input(uri, fetch) as fh:
            while fh.read(1 << 20):
                pass
        best = min(best, time.perf_counter() - start)
    return round(size / best / 1e6, 1)


def filter_docs_per_s(uri: str, cfg: dict, stages: Pipeline) -> dict:
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = filter_file(uri, cfg, out, stages)
        seconds = time.perf_counter() - start
    assert result["status"] == "ok", result["error"]
    return {"records": result["records"], "seconds": round(seconds, 2),
            "records_per_second": round(result["records"] / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pages", type=int, default=500)
    args = parser.parse_args()
    warc = HERE / "data" / f"bench-{args.pages}.warc.gz"
    if not warc.exists():
        subprocess.run([sys.executable, str(HERE / "build_bench_warc.py"), "--out", str(warc), "--pages",
                        str(args.pages)], check=True, capture_output=True)
    size = warc.stat().st_size
    cfg = load_config(overrides=["fetch.start_jitter_seconds=0", "url_filter.blocklist=[package:demo_blocklist.txt]"])
    fetch = FetchConfig.from_config(cfg)
    stages = Pipeline.build(cfg, load_blocklist(cfg["url_filter"]["blocklist"]))
    report = {"warc_bytes": size, "read_mb_per_s": {}, "filter": {}}
    with FlakyFileServer(warc.parent) as http, moto_s3() as endpoint:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="bench")
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").upload_file(str(warc), "bench", warc.name)
        uris = {"local": str(warc), "http (loopback)": http.url + warc.name, "s3 (moto, loopback)": f"s3://bench/{warc.name}"}
        for name, uri in uris.items():
            report["read_mb_per_s"][name] = read_mb_per_s(uri, fetch, size)
        for name, uri in uris.items():
            report["filter"][name] = filter_docs_per_s(uri, cfg, stages)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
