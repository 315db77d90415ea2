"""The same code on a real two-node Ray cluster, started as Ray's docs start one: a plain `ray start --head`
on a machine that has a token in ~/.ray/auth_token (so Ray turns token authentication on), and a second
node joining with `RAY_AUTH_MODE=token ray start --address …` (its own temp dir, as a second machine
would have). Jobs go in through `refinedweb submit` with the default runtime env (upload + pip), from a
shell with no RAY_* variables; a lost node is a worker raylet killed with SIGKILL mid-run."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from .conftest import REPO, SAMPLES
from .procs import processes, stat
from .servers import free_port

# alone: its nodes' agents take Ray's default ports, so an embedded Ray started beside it (another test process)
# left the head without a job agent ('No available agent to submit job', tried 2026-12-07)
pytestmark = pytest.mark.serial

RAY = str(Path(sys.executable).parent / "ray")
CLI = [sys.executable, "-m", "refinedweb"]
SETS = ["--set", "url_filter.blocklist=[package:demo_blocklist.txt]", "--set", "dedup.parts=4",
        "--set", "output.shard_max_rows=20"]


@dataclass
class Cluster:
    env: dict[str, str]        # a user's shell: HOME with the token file, no RAY_* variables
    api: str                   # the Jobs API (dashboard) address
    gcs: str                   # what RAY_ADDRESS holds inside a job
    temp: str                  # the head's temp dir; the workers' are temp + "-w1", "-w2", …

    def admin(self) -> dict[str, str]:
        return {**self.env, "RAY_AUTH_MODE": "token"}

    workers: int = 0

    def start_worker(self) -> None:
        """A new worker node (each with a temp dir of its own, like a replacement machine)."""
        self.workers += 1
        subprocess.run([RAY, "start", f"--address={self.gcs}", f"--temp-dir={self.worker_temp}", "--num-cpus", "1",
                        "--disable-usage-stats"], env=self.admin(), check=True, capture_output=True, timeout=180)

    @property
    def worker_temp(self) -> str:
        return f"{self.temp}-w{self.workers}"

    def wait_for_nodes(self, count: int) -> None:
        deadline = time.time() + 120
        status = ""
        while time.time() < deadline:
            status = subprocess.run([RAY, "status", "--address", self.gcs], env=self.admin(), capture_output=True,
                                    text=True, timeout=60).stdout
            active = status.split("Pending:")[0]
            if active.count(" node_") == count and "Pending:\n (no pending nodes)" in status:
                return
            time.sleep(1)
        pytest.fail(f"the cluster did not reach {count} node(s):\n{status}")

    def worker_raylet(self) -> int:
        return next(pid for pid, cmd in processes() if "raylet/raylet" in cmd and f"--temp_dir={self.worker_temp} " in cmd)


def parent_of(pid: int) -> int:
    fields = stat(pid)
    return int(fields[1]) if fields else -1


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not os.path.exists(RAY):
        pytest.skip("the ray CLI is not installed beside this Python")
    home = tmp_path_factory.mktemp("home")
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))    # as `ray get-auth-token --generate` leaves it
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update({"HOME": str(home), "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
                # a job's entrypoint runs `python -m refinedweb` on the head: this venv's python first
                "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"})
    port, dashboard = free_port(), free_port()
    # temp dirs of its own: teardown stops this cluster's processes only, never a user's own Ray
    temp = f"/tmp/rwt-{secrets.token_hex(3)}"
    found = Cluster(env=env, api=f"http://127.0.0.1:{dashboard}", gcs=f"127.0.0.1:{port}", temp=temp)
    try:
        subprocess.run([RAY, "start", "--head", f"--port={port}", "--include-dashboard=true",
                        "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}", f"--temp-dir={temp}",
                        "--num-cpus", "1", "--disable-usage-stats"],
                       env=env, check=True, capture_output=True, timeout=180)
        found.start_worker()
        found.wait_for_nodes(2)
        yield found
    finally:
        stop_processes_of(temp)
        for folder in Path("/tmp").glob(f"{Path(temp).name}*"):
            shutil.rmtree(folder, ignore_errors=True)


def stop_processes_of(marker: str) -> None:
    """SIGTERM, then SIGKILL, every process whose command line mentions `marker` (this cluster's dirs) and
    all their descendants (agents and workers rename themselves `ray::…` and lose the marker)."""
    def matching() -> list[int]:
        marked = set()
        parents = {}
        zombies = set()
        for pid, cmd in processes():
            fields = stat(pid)
            if fields is None:
                continue
            state, parent = fields[:2]
            parents[pid] = int(parent)
            if state == "Z":                  # cannot be killed, only reaped (a container's PID 1 may never do it)
                zombies.add(pid)
            elif marker in cmd:
                marked.add(pid)
        found, grew = set(marked), True
        while grew:
            children = {pid for pid, parent in parents.items() if parent in found} - found
            grew = bool(children)
            found |= children
        return sorted(found - zombies)

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in matching():
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        # Ray's daemons take over 5 s to act on SIGTERM here; what outlives a second is killed anyway
        deadline = time.time() + (1 if sig == signal.SIGTERM else 15)
        while matching() and time.time() < deadline:
            time.sleep(0.3)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> list[str]:
    """The six bundled samples and second copies of three: enough work that both nodes get some."""
    folder = tmp_path_factory.mktemp("inputs")
    samples = sorted(SAMPLES.glob("*.warc.gz"))
    for path in samples:
        (folder / path.name).symlink_to(path)
    for path in samples[:3]:
        (folder / f"copy-{path.name}").symlink_to(path)
    return sorted(str(p) for p in folder.iterdir())


@pytest.fixture(scope="module")
def embedded(inputs, tmp_path_factory) -> Path:
    """The reference: the same command with embedded Ray, outside any cluster."""
    out = tmp_path_factory.mktemp("embedded") / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    result = subprocess.run([*CLI, "run", "--workers", "2", "--input", *inputs, "--output", str(out), *SETS,
                             "--progress", "off"], env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(embedded)" in result.stderr
    return out


def rows(folder: Path) -> Counter:
    """Every document of a stage folder, with all its columns (a Counter: a document written twice counts 2)."""
    table = ds.dataset(str(folder), format="parquet").to_table()
    return Counter(json.dumps(r, sort_keys=True, default=str) for r in table.to_pylist())


def stats(folder: Path) -> dict:
    return json.loads((folder / ".refinedweb" / "stats.json").read_text())


def test_submit_with_the_default_runtime_env_runs_on_both_nodes_like_embedded(cluster, inputs, embedded, tmp_path):
    out = tmp_path / "job"
    submitted = subprocess.run([*CLI, "submit", "--address", cluster.api, "--wait", "--", "run", "--input", *inputs,
                                "--output", str(out), *SETS, "--progress", "plain"],
                               env=cluster.env, capture_output=True, text=True, timeout=900, cwd=REPO)
    job_id = submitted.stdout.strip()
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    assert job_id.startswith("raysubmit_") and f"{job_id}: SUCCEEDED" in submitted.stderr
    logs = subprocess.run([*CLI, "logs", job_id, "--address", cluster.api], env=cluster.env, capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert logs.returncode == 0
    # the job's driver joined the cluster it was submitted to (RAY_ADDRESS, set by Ray) with both nodes' CPUs
    assert "[filter] Ray: 2 worker slot(s) on the cluster at" in logs.stdout and "(RAY_ADDRESS)" in logs.stdout
    nodes = set(stats(out / "filtered")["worker_nodes"]) | set(stats(out / "dedup")["worker_nodes"])
    assert len(nodes) == 2, nodes                             # tasks really ran on both nodes
    for stage in ("filtered", "dedup"):
        assert rows(out / stage) == rows(embedded / stage), stage
    status = subprocess.run([*CLI, "status", job_id, "--address", cluster.api], env=cluster.env,
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert status.returncode == 0 and f"{job_id}: SUCCEEDED" in status.stdout
    missing = subprocess.run([*CLI, "status", "raysubmit_nope", "--address", cluster.api], env=cluster.env,
                             capture_output=True, text=True, timeout=120, cwd=REPO)
    assert missing.returncode == 2 and "no such job" in missing.stderr


def test_a_pipeline_script_submitted_as_the_cronjob_does_runs_on_the_cluster(cluster, inputs, embedded, tmp_path):
    """pipelines/k8s/cronjob-incremental.yaml's shape: `submit --no-install --wait -- bash pipelines/….sh`;
    the script's `$REFINEDWEB run` joins the cluster with no --ray-address."""
    out = tmp_path / "script"
    submitted = subprocess.run([*CLI, "submit", "--address", cluster.api, "--no-install", "--wait", "--", "bash",
                                "pipelines/filter_warcs.sh", str(Path(inputs[0]).parent), str(out), *SETS,
                                "--progress", "plain"],
                               env=cluster.env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    logs = subprocess.run([*CLI, "logs", submitted.stdout.strip(), "--address", cluster.api], env=cluster.env,
                          capture_output=True, text=True, timeout=120, cwd=REPO).stdout
    assert "(RAY_ADDRESS)" in logs, logs[-2000:]
    assert rows(out / "filtered") == rows(embedded / "filtered")


def test_an_authentication_failure_names_the_token_tried_and_how_to_provide_one(cluster, tmp_path):
    def status(**env: str) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, "status", "raysubmit_nope", "--address", cluster.api],
                              env={**cluster.env, **env}, capture_output=True, text=True, timeout=120, cwd=REPO)

    tokenless = status(HOME=str(tmp_path))
    assert tokenless.returncode == 2 and tokenless.stderr.count("\n") == 1, tokenless.stderr
    assert "no token (none in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)" in tokenless.stderr
    assert "ray get-auth-token" in tokenless.stderr
    wrong = status(HOME=str(tmp_path), RAY_AUTH_TOKEN="not-the-token")
    assert wrong.returncode == 2 and "the token from RAY_AUTH_TOKEN" in wrong.stderr
    assert "not-the-token" not in wrong.stderr                  # a token never appears in a message
    token = (Path(cluster.env["HOME"]) / ".ray" / "auth_token").read_text()
    right = status(HOME=str(tmp_path), RAY_AUTH_TOKEN=token)
    assert right.returncode == 2 and "no such job" in right.stderr     # authenticated: the job is what is missing


def test_jobs_api_of_a_head_without_authentication(tmp_path):
    """`ray start --head` on a machine without a token: auth off; status works, with or without a stale token."""
    if not os.path.exists(RAY):
        pytest.skip("the ray CLI is not installed beside this Python")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["HOME"] = str(tmp_path)
    port, dashboard = free_port(), free_port()
    temp = f"/tmp/rwt-{secrets.token_hex(3)}"
    try:
        subprocess.run([RAY, "start", "--head", f"--port={port}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                        f"--dashboard-port={dashboard}", f"--temp-dir={temp}", "--num-cpus", "1", "--disable-usage-stats"],
                       env=env, check=True, capture_output=True, timeout=180)
        for extra in ({}, {"RAY_AUTH_TOKEN": "a-token-of-another-cluster"}):
            result = subprocess.run([*CLI, "status", "raysubmit_nope", "--address", f"http://127.0.0.1:{dashboard}"],
                                    env={**env, **extra}, capture_output=True, text=True, timeout=120, cwd=REPO)
            assert result.returncode == 2 and "no such job" in result.stderr, result.stderr
    finally:
        stop_processes_of(temp)
        shutil.rmtree(temp, ignore_errors=True)


def kill_worker_node_mid_task(cluster: Cluster, command: list[str], env: dict[str, str], task: str,
                              log: Path) -> int:
    """Run `command`; once a task named `task` runs on the worker node, SIGKILL that node's raylet (its
    workers go with it). Returns the command's exit code."""
    raylet = cluster.worker_raylet()
    killed = False
    with open(log, "w") as fh:
        proc = subprocess.Popen(command, env=env, stdout=fh, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        try:
            deadline = time.time() + 300
            while not killed and proc.poll() is None and time.time() < deadline:
                if any(cmd.startswith(f"ray::{task}") and parent_of(pid) == raylet for pid, cmd in processes()):
                    os.kill(raylet, signal.SIGKILL)
                    killed = True
                time.sleep(0.02)
            code = proc.wait(timeout=600)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    assert killed, f"no {task} task was seen on the worker node:\n{log.read_text()[-2000:]}"
    return code


def test_a_lost_node_during_filter_and_during_dedup(cluster, inputs, embedded, tmp_path):
    """The worker node dies while its tasks run, once in the filter stage and once in dedup: Ray retries
    them on the surviving node and each run finishes with exactly the uninterrupted output, no document
    twice (a run Ray could not rescue would say to re-run; the re-run is then exact, tested in
    test_resume.py). The run is started as in a job: RAY_ADDRESS set, no --ray-address."""
    out = tmp_path / "out"
    env = {**cluster.admin(), "RAY_ADDRESS": cluster.gcs}
    try:
        code = kill_worker_node_mid_task(cluster, [*CLI, "run", "--stage", "filter", "--input", *inputs, "--output",
                                                   str(out), *SETS, "--progress", "plain"], env, "_filter_task",
                                         tmp_path / "filter.log")
        assert code == 0, (tmp_path / "filter.log").read_text()[-3000:]
        assert "on the cluster at" in (tmp_path / "filter.log").read_text()
        assert rows(out / "filtered") == rows(embedded / "filtered")
        assert stats(out / "filtered")["totals"]["reconciled"]
        cluster.start_worker()          # a replacement node; the dead one is noticed by Ray in its own time
        code = kill_worker_node_mid_task(cluster, [*CLI, "run", "--stage", "dedup", "--input", str(out / "filtered"),
                                                   "--output", str(out), *SETS, "--progress", "plain"], env, "_call",
                                         tmp_path / "dedup.log")
        assert code == 0, (tmp_path / "dedup.log").read_text()[-3000:]
        assert rows(out / "dedup") == rows(embedded / "dedup")
        assert max(rows(out / "dedup").values()) == 1
    finally:
        if not any("raylet/raylet" in cmd and f"--temp_dir={cluster.worker_temp} " in cmd for _, cmd in processes()):
            cluster.start_worker()
