"""The same code on a real multi-node Ray cluster: `ray start --head` plus a second node on this machine
(token authentication on, as Ray enables it), started and stopped by the test; `--ray-address auto`."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from .conftest import REPO, SAMPLES
from .servers import free_port

RAY = str(Path(sys.executable).parent / "ray")
SETS = ["--set", "url_filter.blocklist=[package:demo_blocklist.txt]", "--set", "dedup.parts=2"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not os.path.exists(RAY):
        pytest.skip("the ray CLI is not installed beside this Python")
    port, dashboard = free_port(), free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
           # a job's entrypoint runs `python -m refinedweb` on the head: this venv's python first
           "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    # a temp dir of its own: teardown stops this cluster's processes only, never a user's own Ray
    temp_dir = f"/tmp/rwt-{secrets.token_hex(3)}"
    common = ["--num-cpus", "1", "--disable-usage-stats"]
    try:
        subprocess.run([RAY, "start", "--head", f"--port={port}", "--include-dashboard=true",
                        "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", f"--temp-dir={temp_dir}", *common],
                       env=env, check=True, capture_output=True, timeout=180)
        subprocess.run([RAY, "start", f"--address=127.0.0.1:{port}", *common], env=env, check=True,
                       capture_output=True, timeout=180)
        deadline = time.time() + 120
        while time.time() < deadline:
            status = subprocess.run([RAY, "status", "--address", f"127.0.0.1:{port}"], env=env, capture_output=True,
                                    text=True, timeout=60).stdout
            if status.count(" node_") >= 2 and "Pending:\n (no pending nodes)" in status:
                break
            time.sleep(1)
        else:
            pytest.fail(f"the second node did not join:\n{status}")
        yield {**env, "JOBS_API": f"http://127.0.0.1:{dashboard}"}
    finally:
        stop_processes_of(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def stop_processes_of(marker: str) -> None:
    """SIGTERM, then SIGKILL, every process whose command line mentions `marker` (this cluster's dir) and
    all their descendants (agents and workers rename themselves `ray::…` and lose the marker)."""
    import signal

    def matching() -> list[int]:
        parents, marked = {}, set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
                if " Z " in stat[stat.rfind(")"):stat.rfind(")") + 4]:
                    continue                                   # zombies cannot be killed, only reaped
                if marker in (entry / "cmdline").read_bytes().decode("utf-8", "replace"):
                    marked.add(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
        found, grew = set(marked), True
        while grew:
            children = {pid for pid, parent in parents.items() if parent in found} - found
            grew = bool(children)
            found |= children
        return sorted(found)

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in matching():
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.time() + (5 if sig == signal.SIGTERM else 15)
        while matching() and time.time() < deadline:
            time.sleep(0.3)


def test_run_on_a_two_node_cluster_equals_the_embedded_run(cluster, tmp_path):
    inputs = [str(SAMPLES / n) for n in ("dolma_sample-0000.warc.gz", "dolma_sample-0001.warc.gz",
                                          "resiliparse_warcfile.warc.gz", "cc_whirlwind_whirlwind.warc.gz")]
    on_cluster = subprocess.run([sys.executable, "-m", "refinedweb", "run", "--ray-address", "auto", "--input", *inputs,
                                 "--output", str(tmp_path / "cluster"), *SETS, "--progress", "off"],
                                env=cluster, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert on_cluster.returncode == 0, on_cluster.stderr[-3000:]
    assert "Ray: 2 worker slot(s) on auto" in on_cluster.stderr
    assert "[filter] files" not in on_cluster.stderr                 # --progress off
    stats = json.loads((tmp_path / "cluster" / "filtered" / "_stats.json").read_text())
    assert stats["totals"]["reconciled"] and stats["totals"]["files_failed"] == 0
    nodes = {f["worker_node"] for f in stats["files"]}
    assert len(nodes) == 2, nodes                       # the tasks really ran on both nodes
    embedded_env = {k: v for k, v in cluster.items() if not k.startswith("RAY_AUTH")}
    embedded = subprocess.run([sys.executable, "-m", "refinedweb", "run", "--workers", "2", "--input", *inputs,
                               "--output", str(tmp_path / "embedded"), *SETS, "--progress", "off"],
                              env={**embedded_env, "RAY_ADDRESS": ""}, capture_output=True, text=True, timeout=600,
                              cwd=REPO)
    assert embedded.returncode == 0, embedded.stderr[-3000:]
    for stage in ("filtered", "dedup"):
        a = ds.dataset(str(tmp_path / "cluster" / stage), format="parquet").to_table().sort_by("id")
        b = ds.dataset(str(tmp_path / "embedded" / stage), format="parquet").to_table().sort_by("id")
        assert a.equals(b), stage


def test_submit_status_and_logs_through_the_jobs_api(cluster, tmp_path):
    api = cluster["JOBS_API"]
    out = tmp_path / "job"
    submitted = subprocess.run([sys.executable, "-m", "refinedweb", "submit", "--address", api, "--no-install", "--wait",
                                "--", "run", "--stage", "filter", "--input", str(SAMPLES / "dolma_sample-0000.warc.gz"),
                                "--output", str(out), *SETS, "--progress", "plain"],
                               env=cluster, capture_output=True, text=True, timeout=600, cwd=REPO)
    job_id = submitted.stdout.strip()
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    assert job_id.startswith("raysubmit_") and f"{job_id}: SUCCEEDED" in submitted.stderr
    status = subprocess.run([sys.executable, "-m", "refinedweb", "status", job_id, "--address", api], env=cluster,
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert status.returncode == 0 and f"{job_id}: SUCCEEDED" in status.stdout
    logs = subprocess.run([sys.executable, "-m", "refinedweb", "logs", job_id, "--address", api], env=cluster,
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert logs.returncode == 0 and "reconciled" in logs.stdout and "[filter] files 1/1" in logs.stdout
    stats = json.loads((out / "filtered" / "_stats.json").read_text())
    assert stats["totals"]["reconciled"] and stats["totals"]["kept"] > 0
    missing = subprocess.run([sys.executable, "-m", "refinedweb", "status", "raysubmit_nope", "--address", api],
                             env=cluster, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert missing.returncode == 2 and "no such job" in missing.stderr
