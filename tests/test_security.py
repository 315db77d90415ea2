"""Security: planted secrets never reach logs, stats, markers or error messages; nothing in the data or
in input names steers where files are written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from refinedweb.io.remote import redact, scrub
from refinedweb.io.storage import LocalStorage, safe_name
from refinedweb.runtime.filter_pass import shard_prefix
from refinedweb.runtime.run_state import marker_path

from .conftest import REPO, SAMPLES
from .servers import FlakyFileServer, moto_s3

SECRETS = {"aws": "PLANTED-aws-secret-7c1e9b", "userinfo": "PLANTED-password-55ab", "signature": "PLANTED-sig-e0d2",
           "token": "PLANTED-token-91f3"}


def test_scrub_redacts_urls_inside_third_party_messages(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRETS["aws"])
    message = (f"404 Client Error: Not Found for url: https://bob:{SECRETS['userinfo']}@host.example/a.warc.gz"
               f"?X-Amz-Signature={SECRETS['signature']}&x-amz-security-token={SECRETS['token']} "
               f"(signing with {SECRETS['aws']})")
    cleaned = scrub(message)
    assert not any(secret in cleaned for secret in SECRETS.values())
    assert "https://host.example/a.warc.gz" in cleaned
    assert redact("http://[::1/x?sig=s") == "http://<unparsable>"


def test_planted_secrets_reach_no_log_stat_marker_or_error(tmp_path):
    """HTTP inputs with a password and presigned-style query strings (one of them a 404), output to S3 with
    a planted AWS secret: nothing a user or a log collector sees holds any of the secrets."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "a.warc.gz").write_bytes((SAMPLES / "dolma_sample-0000.warc.gz").read_bytes())
    query = f"?X-Amz-Signature={SECRETS['signature']}&X-Amz-Security-Token={SECRETS['token']}"
    with moto_s3(), FlakyFileServer(root, fail_rate=0.3, seed=3) as server:
        os.environ["AWS_SECRET_ACCESS_KEY"] = SECRETS["aws"]       # restored by moto_s3 on exit
        client = boto3.client("s3")
        client.create_bucket(Bucket="rw-secure")
        host = server.url.split("://", 1)[1]
        inputs = [f"http://bob:{SECRETS['userinfo']}@{host}a.warc.gz{query}",
                  f"http://bob:{SECRETS['userinfo']}@{host}missing.warc.gz{query}"]
        result = subprocess.run(
            [sys.executable, "-m", "refinedweb", "run", "--workers", "1", "--input", *inputs,
             "--output", "s3://rw-secure/run/", "--set", "url_filter.blocklist=[package:demo_blocklist.txt]",
             "--set", "fetch.start_jitter_seconds=0", "--set", "fetch.backoff_initial_seconds=0.01",
             "--set", "fetch.backoff_max_seconds=0.02", "--set", "fetch.max_attempts=3"],
            capture_output=True, text=True, timeout=600, cwd=REPO, env=dict(os.environ))
        objects = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket="rw-secure"):
            for item in page.get("Contents", []):
                objects[item["Key"]] = client.get_object(Bucket="rw-secure", Key=item["Key"])["Body"].read()
    assert result.returncode == 1, result.stderr[-3000:]          # the 404 failed, the other file was processed
    assert "missing.warc.gz" in result.stderr and "HTTP 404" in result.stderr
    assert any(key.startswith("run/filtered/.refinedweb/done/") for key in objects)
    assert any(key.endswith(".parquet") for key in objects)
    texts = {"stdout": result.stdout, "stderr": result.stderr, **{k: v.decode("latin-1") for k, v in objects.items()}}
    for where, text in texts.items():
        for name, secret in SECRETS.items():
            assert secret not in text, f"{name} secret found in {where}"
            assert secret not in where, f"{name} secret in an object name"


@pytest.mark.parametrize("uri", [
    "http://host.example/../../../etc/cron.d/x.warc.gz",
    "s3://bucket/a/..%2F..%2Fescape.warc.gz",
    "/data/" + "a" * 500 + ".warc.gz",
    "https://host.example/dir/?file=../../x.warc.gz",
    "https://host.example/.hidden.warc.gz",
])
def test_output_names_from_input_names_are_sanitised(uri, tmp_path):
    prefix = shard_prefix(uri)
    # one path component: no separator, never "." or "..", not hidden, bounded length
    assert "/" not in prefix and "\\" not in prefix and not prefix.startswith(".") and len(prefix) <= 71
    storage = LocalStorage(str(tmp_path))
    for relpath in (f"filtered/{prefix}-00000.parquet", marker_path("filtered", prefix)):
        assert Path(storage.local_path(relpath)).resolve().is_relative_to(tmp_path.resolve())


def test_storage_refuses_paths_outside_the_root(tmp_path):
    storage = LocalStorage(str(tmp_path / "out"))
    for bad in ("../x.parquet", "filtered/../../x", "/etc/passwd"):
        with pytest.raises(ValueError):
            storage.temp_path(bad)
    for hostile in ("../../etc/passwd", "..", ".", "lang=../x", "a/b\\c", "\0x", ""):
        name = safe_name(hostile)
        assert name not in ("", ".", "..") and "/" not in name and "\\" not in name and "\0" not in name
        assert (tmp_path / "out" / name).resolve().parent == (tmp_path / "out").resolve()
