"""Create a K3s HA cluster end to end: real worker, emulator, lab hosts, the real kubectl."""

from __future__ import annotations

import io
import logging
import re
import subprocess

import pytest
import yaml
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from clusters import operations
from clusters.adapters import health
from clusters.adapters.cloud import cloud_for
from clusters.models import (
    AuditAction,
    AuditEvent,
    CloudResource,
    Cluster,
    ClusterStatus,
    KubeCredential,
    KubeCredentialStatus,
    LogLine,
    Node,
    RunStatus,
    StepStatus,
)
from tests.support import runs
from tests.support.factories import make_user
from tests.support.k3s_nodes import refused_within
from tests.support.leaks import leaks
from tests.support.processes import CommandLineWatcher
from tests.support.redis_monitor import RedisMonitor
from tests.support.ssh_login import ssh, ssh_run
from tests.support.world_clusters import make_world_cluster, quick_node_monitor, world_env

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]

OLD_K3S = "v1.23.8+k3s1"  # kine's utf8mb4 VARCHAR(630) index: needs innodb_large_prefix ON


def kubectl(kubeconfig_path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--kubeconfig", str(kubeconfig_path), *args],
                          capture_output=True, text=True, timeout=60)


def inventory(world, kind: str) -> list[dict]:
    return [r for r in world.emulator.control.resources() if r["type"] == kind]


def failures_of(run) -> list[tuple[str, str]]:
    return [(s.key, s.error) for s in run.steps.exclude(status=StepStatus.SUCCEEDED)]


def pages_of(client, cluster, run) -> list[str]:
    """What the owner's browser can fetch about the cluster (not the kubeconfig download,
    which is the secret handed over on purpose)."""
    urls = [reverse("clusters:cluster", args=[cluster.code]),
            reverse("clusters:cluster-live", args=[cluster.code]),
            reverse("clusters:run-status", args=[cluster.code, run.pk]),
            reverse("clusters:dashboard")]
    urls += [reverse("clusters:step-log", args=[cluster.code, run.pk, step.pk])
             for step in run.steps.all()]
    return [client.get(url).content.decode() for url in urls]


def personal_kubeconfig_issued_used_and_revoked(cluster, client, tmp_path) -> str:
    """The owner downloads a personal kubeconfig (a ServiceAccount token of its own), the
    real kubectl lists the nodes with it through the SLB; another user can neither see nor
    revoke it (404); the owner revokes it and the same file is refused (401 Unauthorized).
    The audit trail holds both, with the credential's IDs. Returns the token."""
    issued = client.post(reverse("clusters:kubeconfig-issue", args=[cluster.code]),
                         {"lifetime": "1h"})
    assert issued.status_code == 200, issued.content[:500]
    assert "no-store" in issued["Cache-Control"] and "attachment" in \
        issued["Content-Disposition"]
    personal = tmp_path / "personal.yaml"
    personal.write_bytes(issued.content)
    token = yaml.safe_load(issued.content)["users"][0]["user"]["token"]
    credential = KubeCredential.objects.get(cluster=cluster)
    assert credential.status == KubeCredentialStatus.ACTIVE
    assert credential.service_account_uid
    # v1.23's tokens carry no jti (ServiceAccountTokenJTI: 1.30 on); the browser e2e (v1.32)
    # records one. The account's UID identifies the credential either way.
    assert credential.token_id == ""
    assert 3590 <= (credential.expires_at - credential.created_at).total_seconds() <= 3610
    nodes = kubectl(personal, "get", "nodes", "--no-headers")
    assert nodes.returncode == 0, nodes.stderr
    assert len(nodes.stdout.splitlines()) == 3

    revoke_url = reverse("clusters:kubeconfig-revoke", args=[cluster.code, credential.pk])
    mallory = Client()
    mallory.force_login(make_user("mallory"))
    assert mallory.get(reverse("clusters:cluster", args=[cluster.code])).status_code == 404
    assert mallory.post(revoke_url).status_code == 404
    assert kubectl(personal, "get", "nodes").returncode == 0  # still works

    page = client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    assert credential.name in page
    assert client.post(revoke_url).status_code == 302
    # Within seconds: kube-apiserver trusts a token that authenticated for 10 s.
    refused = refused_within(lambda: kubectl(personal, "get", "nodes"))
    assert refused.returncode != 0 and "Unauthorized" in refused.stderr, refused.stderr
    credential.refresh_from_db()
    assert credential.status == KubeCredentialStatus.REVOKED
    assert credential.revoked_by == cluster.owner.username
    # The cluster's own kubeconfig (the panel's) is untouched.
    admin = tmp_path / "admin.yaml"
    admin.write_text(cluster.kubeconfig)
    assert kubectl(admin, "get", "nodes").returncode == 0

    events = {event.action: event.details for event in AuditEvent.objects.filter(
        cluster=cluster, action__in=[AuditAction.KUBE_CREDENTIAL_ISSUE,
                                     AuditAction.KUBE_CREDENTIAL_REVOKE])}
    for action in (AuditAction.KUBE_CREDENTIAL_ISSUE, AuditAction.KUBE_CREDENTIAL_REVOKE):
        assert events[action]["token_id"] == credential.token_id, events
        assert events[action]["service_account"] == f"kube-system/{credential.name}"
        assert events[action]["service_account_uid"] == credential.service_account_uid
    assert events[AuditAction.KUBE_CREDENTIAL_ISSUE]["lifetime"] == "1h"
    return token


def test_two_servers_and_an_agent_through_the_slb(world, start_worker, broker_url, task_queue,
                                                  tmp_path, *, client, caplog):
    # The K3s recipe's story: MySQL 5.7 with innodb_large_prefix OFF (the account's parameter
    # template says so; RDS's own default is ON) and a K3s whose kine needs it ON.
    world.emulator.control.set_rds_parameter_defaults("5.7", {"innodb_large_prefix": "OFF"})
    # LOG_LEVEL=DEBUG: the SDK logs each request (AccountPassword in its query string).
    worker = start_worker(concurrency=2, beat=True, LOG_LEVEL="DEBUG", **world_env(world))
    cluster = make_world_cluster(world, servers=2, agents=1, k3s_version=OLD_K3S)
    monitor = RedisMonitor(broker_url, task_queue)
    watcher = CommandLineWatcher()
    run = runs.wait_finished(operations.start_create(cluster), timeout=300)
    command_lines = watcher.stop()
    monitor.stop()
    assert run.status == RunStatus.SUCCEEDED, failures_of(run)

    cluster = Cluster.objects.get(pk=cluster.pk)
    assert cluster.status == ClusterStatus.READY
    assert set(Node.objects.filter(cluster=cluster).values_list("status", flat=True)) == {"ready"}
    # Each node remembers that this cluster installed its K3s (destroy trusts that).
    assert set(Node.objects.filter(cluster=cluster).values_list("k3s_installed", flat=True)) \
        == {True}

    # Exactly what was bought: one RDS instance, one SLB, one started listener, two backends.
    (rds,) = inventory(world, "rds_instance")
    (slb,) = inventory(world, "slb_load_balancer")
    (listener,) = inventory(world, "slb_listener")
    servers = set(cluster.nodes.filter(role="server").values_list("ecs_instance_id", flat=True))
    assert rds["state"] == "Running" and rds["engine_version"] == "5.7"
    assert slb["addresses"] == [cluster.slb_address] and set(slb["backends"]) == servers
    assert listener["state"] == "running" and listener["ports"] == [6443]
    assert listener["health"] == dict.fromkeys(servers, "normal")
    assert set(CloudResource.objects.filter(cluster=cluster).values_list(
        "kind", "provider_id")) == {("rds_instance", rds["id"]), ("slb", slb["id"])}

    # The CLB is bought as it is sold today: pay-as-you-go, pay-by-LCU, no specification.
    assert (slb["instance_charge_type"], slb["spec"]) == ("PayByCLCU", "slb.lcu.elastic")
    described = cloud_for(cluster).describe_slb(slb["id"])
    assert described is not None and described.instance_charge_type == "PayByCLCU"
    creates = [c["params"] for c in world.emulator.control.calls()
               if c["action"] == "CreateLoadBalancer"]
    assert creates and all(
        (p.get("InstanceChargeType"), p.get("PayType")) == ("PayByCLCU", "PayOnDemand")
        and "LoadBalancerSpec" not in p for p in creates), creates
    assert (cluster.slb_charge_type, cluster.slb_spec) == ("PayByCLCU", "")
    ledger = CloudResource.objects.get(cluster=cluster, kind="slb")
    assert ledger.attributes["instance_charge_type"] == "PayByCLCU"

    # The manual recipe's two failures cannot happen.
    logs = list(LogLine.objects.filter(step__run=run).values_list("text", flat=True))
    assert any("Set innodb_large_prefix=ON" in text for text in logs)
    assert not [text for text in logs if "x509" in text or "Error 1071" in text]

    # The user's view: the downloaded kubeconfig and the real kubectl, through the SLB.
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(cluster.kubeconfig)
    nodes = kubectl(kubeconfig, "get", "nodes", "--no-headers")
    assert nodes.returncode == 0, nodes.stderr
    rows = [line.split() for line in nodes.stdout.splitlines()]
    assert len(rows) == 3 and all(row[1] == "Ready" for row in rows), nodes.stdout
    assert sum("control-plane" in row[2] for row in rows) == 2
    assert f"server: https://{cluster.slb_address}:6443" in cluster.kubeconfig
    assert kubectl(kubeconfig, "config", "current-context").stdout.strip() == cluster.name
    client.force_login(cluster.owner)
    with caplog.at_level(logging.DEBUG):
        personal_token = personal_kubeconfig_issued_used_and_revoked(cluster, client, tmp_path)
    panel_log = [record.getMessage() for record in caplog.records]
    dump = io.StringIO()
    call_command("dumpdata", "clusters", stdout=dump)
    assert personal_token not in dump.getvalue()  # never stored, not even encrypted

    # The first server started with the short token (no CA yet); the second one and the agent
    # got the secure forms pinning its CA, the agent its own node-only token.
    assert len(cluster.k3s_ca_hash) == 64 and cluster.k3s_agent_token
    configs = []
    for host in world.lab.hosts[:3]:
        status, text, _ = ssh_run(ssh(host), "cat /etc/rancher/k3s/config.yaml")
        assert status == 0, text
        configs.append(yaml.safe_load(text))
    assert configs[0]["token"] == cluster.k3s_token
    assert configs[1]["token"] == f"K10{cluster.k3s_ca_hash}::server:{cluster.k3s_token}"
    assert configs[0]["agent-token"] == configs[1]["agent-token"] == cluster.k3s_agent_token
    assert configs[2]["token"] == f"K10{cluster.k3s_ca_hash}::node:{cluster.k3s_agent_token}"

    # No secret anywhere a person or another process could read it, in any encoding: the
    # worker's DEBUG log, the pages, the task messages, the step logs, errors, command lines.
    secrets = [cluster.k3s_token, cluster.k3s_agent_token, cluster.datastore_password,
               world.access_key_secret, personal_token]
    for node in cluster.nodes.all():
        secrets += [line for line in node.ssh_private_key.splitlines()
                    if len(line) >= 16 and not line.startswith("-----")]
    users = ["k3s", world.access_key_id, "root"]
    client.force_login(cluster.owner)
    errors = [text for step in run.steps.all() for text in (step.error, step.wait_reason)]
    worker_log = list(worker.output)
    # Celery's format names no logger: the vendored urllib3's line is the request line.
    assert any('HTTP/1.1"' in line and "AccountPassword=***" in line for line in worker_log), \
        [line for line in worker_log if "AccountPassword" in line][:5]
    places = {"worker log": worker_log, "step logs": logs, "task messages": monitor.commands,
              "errors": errors, "command lines": command_lines, "panel log": panel_log,
              "pages": pages_of(client, cluster, run)}
    for place, texts in places.items():
        assert not leaks(texts, secrets, users), place
    assert any("install.sh" in c for c in command_lines), "the watcher saw the installs"


def test_mysql_80_and_57_with_large_prefix_on_modify_no_parameter(world, start_worker):
    """Nothing to fix: 8.0 has no innodb_large_prefix (it is not even read), RDS 5.7 runs it
    ON by default (read, then left alone). The emulator's call log shows every call made."""
    start_worker(concurrency=2, **world_env(world))
    world.emulator.control.clear_calls()
    on_80 = make_world_cluster(world, servers=1, agents=0, rds_engine_version="8.0")
    on_57 = make_world_cluster(world, servers=1, agents=0, first_host=1,
                               rds_engine_version="5.7", k3s_version=OLD_K3S)
    started = [operations.start_create(on_80), operations.start_create(on_57)]
    for pending in started:
        run = runs.wait_finished(pending, timeout=300)
        assert run.status == RunStatus.SUCCEEDED, failures_of(run)
    versions = {r["engine_version"]: r["id"] for r in inventory(world, "rds_instance")}
    assert set(versions) == {"8.0", "5.7"}
    calls = [c for c in world.emulator.control.calls() if c["product"] == "Rds"]
    assert [c for c in calls if c["action"] == "CreateDBInstance" and c["status"] == 200]
    assert not [c for c in calls if c["action"] == "ModifyParameter"], "a parameter was changed"
    described = {c["params"].get("DBInstanceId") for c in calls
                 if c["action"] == "DescribeParameters"}
    assert versions["5.7"] in described and versions["8.0"] not in described
    created = [c["params"] for c in calls if c["action"] == "CreateDBInstance"]
    assert {(p["EngineVersion"], p["DBInstanceClass"], p["Category"],
             p["DBInstanceStorageType"]) for p in created} == {
        ("8.0", "mysql.n2.medium.2c", "HighAvailability", "cloud_essd"),
        ("5.7", "mysql.n2.medium.2c", "HighAvailability", "cloud_essd")}


def test_preflight_refuses_bad_input_and_buys_nothing(world, start_worker):
    start_worker(concurrency=2, **world_env(world))
    outsider = world.emulator.control.add_instance(
        hostname="elsewhere", private_ip="172.31.1.50", region_id=world.region,
        zone_id=world.other_vpc["vswitches"][0]["zone_id"], vpc_id=world.other_vpc["vpc_id"],
        vswitch_id=world.other_vpc["vswitches"][0]["vswitch_id"])
    assert outsider

    bad_key = make_world_cluster(world, servers=1, agents=0)
    bad_key.cloud_account.access_key_secret = "not-the-secret"
    bad_key.cloud_account.save()
    wrong_password = make_world_cluster(world, servers=1, agents=0, login="password")
    wrong_password.nodes.update(ssh_password="wrong-password")
    changed_key = make_world_cluster(world, servers=1, agents=0)
    changed_key.nodes.update(host_key="SHA256:q9bI9aDzM3vLhQ7ZCj9yVxw5tYb6Q0Vw3m0bT2yV1Tc")
    outside_vpc = make_world_cluster(world, servers=1, agents=0)
    outside_vpc.nodes.update(private_ip="172.31.1.50")
    not_sold = make_world_cluster(world, servers=1, agents=0,
                                  rds_instance_class="mysql.madeup.colossal.99")

    expected = {
        bad_key.pk: ("preflight_cloud", "InvalidAccessKeySecret"),
        wrong_password.pk: ("preflight_hosts", "wrong password or key"),
        changed_key.pk: ("preflight_hosts", "has CHANGED: expected SHA256:q9bI9aDzM3vLhQ7Z"),
        outside_vpc.pk: ("preflight_cloud", f"is in VPC {world.other_vpc['vpc_id']}"),
        not_sold.pk: ("preflight_cloud", "RDS does not sell mysql.madeup.colossal.99"),
    }
    started = [operations.start_create(c) for c in (bad_key, wrong_password, changed_key,
                                                      outside_vpc, not_sold)]
    for pending in started:
        run = runs.wait_finished(pending, timeout=120)
        key, text = expected[run.cluster_id]
        step = run.steps.get(key=key)
        assert run.status == RunStatus.FAILED
        assert step.status == StepStatus.FAILED and text in step.error, step.error
        assert Cluster.objects.get(pk=run.cluster_id).status == ClusterStatus.FAILED
    assert not inventory(world, "rds_instance") and not inventory(world, "slb_load_balancer")
    assert not CloudResource.objects.exists()


def test_throttled_cloud_still_converges_without_duplicates(world, start_worker):
    start_worker(concurrency=2, beat=True, **world_env(world))
    for code, status in (("Throttling", 400), ("ServiceUnavailable", 503)):
        world.emulator.control.add_fault(action="*", code=code, http_status=status,
                                         probability=0.15)
    cluster = make_world_cluster(world, servers=2, agents=0)
    run = runs.wait_finished(operations.start_create(cluster), timeout=300)
    assert run.status == RunStatus.SUCCEEDED, failures_of(run)
    calls = world.emulator.control.calls()
    assert sum(call.get("code") in ("Throttling", "ServiceUnavailable") for call in calls) >= 3
    assert len(inventory(world, "rds_instance")) == 1
    assert len(inventory(world, "slb_load_balancer")) == 1


def test_a_quota_error_fails_its_step_with_code_and_request_id(world, start_worker):
    start_worker(concurrency=2, **world_env(world))
    world.emulator.control.add_fault(action="CreateLoadBalancer", code="QuotaExceeded.Slb",
                                     http_status=400, message="The SLB quota is exceeded.")
    cluster = make_world_cluster(world, servers=1, agents=0)
    run = runs.wait_finished(operations.start_create(cluster), timeout=120)
    assert run.status == RunStatus.FAILED
    step = run.steps.get(key="slb_create")
    assert step.status == StepStatus.FAILED and step.attempts == 1
    assert "code QuotaExceeded.Slb" in step.error and "RequestId " in step.error
    assert "The SLB quota is exceeded." in step.error
    assert not inventory(world, "slb_load_balancer")


def node_badge(page: str, ip: str) -> str:
    """The status badge of the Nodes table's row for this address."""
    row = re.search(rf"<tr><td>[^\n]*?<code[^>]*>{re.escape(ip)}</code>.*?</tr>", page, re.S)
    assert row, f"no row for {ip}"
    badge = re.search(r'<span class="badge node-[a-z_]+">([^<]+)</span>', row.group(0))
    assert badge, row.group(0)
    return badge.group(1)


def test_health_turns_degraded_when_a_server_stops(world, start_worker, tmp_path, client):
    start_worker(concurrency=2, **world_env(world))
    cluster = make_world_cluster(world, servers=2, agents=0)
    quick_node_monitor(world, list(cluster.nodes.values_list("private_ip", flat=True)))
    run = runs.wait_finished(operations.start_create(cluster), timeout=300)
    assert run.status == RunStatus.SUCCEEDED, failures_of(run)
    cluster = Cluster.objects.select_related("cloud_account").get(pk=cluster.pk)
    assert cluster.health == "healthy", cluster.health_reasons

    stopped = cluster.nodes.filter(role="server").order_by("pk").last()
    world.lab.run(world.lab.host(stopped.private_ip), "systemctl stop k3s", check=True)

    def degraded() -> bool:
        return health.refresh(cluster).health == "degraded"

    runs.wait_until(degraded, 60, "the health check to notice the stopped server")
    cluster.refresh_from_db()
    assert f"SLB backends unhealthy: {stopped.private_ip}" in cluster.health_reasons
    not_ready = f"node {stopped.name or stopped.private_ip} is not Ready"
    runs.wait_until(lambda: not_ready in health.refresh(cluster).reasons, 90,
                    "the API to report the stopped server NotReady")
    # What health says and what the Nodes table says agree.
    assert {n.pk: n.status for n in cluster.nodes.all()} == {
        n.pk: "not_ready" if n.pk == stopped.pk else "ready" for n in cluster.nodes.all()}
    client.force_login(cluster.owner)
    page = client.get(reverse("clusters:cluster", args=[cluster.code])).content.decode()
    assert node_badge(page, stopped.private_ip) == "Not ready"
    running = cluster.nodes.exclude(pk=stopped.pk).get()
    assert node_badge(page, running.private_ip) == "Ready"
    kubeconfig = tmp_path / "kubeconfig.yaml"
    kubeconfig.write_text(cluster.kubeconfig)
    assert kubectl(kubeconfig, "get", "--raw", "/readyz").stdout.strip() == "ok", \
        "the API still answers through the SLB"

    world.lab.run(world.lab.host(stopped.private_ip), "systemctl start k3s", check=True)
    runs.wait_until(lambda: health.refresh(cluster).health == "healthy", 90,
                    "the server to be back")
    stopped.refresh_from_db()
    assert stopped.status == "ready"
