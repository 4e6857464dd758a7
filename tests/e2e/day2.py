"""What the day-2 end-to-end tests look at: hosts, the emulator's inventory, kubectl."""

from __future__ import annotations

import subprocess
from pathlib import Path

from clusters.adapters.cloud import TAG_KEY
from clusters.models import Cluster, Run, RunStatus, StepStatus

K3S_PATHS = ("/etc/rancher/k3s", "/var/lib/rancher/k3s", "/usr/local/bin/k3s",
             "/usr/local/bin/k3s-uninstall.sh", "/usr/local/bin/k3s-agent-uninstall.sh",
             "/usr/local/bin/k3s-killall.sh", "/etc/systemd/system/k3s.service",
             "/etc/systemd/system/k3s-agent.service")
CLOUD_KINDS = ("rds_instance", "slb_load_balancer", "slb_listener")


def k3s_traces(world, host) -> list[str]:
    """K3s files and processes left on a lab host (empty when it is clean)."""
    files = world.lab.run(host, " ".join(["ls", "-d", *K3S_PATHS, "2>/dev/null"])).stdout
    processes = world.lab.run(host, "ps -eo args").stdout
    running = [line for line in processes.splitlines()
               if "/usr/local/bin/k3s" in line or line.startswith(("k3s ", "containerd"))]
    return files.split() + running


def cloud_left(world, cluster: Cluster) -> list[dict]:
    """Live RDS instances, SLBs and listeners tagged with (or belonging to) the cluster."""
    code = str(cluster.code)
    resources = world.emulator.control.resources()
    balancers = {r["id"] for r in resources if r["type"] == "slb_load_balancer"
                 and _tags(r).get(TAG_KEY) == code}
    return [r for r in resources if r["type"] in CLOUD_KINDS and (
        _tags(r).get(TAG_KEY) == code or r["id"] in balancers
        or str(r["id"]).split(":")[0] in balancers)]


def _tags(resource: dict) -> dict:
    tags = resource.get("tags") or {}
    if isinstance(tags, list):
        return {t.get("Key", t.get("TagKey")): t.get("Value", t.get("TagValue")) for t in tags}
    return tags


def failures_of(run: Run) -> list[tuple[str, str, str]]:
    return [(s.key, s.status, s.error) for s in run.steps.exclude(
        status__in=[StepStatus.SUCCEEDED, StepStatus.SKIPPED])]


def assert_succeeded(run: Run) -> None:
    assert run.status == RunStatus.SUCCEEDED, failures_of(run)


def kubectl_nodes(cluster: Cluster, directory: Path) -> dict[str, str]:
    """{node name: STATUS} as the real kubectl shows it through the SLB."""
    path = directory / f"{cluster.name}.yaml"
    path.write_text(Cluster.objects.get(pk=cluster.pk).kubeconfig)
    result = subprocess.run(["kubectl", "--kubeconfig", str(path), "get", "nodes",
                             "--no-headers"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return {row.split()[0]: row.split()[1] for row in result.stdout.splitlines() if row.strip()}
