"""`refinedweb submit / status / logs`: batch jobs through the Ray Jobs API of a cluster's head node.

`submit -- run …` becomes the entrypoint `python -m refinedweb run …`; `submit -- bash pipelines/x.sh …`
runs the script as is (scripts call `$REFINEDWEB`, set to the same module call). The runtime environment
uploads this project as the working directory and installs its dependencies on the nodes, unless
`--no-install`: the nodes' image already has refinedweb (e.g. pipelines/k8s/Dockerfile).
"""

from __future__ import annotations

import os
import shlex
import time
import tomllib
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..io.remote import redact
from .ray_auth import auth_failure, auth_headers

SUBCOMMANDS = {"run", "mix", "report", "stats", "crawls", "blocklist"}
PROJECT = Path(__file__).resolve().parents[2]
EXCLUDES = [".venv*", ".git", "output", "benchmarks/data", "benchmarks/results", "**/__pycache__", ".pytest_cache",
            "*.egg-info"]
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


DEFAULT_API = "http://127.0.0.1:8265"


def api_address(address: str | None, environ: dict[str, str] | None = None) -> str:
    """As Ray's `ray job` CLI: --address, then RAY_API_SERVER_ADDRESS, then an http(s) RAY_ADDRESS."""
    env = os.environ if environ is None else environ
    if address:
        return address
    if env.get("RAY_API_SERVER_ADDRESS"):
        return env["RAY_API_SERVER_ADDRESS"]
    if env.get("RAY_ADDRESS", "").startswith(("http://", "https://")):
        return env["RAY_ADDRESS"]
    return DEFAULT_API


class Jobs:
    """The Ray Jobs API of one head, authenticated as Ray's own clients are (`ray_auth`); every failure a
    user can cause (no server, a refused token, an unknown job) becomes one line."""

    def __init__(self, address: str | None):
        from ray.job_submission import JobSubmissionClient

        self.address = api_address(address)
        self.where = f"the Ray Jobs API at {redact(self.address)}"
        headers, self.sent = auth_headers()
        self.client = self._call(lambda: JobSubmissionClient(self.address, headers=headers))

    def _call(self, request, job_id: str | None = None):
        from ray.exceptions import AuthenticationError

        try:
            return request()
        except AuthenticationError as exc:
            raise auth_failure(self.where, str(exc), self.sent) from None
        except ConnectionError as exc:
            raise UserError(f"cannot reach {self.where}: {type(exc).__name__}") from None
        except RuntimeError as exc:
            if job_id and ("404" in str(exc) or "does not exist" in str(exc)):
                raise UserError(f"no such job: {job_id}") from None
            raise

    def submit(self, **kwargs) -> str:
        return self._call(lambda: self.client.submit_job(**kwargs))

    def status(self, job_id: str) -> str:
        return str(self._call(lambda: self.client.get_job_status(job_id), job_id)).split(".")[-1]

    def info(self, job_id: str):
        return self._call(lambda: self.client.get_job_info(job_id), job_id)

    def logs(self, job_id: str) -> str:
        return self._call(lambda: self.client.get_job_logs(job_id), job_id)


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
        env["pip"] = node_requirements()
    return env


def node_requirements() -> list[str]:
    """This project's dependencies for a pip runtime env (with the `report` extra: pipeline scripts run
    `refinedweb report` in the job), without Ray: the nodes run the cluster's own Ray (Ray's runtime-env
    docs: never install ray itself there)."""
    from packaging.requirements import Requirement

    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    deps = [*project["dependencies"], *project["optional-dependencies"]["report"]]
    return [d for d in deps if Requirement(d).name.lower() != "ray"]


def submit(address: str | None, command: list[str], install: bool = True, wait: bool = False,
           log=print) -> tuple[str, str | None]:
    jobs = Jobs(address)
    deadline = time.time() + 120
    while True:
        try:
            job_id = jobs.submit(entrypoint=entrypoint(command), runtime_env=runtime_env(install))
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
        status = jobs.status(job_id)
    return job_id, status


def status(address: str | None, job_id: str) -> dict[str, Any]:
    info = Jobs(address).info(job_id)
    return {"job_id": job_id, "status": str(info.status).split(".")[-1], "entrypoint": info.entrypoint,
            "message": info.message, "start_time": info.start_time, "end_time": info.end_time}


def logs(address: str | None, job_id: str) -> str:
    return Jobs(address).logs(job_id)
