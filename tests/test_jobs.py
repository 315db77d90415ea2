"""`refinedweb submit/status/logs`: what is sent to the Ray Jobs API, and one-line errors (a live
submission to a real head is in tests/test_cluster.py)."""

from __future__ import annotations

import subprocess
import sys

from refinedweb.io.remote import scrub
from refinedweb.runtime.jobs import entrypoint, runtime_env

from .conftest import REPO


def test_entrypoint_for_subcommands_and_scripts():
    assert entrypoint(["run", "--input", "cc:CC-MAIN-2023-06", "--output", "s3://b/x y"]) == \
        "python -m refinedweb run --input cc:CC-MAIN-2023-06 --output 's3://b/x y'"
    assert entrypoint(["bash", "pipelines/incremental.sh", "s3://b/rw"]) == "bash pipelines/incremental.sh s3://b/rw"


def test_runtime_env_uploads_and_installs_unless_the_image_has_it():
    full = runtime_env(install=True)
    assert full["working_dir"] == str(REPO) and ".venv*" in full["excludes"]
    assert any(dep.startswith("trafilatura") for dep in full["pip"])
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
