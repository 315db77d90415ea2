"""The job definitions in pipelines/: shell scripts parse, and the Kubernetes manifests are well-formed
KubeRay / batch objects that run scripts and commands that exist."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from refinedweb.cli import build_parser

from .conftest import REPO

PIPELINES = REPO / "pipelines"


@pytest.mark.parametrize("script", sorted(p.name for p in PIPELINES.glob("*.sh")))
def test_scripts_parse_and_are_executable(script):
    path = PIPELINES / script
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    assert path.stat().st_mode & 0o111
    assert "set -euo pipefail" in path.read_text()


def _manifests() -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text()) for p in (PIPELINES / "k8s").glob("*.yaml")}


def test_kuberay_and_cron_manifests():
    manifests = _manifests()
    assert {m["kind"] for m in manifests.values()} == {"RayCluster", "RayJob", "CronJob"}
    for name, m in manifests.items():
        assert m["apiVersion"] in ("ray.io/v1", "batch/v1"), name
        assert m["metadata"]["name"]
    job = manifests["rayjob-full-crawl.yaml"]
    words = shlex.split(job["spec"]["entrypoint"])
    assert words[0] == "bash" and (PIPELINES / Path(words[1]).name).exists()
    cluster_specs = [manifests["raycluster.yaml"]["spec"], job["spec"]["rayClusterSpec"]]
    for spec in cluster_specs:
        import ray

        assert spec["rayVersion"] == ray.__version__
        pods = [spec["headGroupSpec"]["template"]] + [g["template"] for g in spec["workerGroupSpecs"]]
        for pod in pods:
            container = pod["spec"]["containers"][0]
            assert container["image"] and container["envFrom"][0]["secretRef"]["name"] == "refinedweb-s3"
            assert container["resources"]["limits"]["memory"]
    cron = manifests["cronjob-incremental.yaml"]
    assert cron["spec"]["schedule"] == "0 3 * * 1" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    command = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[:2] == ["refinedweb", "submit"]
    args = build_parser().parse_args(command[1:])           # the CLI accepts exactly this command line
    assert args.wait and args.job_command[1:3] == ["bash", "/opt/refinedweb/pipelines/incremental.sh"]
    assert (PIPELINES / "incremental.sh").exists()
    # jobs join the cluster they run on through RAY_ADDRESS (set by Ray): no --ray-address to forget
    assert "--ray-address" not in job["spec"]["entrypoint"] and "--ray-address" not in command
    # token auth: every RayCluster pod and the CronJob's submitter read the same Secret
    def token_env(container):
        env = {e["name"]: e for e in container.get("env", [])}
        return env.get("RAY_AUTH_TOKEN", {}).get("valueFrom", {}).get("secretKeyRef"), env.get("RAY_AUTH_MODE", {}).get("value")
    always_on = manifests["raycluster.yaml"]["spec"]
    pods = [always_on["headGroupSpec"]["template"]] + [g["template"] for g in always_on["workerGroupSpecs"]]
    secret = {"name": "refinedweb-ray-token", "key": "auth_token"}
    assert all(token_env(p["spec"]["containers"][0]) == (secret, "token") for p in pods)
    assert token_env(cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0])[0] == secret
    dockerfile = (PIPELINES / "k8s" / "Dockerfile").read_text()
    import ray

    assert f"rayproject/ray:{ray.__version__}-py311" in dockerfile
