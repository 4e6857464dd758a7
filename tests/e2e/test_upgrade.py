"""Day-2 on a real cluster: a K3s upgrade the API never notices, and a kubeconfig renewal.

One cluster (two servers, one agent, RDS) serves both: while the upgrade and then the
renewal run, a thread asks /readyz through the SLB every 0.2 s with the stored kubeconfig,
exactly as a user's kubectl would, and must see no failure at all.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from clusters import operations
from clusters.adapters import cloud
from clusters.models import Cluster, ClusterStatus, LogLine, RunKind, RunStatus, StepStatus
from clusters.steps.k3s import kubeconfig_server
from tests.support import runs
from tests.support.pollers import POLL_INTERVAL, ReadyzPoller
from tests.support.world_clusters import make_world_cluster, world_env

# The real 2 s warm-up: a server back in the SLB before its /readyz says ok would show here.
pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True),
              pytest.mark.world_k3s_warmup(2)]

FROM_VERSION = "v1.31.4+k3s1"
TO_VERSION = "v1.32.5+k3s1"
NEXT_VERSION = "v1.33.1+k3s1"


def kubectl(kubeconfig_path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig_path), *args],
                          capture_output=True, text=True, timeout=60)


def run_log(run) -> list[str]:
    return list(LogLine.objects.filter(step__run=run).order_by("step__position", "seq")
                .values_list("text", flat=True))


def failures_of(run) -> list[tuple[str, str]]:
    return [(s.key, s.error) for s in run.steps.exclude(
        status__in=[StepStatus.SUCCEEDED, StepStatus.SKIPPED])]


AGE_ADMIN_CERTIFICATE = textwrap.dedent("""
    # What a server looks like after ~345 days without a restart: its admin certificate (and
    # k3s.yaml) expires in {days} days. Signed by the cluster's client CA, like the real one.
    import base64, yaml
    from sandbox.k3s import certs
    tls = "/var/lib/rancher/k3s/server/tls/"
    ca, ca_key = open(tls + "client-ca.crt", "rb").read(), open(tls + "client-ca.key", "rb").read()
    cert, key = certs.client_cert(ca, ca_key, "system:admin", "system:masters", days={days})
    open(tls + "client-admin.crt", "wb").write(cert + ca)
    open(tls + "client-admin.key", "wb").write(key)
    path = "/etc/rancher/k3s/k3s.yaml"
    config = yaml.safe_load(open(path))
    config["users"][0]["user"]["client-certificate-data"] = base64.b64encode(cert + ca).decode()
    config["users"][0]["user"]["client-key-data"] = base64.b64encode(key).decode()
    open(path, "w").write(yaml.safe_dump(config, sort_keys=False))
""")


def test_upgrade_keeps_the_api_answering_then_the_kubeconfig_is_renewed(
        world, start_worker, tmp_path):
    start_worker(concurrency=2, beat=True, **world_env(world))
    cluster = make_world_cluster(world, servers=2, agents=1, k3s_version=FROM_VERSION)
    created = runs.wait_finished(operations.start_create(cluster), timeout=300)
    assert created.status == RunStatus.SUCCEEDED, failures_of(created)
    cluster = Cluster.objects.select_related("cloud_account").get(pk=cluster.pk)
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(cluster.kubeconfig)

    # --- the upgrade, watched through the SLB the whole time --------------------------------
    started = time.monotonic()
    with ReadyzPoller(cluster.kubeconfig) as poller:
        run = operations.start_upgrade(cluster, TO_VERSION)
        assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.UPDATING
        run = runs.wait_finished(run, timeout=420)
    upgrade_seconds = time.monotonic() - started
    assert run.status == RunStatus.SUCCEEDED, failures_of(run)
    assert not poller.failures, f"{len(poller.failures)} failed /readyz: {poller.failures[:5]}"
    assert poller.successes >= upgrade_seconds / POLL_INTERVAL / 3, poller.successes
    print(f"upgrade: {upgrade_seconds:.1f} s, {poller.successes} /readyz ok, 0 failed")

    # Every node reports the new version, to the real kubectl through the SLB.
    nodes = kubectl(kubeconfig, "get", "nodes", "--no-headers")
    assert nodes.returncode == 0, nodes.stderr
    rows = [line.split() for line in nodes.stdout.splitlines()]
    assert len(rows) == 3 and {row[4] for row in rows} == {TO_VERSION}, nodes.stdout
    assert all(row[1] == "Ready" for row in rows), nodes.stdout
    cluster.refresh_from_db()
    assert cluster.status == ClusterStatus.READY and cluster.k3s_version == TO_VERSION
    assert set(cluster.nodes.values_list("k3s_version", flat=True)) == {TO_VERSION}

    # The servers went one at a time: each left the SLB, came back and was healthy before
    # the next left; both are backends and healthy at the end.
    log = run_log(run)
    order = [text.split(":")[0] for text in log
             if ": removed from SLB" in text or ": healthy behind the SLB again" in text]
    servers = list(cluster.nodes.filter(role="server").order_by("pk")
                   .values_list("private_ip", flat=True))
    assert order == [servers[0], servers[0], servers[1], servers[1]], order
    api = cloud.cloud_for(cluster)
    balancer = cluster.resources.get(kind="slb").provider_id
    health = {h.server_id: h.status for h in api.describe_health_status(balancer)}
    instances = set(cluster.nodes.filter(role="server").values_list("ecs_instance_id", flat=True))
    assert health == dict.fromkeys(instances, "normal")

    # The RDS backup was taken first, exists in the (emulated) cloud, and its id is logged.
    backup_id = run.steps.get(key="backup").result["backup_id"]
    instance = cluster.resources.get(kind="rds_instance").provider_id
    backups = {b.backup_id: b.status for b in api.describe_backups(instance)}
    assert backups.get(backup_id) == "Success"
    assert any(f"RDS backup {backup_id}" in text for text in log)
    first_server_step = run.steps.get(key=f"server_{cluster.nodes.get(private_ip=servers[0]).pk}")
    assert run.steps.get(key="backup").finished_at <= first_server_step.started_at

    # --- a failed upgrade stops with the API serving and says how to go back; going back works
    first, second = (cluster.nodes.get(private_ip=ip) for ip in servers)
    second_host = world.lab.host(second.private_ip)
    world.lab.run(second_host, "mount --bind /usr/local/bin /usr/local/bin && "
                  "mount -o remount,bind,ro /usr/local/bin", check=True)  # the install fails
    with ReadyzPoller(cluster.kubeconfig) as poller:
        failed = runs.wait_finished(operations.start_upgrade(cluster, NEXT_VERSION), timeout=300)
        assert failed.status == RunStatus.FAILED
        stopped = failed.steps.get(key=f"server_{second.pk}")
        backup_id = failed.steps.get(key="backup").result["backup_id"]
        assert stopped.status == StepStatus.FAILED, failures_of(failed)
        for text in ("Read-only file system", f"{second.private_ip} stays out of the SLB",
                     f"upgrade to the previous version {TO_VERSION}",
                     f"restore RDS backup {backup_id} of {instance}"):
            assert text in stopped.error, stopped.error
        # The failed server was read before anything else touched it: the install script's
        # output again, then its unit (still running the old version) and the rest.
        said = list(stopped.log_lines.order_by("seq").values_list("text", flat=True))
        report = said[said.index(f"==== Diagnostics of {second.private_ip} (the step failed; "
                                 "collected before anything else touched the host) ===="):]
        assert report[1] == "--- Install script output (last 40 lines) ---", report[:3]
        assert any("Read-only file system" in line for line in report[2:42]), report[:42]
        assert any(line.startswith("--- Unit status (systemctl status k3s --no-pager)")
                   for line in report), report
        assert "token: ***" in report and cluster.k3s_token not in "\n".join(said)
        assert Cluster.objects.get(pk=cluster.pk).status == ClusterStatus.READY
        backends = {b.server_id for b in api.describe_slb(balancer).backend_servers}
        assert backends == {first.ecs_instance_id}

        world.lab.run(second_host, "umount /usr/local/bin", check=True)
        rolled_back = runs.wait_finished(operations.start_upgrade(cluster, TO_VERSION),
                                         timeout=300)
    assert rolled_back.status == RunStatus.SUCCEEDED, failures_of(rolled_back)
    assert rolled_back.params["rollback"] is True
    assert rolled_back.steps.get(key=f"agent_{cluster.nodes.get(role='agent').pk}").status \
        == StepStatus.SKIPPED  # the agent never left TO_VERSION
    assert not poller.failures, f"{len(poller.failures)} failed /readyz: {poller.failures[:5]}"
    versions = kubectl(kubeconfig, "get", "nodes", "-o",
                       "jsonpath={.items[*].status.nodeInfo.kubeletVersion}").stdout.split()
    assert versions == [TO_VERSION] * 3, versions
    health = {h.server_id: h.status for h in api.describe_health_status(balancer)}
    assert health == dict.fromkeys(instances, "normal")

    # --- kubeconfig renewal: the server's certificate has aged to 20 days -------------------
    source = kubeconfig_server(cluster)
    aged = world.lab.run(world.lab.host(source.private_ip), [sys.executable, "-c",
                         AGE_ADMIN_CERTIFICATE.format(days=20)],
                         env={"PYTHONPATH": str(settings.BASE_DIR)})
    assert aged.returncode == 0, aged.stderr
    with ReadyzPoller(cluster.kubeconfig) as poller:
        renewal = runs.wait_finished(operations.start_kubeconfig_renewal(cluster), timeout=180)
    assert renewal.kind == RunKind.RENEW_KUBECONFIG
    assert renewal.status == RunStatus.SUCCEEDED, failures_of(renewal)
    assert not poller.failures, poller.failures[:5]
    log = run_log(renewal)
    assert any("within 30 days: restarting K3s on " + source.private_ip in t for t in log), log
    assert any("renewing it" in t for t in world.lab.run(
        world.lab.host(source.private_ip), "journalctl -u k3s --no-pager -n 400").stdout
        .splitlines())
    cluster.refresh_from_db()
    assert cluster.kubeconfig_expires_at > timezone.now() + timedelta(days=300)
    kubeconfig.write_text(cluster.kubeconfig)
    assert kubectl(kubeconfig, "get", "--raw", "/readyz").stdout.strip() == "ok"

    # A renewal when nothing is close to expiry fetches once and restarts nothing.
    again = runs.wait_finished(operations.start_kubeconfig_renewal(cluster), timeout=120)
    assert again.status == RunStatus.SUCCEEDED, failures_of(again)
    assert again.steps.get(key="restart_if_expiring").status == StepStatus.SKIPPED
    assert any("no restart needed" in t for t in run_log(again))
