"""Remote inputs and outputs against real servers on 127.0.0.1: a flaky HTTP file server and moto's
S3 server, with the real urllib3 / boto3 clients, and the CLI end to end."""

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from refinedweb.errors import UserError
from refinedweb.io.inputs import expand_inputs
from refinedweb.io.remote import (
    FetchConfig,
    FetchError,
    crawl_listing_uri,
    host_of,
    iter_listing,
    open_remote,
    read_remote_bytes,
    redact,
)

from .conftest import REPO, SAMPLES
from .servers import FlakyFileServer, moto_s3

FAST = FetchConfig(backoff_initial_seconds=0.01, backoff_max_seconds=0.05, timeout_seconds=10, start_jitter_seconds=0)
CRAWL = "CC-MAIN-2099-01"
FILES = ["dolma_sample-0000.warc.gz", "dolma_sample-0001.warc.gz", "resiliparse_warcfile.warc.gz"]
FAST_SETS = ["--set", "fetch.start_jitter_seconds=0", "--set", "fetch.backoff_initial_seconds=0.01",
             "--set", "fetch.backoff_max_seconds=0.05", "--set", "url_filter.blocklist=[package:demo_blocklist.txt]"]


def crawl_layout(root: Path) -> Path:
    """CommonCrawl's layout: crawl-data/<id>/warc.paths.gz listing segments/…/warc/<file>."""
    lines = []
    for i, name in enumerate(FILES):
        rel = f"crawl-data/{CRAWL}/segments/{i}/warc/{name}"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLES / name, root / rel)
        lines.append(rel)
    (root / f"crawl-data/{CRAWL}/warc.paths.gz").write_bytes(gzip.compress("\n".join(lines).encode() + b"\n"))
    return root


def run_cli(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "refinedweb", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env={**os.environ, **(env or {})})


def rows_of(path_or_dataset):
    table = path_or_dataset.to_table() if hasattr(path_or_dataset, "to_table") else \
        ds.dataset(str(path_or_dataset), format="parquet", exclude_invalid_files=True).to_table()
    return sorted((r["id"], r["text"], r["token_count"]) for r in table.to_pylist())


# --- units ---------------------------------------------------------------------------------------

def test_backoff_honours_retry_after_and_bounds():
    cfg = FetchConfig(backoff_initial_seconds=1, backoff_max_seconds=10)
    assert cfg.backoff(0, retry_after=3.0) == 3.0
    assert cfg.backoff(0, retry_after=999) == 10
    assert all(0 <= cfg.backoff(a) <= min(10, 2 ** a) for a in range(8) for _ in range(20))


def test_redact_removes_credentials_and_signatures():
    assert redact("https://user:pa55@host.example:8443/a/b.warc.gz?X-Amz-Signature=abc&token=t") == \
        "https://host.example:8443/a/b.warc.gz"
    assert redact("/local/path.warc.gz") == "/local/path.warc.gz"


def test_listing_and_crawl_ids():
    assert list(iter_listing("a/b.warc.gz\n\n# c\ns3://x/y.warc.gz\n", "s3://commoncrawl")) == \
        ["s3://commoncrawl/a/b.warc.gz", "s3://x/y.warc.gz"]
    assert crawl_listing_uri("CC-MAIN-2023-06", "https://data.commoncrawl.org/") == \
        "https://data.commoncrawl.org/crawl-data/CC-MAIN-2023-06/warc.paths.gz"
    with pytest.raises(UserError, match="not a CommonCrawl crawl id"):
        crawl_listing_uri("2023-06", "https://x/")
    assert host_of("https://Data.CommonCrawl.org/a") == "data.commoncrawl.org"
    assert host_of("s3://bucket/key") == "s3:bucket" and host_of("/tmp/x") == ""


# --- HTTP ------------------------------------------------------------------------------------------

def test_http_stream_survives_503s_and_cuts_byte_exact(tmp_path):
    with FlakyFileServer(SAMPLES, fail_rate=0.25, cut_rate=0.1, seed=3, cut_first=True) as server:
        retries = resumes = 0
        for path in sorted(SAMPLES.glob("*.warc.gz")):
            with open_remote(server.url + path.name, FAST) as fh:
                assert fh.read() == path.read_bytes(), path.name
                retries += fh.raw.retries
                resumes += fh.raw.resumes
    assert server.events["503"] > 0 and server.events["cut"] > 0
    # every file's first response is cut half-way; when the client had received bytes before the cut it
    # resumes with a ranged GET (under heavy load the cut may surface before any byte: then it retries)
    assert resumes >= 1 and server.events["range"] >= resumes
    assert retries >= server.events["503"]


def test_http_404_is_final_and_exhausted_retries_fail(tmp_path):
    with FlakyFileServer(SAMPLES) as server:
        with pytest.raises(FetchError, match="HTTP 404"):
            read_remote_bytes(server.url + "nope.warc.gz", FAST)
    with FlakyFileServer(SAMPLES, fail_rate=1.0) as server:
        cfg = FetchConfig(max_attempts=3, backoff_initial_seconds=0.01, backoff_max_seconds=0.01)
        with pytest.raises(FetchError, match="after 3 attempts"):
            read_remote_bytes(server.url + FILES[0], cfg)
        # three attempts at most (one may end as a dropped keep-alive connection rather than a 503)
        assert 1 <= server.events["503"] <= server.events["requests"] <= 3


def test_expand_cc_crawl_over_http(tmp_path):
    crawl_layout(tmp_path)
    with FlakyFileServer(tmp_path) as server:
        files = expand_inputs([f"cc:{CRAWL}"], fetch=FetchConfig(base_uri=server.url))
        assert files == [f"{server.url}crawl-data/{CRAWL}/segments/{i}/warc/{n}" for i, n in enumerate(FILES)]
        sample = expand_inputs([f"cc:{CRAWL}"], fetch=FetchConfig(base_uri=server.url, sample=2, seed=1))
        assert len(sample) == 2 and set(sample) < set(files)
        assert sample == expand_inputs([f"cc:{CRAWL}"], fetch=FetchConfig(base_uri=server.url, sample=2, seed=1))
        assert expand_inputs([f"cc:{CRAWL}"], limit=1, fetch=FetchConfig(base_uri=server.url)) == files[:1]


# --- S3 (moto server) ------------------------------------------------------------------------------

@pytest.fixture
def s3():
    with moto_s3() as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        yield endpoint, client


def _upload_tree(client, bucket: str, root: Path) -> None:
    client.create_bucket(Bucket=bucket)
    for path in root.rglob("*"):
        if path.is_file():
            client.upload_file(str(path), bucket, str(path.relative_to(root)))


def test_s3_stream_glob_and_listing(s3, tmp_path):
    endpoint, client = s3
    _upload_tree(client, "crawl", crawl_layout(tmp_path))
    fetch = FetchConfig(base_uri="s3://crawl/")
    key = f"crawl-data/{CRAWL}/segments/1/warc/{FILES[1]}"
    assert read_remote_bytes(f"s3://crawl/{key}", fetch) == (SAMPLES / FILES[1]).read_bytes()
    assert expand_inputs([f"s3://crawl/crawl-data/{CRAWL}/segments/*/warc/*.warc.gz"], fetch=fetch) == \
        [f"s3://crawl/crawl-data/{CRAWL}/segments/{i}/warc/{n}" for i, n in enumerate(FILES)]
    assert expand_inputs([f"cc:{CRAWL}"], fetch=fetch) == \
        [f"s3://crawl/crawl-data/{CRAWL}/segments/{i}/warc/{n}" for i, n in enumerate(FILES)]
    with pytest.raises(FetchError, match="NoSuchKey"):
        read_remote_bytes("s3://crawl/missing.warc.gz", fetch)
    with pytest.raises(UserError, match="bucket does not exist"):
        expand_inputs(["s3://no-such-bucket/*.warc.gz"], fetch=fetch)


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    """The same three files processed from local disk: what every remote run must reproduce."""
    out = tmp_path_factory.mktemp("local")
    result = run_cli("run", "--stage", "filter", "--workers", "2", "--input", *[str(SAMPLES / f) for f in FILES],
                     "--output", str(out), *FAST_SETS)
    assert result.returncode == 0, result.stderr[-2000:]
    return rows_of(out / "filtered")


def test_cli_cc_crawl_from_s3_to_s3(s3, tmp_path, local_reference):
    endpoint, client = s3
    _upload_tree(client, "commoncrawl-test", crawl_layout(tmp_path / "crawl"))
    client.create_bucket(Bucket="rw-out")
    result = run_cli("run", "--stage", "filter", "--workers", "2", "--input", f"cc:{CRAWL}",
                     "--set", "fetch.base_uri=s3://commoncrawl-test/", "--output", "s3://rw-out/run1/", *FAST_SETS)
    assert result.returncode == 0, result.stderr[-3000:]
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="rw-out")["Contents"]]
    assert "run1/filtered/.refinedweb/stats.json" in keys
    assert not any(".tmp" in k for k in keys)
    fs = pafs.S3FileSystem(endpoint_override=endpoint, access_key="testing-key-id",
                           secret_key="testing-secret-key-SENSITIVE", region="us-east-1")
    dataset = ds.dataset("rw-out/run1/filtered", filesystem=fs, format="parquet", exclude_invalid_files=True)
    assert rows_of(dataset) == local_reference
    stats = json.loads(client.get_object(Bucket="rw-out", Key="run1/filtered/.refinedweb/stats.json")["Body"].read())
    assert stats["totals"]["reconciled"] and stats["totals"]["files"] == 3
    for text in (result.stdout, result.stderr, json.dumps(stats)):
        assert "testing-secret-key-SENSITIVE" not in text


def test_cli_output_bucket_missing_is_a_one_line_error(s3):
    result = run_cli("run", "--input", str(SAMPLES / FILES[0]), "--output", "s3://no-such-bucket/x/", *FAST_SETS)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["refinedweb: error: S3 bucket does not exist: no-such-bucket"]


def test_cli_missing_credentials_is_a_one_line_error(s3, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_ENDPOINT_URL": s3[0], "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true"})
    result = subprocess.run([sys.executable, "-m", "refinedweb", "run", "--input", "s3://any/*.warc.gz",
                             "--output", str(tmp_path / "o")], capture_output=True, text=True, cwd=REPO, env=env, timeout=120)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no AWS credentials" in lines[0]


# --- HTTP end to end ---------------------------------------------------------------------------------

def test_cli_flaky_http_equals_local_run(tmp_path, local_reference):
    crawl_layout(tmp_path / "crawl")
    with FlakyFileServer(tmp_path / "crawl", fail_rate=0.25, cut_rate=0.1, seed=7, cut_first=True) as server:
        result = run_cli("run", "--stage", "filter", "--workers", "2", "--input", f"cc:{CRAWL}",
                         "--set", f"fetch.base_uri={server.url}", "--output", str(tmp_path / "out"), *FAST_SETS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert rows_of(tmp_path / "out" / "filtered") == local_reference
    assert "retry" in result.stderr and "range resume" in result.stderr
    stats = json.loads((tmp_path / "out" / "filtered" / ".refinedweb/stats.json").read_text())
    notes = [f["notes"] for f in stats["files"]]
    assert sum(n.get("range_resumes", 0) for n in notes) >= 1
    assert sum(n.get("fetch_retries", 0) for n in notes) >= server.events["503"]


def test_cli_one_missing_file_of_three(tmp_path):
    crawl_layout(tmp_path / "crawl")
    missing = f"crawl-data/{CRAWL}/segments/1/warc/{FILES[1]}"
    with FlakyFileServer(tmp_path / "crawl", missing={missing}) as server:
        result = run_cli("run", "--stage", "filter", "--workers", "2", "--input", f"cc:{CRAWL}",
                         "--set", f"fetch.base_uri={server.url}", "--output", str(tmp_path / "out"), *FAST_SETS)
    assert result.returncode == 1
    assert "1 of 3 input file(s) failed" in result.stderr and missing in result.stderr and "HTTP 404" in result.stderr
    stats = json.loads((tmp_path / "out" / "filtered" / ".refinedweb/stats.json").read_text())
    assert [f["status"] for f in stats["files"]] == ["ok", "failed", "ok"]
    assert stats["totals"]["kept"] > 0


def test_s3_client_retries_slowdown_and_resumes_cut_bodies(tmp_path, monkeypatch):
    """The flaky server as an S3 endpoint (path-style GET /bucket/key): SlowDown 503s and cut bodies."""
    bucket = tmp_path / "bucket"
    bucket.mkdir()
    for name in FILES:
        shutil.copy(SAMPLES / name, bucket / name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    with FlakyFileServer(tmp_path, fail_rate=0.3, cut_rate=0.1, seed=11, cut_first=True) as server:
        cfg = FetchConfig(s3_endpoint_url=server.url.rstrip("/"), s3_region="us-east-1", backoff_initial_seconds=0.01,
                          backoff_max_seconds=0.05, timeout_seconds=10)
        retries = resumes = 0
        for name in FILES:
            with open_remote(f"s3://bucket/{name}", cfg) as fh:
                assert fh.read() == (SAMPLES / name).read_bytes()
                retries += fh.raw.retries
                resumes += fh.raw.resumes
    assert server.events["503"] > 0 and retries >= server.events["503"]
    assert resumes >= 1 and server.events["range"] >= resumes


def test_per_host_cap_schedules_other_hosts_first():
    from refinedweb.runtime.ray_runner import take_schedulable

    queue = [f"https://a.example/{i}" for i in range(5)] + ["s3://b/1", "/local/1", "https://c.example/1"]
    running: dict[str, int] = {}
    first = take_schedulable(queue, 0, 6, running, per_host=2)
    assert first == ["https://a.example/0", "https://a.example/1", "s3://b/1", "/local/1", "https://c.example/1"]
    assert running["a.example"] == 2
    running["a.example"] -= 1                       # one a.example task finished
    assert take_schedulable(queue, 4, 6, running, per_host=2) == ["https://a.example/2"]
    assert take_schedulable(queue, 5, 6, running, per_host=2) == []   # a.example at its cap again


def test_anonymous_s3_reads(s3, tmp_path):
    endpoint, client = s3
    client.create_bucket(Bucket="public")
    client.upload_file(str(SAMPLES / FILES[0]), "public", FILES[0])
    with pytest.raises(FetchError, match="AccessDenied|403"):   # private until made public: final, not retried
        read_remote_bytes(f"s3://public/{FILES[0]}", FetchConfig(s3_anonymous=True))
    client.put_object_acl(Bucket="public", Key=FILES[0], ACL="public-read")
    data = read_remote_bytes(f"s3://public/{FILES[0]}", FetchConfig(s3_anonymous=True))
    assert data == (SAMPLES / FILES[0]).read_bytes()


def test_cli_dedup_from_s3_to_s3(s3, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    endpoint, client = s3
    text = " ".join(f"word{i} alpha beta gamma delta" for i in range(120))
    rows = [{"id": "a", "url": "https://x.org/1", "text": text, "extra": 1},
            {"id": "b", "url": "https://x.org/2", "text": text, "extra": 2},          # exact duplicate of a
            {"id": "c", "url": "https://www.x.org/1/", "text": " ".join(f"other{i} words{i * 7}" for i in range(80)), "extra": 3}]  # URL of a
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "docs.parquet")
    client.create_bucket(Bucket="rw-in")
    client.create_bucket(Bucket="rw-dedup")
    client.upload_file(str(tmp_path / "docs.parquet"), "rw-in", "filtered/docs.parquet")
    result = run_cli("run", "--stage", "dedup", "--workers", "2", "--input", "s3://rw-in/filtered/*.parquet",
                     "--output", "s3://rw-dedup/run/", *FAST_SETS)
    assert result.returncode == 0, result.stderr[-3000:]
    fs = pafs.S3FileSystem(endpoint_override=endpoint, access_key="testing-key-id",
                           secret_key="testing-secret-key-SENSITIVE", region="us-east-1")
    table = ds.dataset("rw-dedup/run/dedup", filesystem=fs, format="parquet", exclude_invalid_files=True).to_table()
    assert table.column("id").to_pylist() == ["a"] and table.column("extra").to_pylist() == [1]
    stats = json.loads(client.get_object(Bucket="rw-dedup", Key="run/dedup/.refinedweb/stats.json")["Body"].read())
    assert stats["methods"]["minhash"]["docs_removed"] == 1 and stats["methods"]["url"]["docs_removed"] == 1
    # phase 4 ran on S3 too (the part's tail became a merged shard), the work folder is gone, and the
    # manifest answers `refinedweb stats` over S3
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="rw-dedup", Prefix="run/")["Contents"]]
    assert "run/dedup/merged/merged-00000-00000.parquet" in keys and not any("_work" in k for k in keys)
    summary = run_cli("stats", "s3://rw-dedup/run/", "--json")
    assert summary.returncode == 0, summary.stderr
    assert json.loads(summary.stdout)["dedup"]["rows"] == 1
