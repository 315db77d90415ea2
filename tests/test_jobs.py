"""`refinedweb submit/status/logs`: what is sent to the Ray Jobs API, and one-line errors (a live
submission to a real head is in tests/test_cluster.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from refinedweb.errors import UserError
from refinedweb.io.remote import scrub
from refinedweb.runtime.jobs import api_address, entrypoint, runtime_env
from refinedweb.runtime.ray_auth import auth_headers
from refinedweb.runtime.ray_runner import cluster_address

from .conftest import REPO


def test_entrypoint_for_subcommands_and_scripts():
    assert entrypoint(["run", "--input", "cc:CC-MAIN-2023-06", "--output", "s3://b/x y"]) == \
        "python -m refinedweb run --input cc:CC-MAIN-2023-06 --output 's3://b/x y'"
    assert entrypoint(["bash", "pipelines/incremental.sh", "s3://b/rw"]) == "bash pipelines/incremental.sh s3://b/rw"


def test_runtime_env_uploads_and_installs_unless_the_image_has_it():
    full = runtime_env(install=True)
    assert full["working_dir"] == str(REPO) and ".venv*" in full["excludes"]
    assert any(dep.startswith("trafilatura") for dep in full["pip"])
    assert not any(dep.startswith("ray") for dep in full["pip"])        # the nodes keep the cluster's own Ray
    bare = runtime_env(install=False)
    assert "working_dir" not in bare and "pip" not in bare
    assert bare["env_vars"]["REFINEDWEB"] == "python -m refinedweb"     # what pipelines/*.sh call


def test_unreachable_head_is_a_one_line_error():
    for args in (["status", "raysubmit_x"], ["logs", "raysubmit_x"], ["submit", "--", "stats", "out"]):
        result = subprocess.run([sys.executable, "-m", "refinedweb", *args, "--address", "http://127.0.0.1:9"]
                                if args[0] != "submit" else
                                [sys.executable, "-m", "refinedweb", "submit", "--address", "http://127.0.0.1:9", *args[1:]],
                                capture_output=True, text=True, timeout=120, cwd=REPO)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and "http://127.0.0.1:9" in result.stderr


def test_scrub_keeps_punctuation_after_urls():
    assert scrub("at http://user:pw@127.0.0.1:8265: refused") == "at http://127.0.0.1:8265: refused"


def test_run_joins_the_cluster_of_ray_address_unless_told_local():
    assert cluster_address(None, {}) is None                                   # embedded
    assert cluster_address(None, {"RAY_ADDRESS": ""}) is None
    assert cluster_address(None, {"RAY_ADDRESS": "10.0.0.1:6379"}) == "10.0.0.1:6379"   # inside a Ray job
    assert cluster_address("auto", {}) == "auto"
    assert cluster_address("local", {"RAY_ADDRESS": "10.0.0.1:6379"}) is None  # --ray-address local wins
    with pytest.raises(UserError, match="Jobs API .*refinedweb submit --address http://h:8265"):
        cluster_address(None, {"RAY_ADDRESS": "http://h:8265"})


def test_jobs_api_address_as_the_ray_job_cli_finds_it():
    assert api_address(None, {}) == "http://127.0.0.1:8265"
    assert api_address(None, {"RAY_ADDRESS": "http://h:8265"}) == "http://h:8265"
    assert api_address(None, {"RAY_ADDRESS": "h:6379"}) == "http://127.0.0.1:8265"    # a GCS address is not the API
    assert api_address(None, {"RAY_API_SERVER_ADDRESS": "http://a:1", "RAY_ADDRESS": "http://h:8265"}) == "http://a:1"
    assert api_address("http://x:2", {"RAY_API_SERVER_ADDRESS": "http://a:1"}) == "http://x:2"


def test_token_sources_in_ray_order(tmp_path):
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    assert auth_headers({"HOME": str(home)}) == ({}, "no token (none in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or "
                                                     "~/.ray/auth_token)")
    (home / ".ray" / "auth_token").write_text("file-token\n")
    assert auth_headers({"HOME": str(home)}) == ({"Authorization": "Bearer file-token"},
                                                 "the token from ~/.ray/auth_token")
    named = tmp_path / "named"
    named.write_text("named-token")
    env = {"HOME": str(home), "RAY_AUTH_TOKEN_PATH": str(named)}
    assert auth_headers(env)[0] == {"Authorization": "Bearer named-token"}
    assert auth_headers({**env, "RAY_AUTH_TOKEN": "env-token"})[0] == {"Authorization": "Bearer env-token"}
    # a named file that cannot be read is an error in Ray, not a fall-back to ~/.ray/auth_token
    headers, sent = auth_headers({"HOME": str(home), "RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")})
    assert headers == {} and "unreadable" in sent
    assert auth_headers({"HOME": str(home), "RAY_AUTH_MODE": "disabled"}) == ({}, "no token (RAY_AUTH_MODE=disabled)")
    with pytest.raises(UserError, match="RAY_AUTH_MODE=token but no token"):
        auth_headers({"HOME": str(tmp_path), "RAY_AUTH_MODE": "token"})
