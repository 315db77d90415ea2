"""`refinedweb submit / status / logs`: batch jobs through the Ray Jobs API of a cluster's head node.

`submit -- run …` becomes the entrypoint `python -m refinedweb run …`; `submit -- bash pipelines/x.sh …`
runs the script as is (scripts call `$REFINEDWEB`, set to the same module call). The runtime environment
uploads this project as the working directory and installs its dependencies on the nodes, unless
`--no-install`: the nodes' image already has refinedweb (e.g. pipelines/k8s/Dockerfile).
"""

from __future__ import annotations

import shlex
import time
import tomllib
from pathlib import Path
from typing import Any

from ..errors import UserError

SUBCOMMANDS = {"run", "mix", "report", "stats", "crawls", "blocklist"}
PROJECT = Path(__file__).resolve().parents[2]
EXCLUDES = [".venv*", ".git", "output", "benchmarks/data", "benchmarks/results", "**/__pycache__", ".pytest_cache",
            "*.egg-info"]
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def client(address: str | None):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address or "http://127.0.0.1:8265")
    except Exception as exc:          # connection refused, bad address: a user's mistake
        raise UserError(f"cannot reach the Ray Jobs API at {address or 'http://127.0.0.1:8265'}: "
                        f"{type(exc).__name__}") from None


def entrypoint(command: list[str]) -> str:
    if not command:
        raise UserError("submit needs a command after --, e.g. refinedweb submit -- run --input … --output s3://…")
    if command[0] in SUBCOMMANDS:
        return "python -m refinedweb " + shlex.join(command)
    return shlex.join(command)


def runtime_env(install: bool) -> dict[str, Any]:
    """With `install`: upload this project as the working directory and pip-install its dependencies on the
    nodes. Without: the nodes' image has refinedweb (pipelines/k8s/Dockerfile); only env vars are set."""
    env: dict[str, Any] = {"env_vars": {"REFINEDWEB": "python -m refinedweb", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}}
    if install and (PROJECT / "pyproject.toml").exists():
        env["working_dir"] = str(PROJECT)
        env["excludes"] = EXCLUDES
        env["pip"] = list(tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["dependencies"])
    return env


def submit(address: str | None, command: list[str], install: bool = True, wait: bool = False,
           log=print) -> tuple[str, str | None]:
    jobs = client(address)
    deadline = time.time() + 120
    while True:
        try:
            job_id = jobs.submit_job(entrypoint=entrypoint(command), runtime_env=runtime_env(install))
            break
        except RuntimeError as exc:       # a head that has just started has no job agent for a few seconds
            if "No available agent" not in str(exc) or time.time() > deadline:
                raise UserError(f"the cluster refused the job: {str(exc).splitlines()[0][:200]}") from None
            time.sleep(2)
    log(f"submitted {job_id}: {entrypoint(command)}")
    if not wait:
        return job_id, None
    status = None
    while status not in TERMINAL:
        time.sleep(2)
        status = str(jobs.get_job_status(job_id)).split(".")[-1]
    return job_id, status


def status(address: str | None, job_id: str) -> dict[str, Any]:
    jobs = client(address)
    try:
        info = jobs.get_job_info(job_id)
    except Exception:
        raise UserError(f"no such job: {job_id}") from None
    return {"job_id": job_id, "status": str(info.status).split(".")[-1], "entrypoint": info.entrypoint,
            "message": info.message, "start_time": info.start_time, "end_time": info.end_time}


def logs(address: str | None, job_id: str) -> str:
    jobs = client(address)
    try:
        return jobs.get_job_logs(job_id)
    except Exception:
        raise UserError(f"no such job: {job_id}") from None
