"""What the cluster page shows: the ledger linked to the console, health, the kubeconfig
commands, run history, and the actions that exist (cancel, retry, destroy)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clusters.engine import pipeline
from clusters.models import AuditAction, AuditEvent, CloudResource, LogLine, Run, RunKind, RunStatus
from tests.support.factories import make_cluster


@pytest.fixture
def cluster(user: Any) -> Any:
    return make_cluster(owner=user, nodes=3, name="edge", region="cn-shanghai",
                        kubeconfig="apiVersion: v1\n", slb_address="10.0.9.9")


def page_of(client: Client, cluster: Any, query: str = "") -> str:
    response = client.get(reverse("clusters:cluster", args=[cluster.code]) + query)
    assert response.status_code == 200
    return response.content.decode()


def test_ledger_links_each_resource_to_the_alibaba_cloud_console(cluster: Any,
                                                                owner_client: Client) -> None:
    for kind, provider_id, token in (("rds", "rm-bp1abc", "t1"), ("slb", "lb-uf6xyz", "t2"),
                                     ("slb_listener", "lb-uf6xyz:6443", "t3"),
                                     ("rds", "", "t4")):
        CloudResource.objects.create(cluster=cluster, kind=kind, provider_id=provider_id,
                                     client_token=token, region="cn-shanghai", state="present")
    page = page_of(owner_client, cluster)
    assert ('href="https://rdsnext.console.aliyun.com/detail/rm-bp1abc/basicInfo'
            '?region=cn-shanghai"') in page
    assert 'href="https://slb.console.aliyun.com/slb/cn-shanghai/slbs/lb-uf6xyz"' in page
    assert page.count('target="_blank" rel="noopener noreferrer"') == 3
    assert "Present" in page


def test_ledger_says_how_each_load_balancer_is_billed(cluster: Any, user: Any,
                                                     client_for: Any) -> None:
    """Today's CLB is pay-by-LCU; one bought before 2025-06-01 keeps its specification."""
    for provider_id, token, attributes in (
            ("lb-new", "t1", {"instance_charge_type": "PayByCLCU", "spec": ""}),
            ("lb-old", "t2", {"instance_charge_type": "PayBySpec", "spec": "slb.s1.small"})):
        CloudResource.objects.create(cluster=cluster, kind="slb", provider_id=provider_id,
                                     client_token=token, region="cn-shanghai", state="present",
                                     attributes=attributes)
    page = page_of(client_for(user), cluster)
    rows = dict(re.findall(r"slbs/(lb-\w+)\".*?<td>([^<]*)</td></tr>", page, re.S))
    assert rows == {"lb-new": "Pay-as-you-go, pay-by-LCU",
                    "lb-old": "Pay-by-specification (slb.s1.small, no longer sold)"}
    chinese = page_of(client_for(user, HTTP_ACCEPT_LANGUAGE="zh-hans"), cluster)
    assert "按量付费\uff08按使用量计费\uff09" in chinese and "按规格计费" in chinese


def test_health_panel_shows_reasons_and_kubeconfig_expiry(cluster: Any,
                                                          owner_client: Client) -> None:
    type(cluster).objects.filter(pk=cluster.pk).update(
        health="degraded", health_checked_at=timezone.now() - timedelta(minutes=3),
        kubeconfig_expires_at=timezone.now() + timedelta(days=300),
        health_reasons=["node server-2 is NotReady",
                        {"check": "slb_backends", "message": "1 of 2 backends unhealthy"}])
    page = page_of(owner_client, cluster)
    assert "Degraded" in page
    assert "node server-2 is NotReady" in page
    assert "slb_backends: 1 of 2 backends unhealthy" in page
    assert "checked 3\xa0minutes ago" in page
    assert "in 9\xa0months" in page or "in 10\xa0months" in page
    assert "10.0.9.9:6443" in page


def test_kubeconfig_panel_has_the_commands_to_use_it(cluster: Any, owner_client: Client) -> None:
    page = page_of(owner_client, cluster)
    assert "kubectl --kubeconfig edge.yaml get nodes" in page
    assert ("KUBECONFIG=~/.kube/config:edge.yaml kubectl config view --flatten "
            "&gt; /tmp/kubeconfig.merged") in page
    assert "kubectl config use-context edge" in page
    assert f'href="{reverse("clusters:kubeconfig", args=[cluster.code])}"' in page


def test_timeline_tail_starts_from_the_last_log_line(cluster: Any, owner_client: Client) -> None:
    run = pipeline.create_run(cluster, RunKind.TEST, [
        pipeline.StepSpec("a", "A", "test.work"), pipeline.StepSpec("b", "B", "test.work")],
        start=False)
    step = run.steps.get(key="a")
    LogLine.objects.bulk_create(LogLine(step=step, seq=i, time=timezone.now(), text=f"l{i}")
                                for i in range(1, 1201))
    other = run.steps.get(key="b")
    page = page_of(owner_client, cluster)
    assert f'id="step-{step.pk}"' in page
    log = reverse("clusters:step-log-lines", args=[cluster.code, run.pk, step.pk])
    empty = reverse("clusters:step-log-lines", args=[cluster.code, run.pk, other.pk])
    # The long log opens on its last 200 lines, with a way back; the empty one from the start.
    assert f'hx-get="{log}?after=1000"' in page and f'hx-get="{log}?before=1001"' in page
    assert f'hx-get="{empty}?after=0"' in page and f"{empty}?before=" not in page
    assert page.count("No output yet.") == 1
    assert f'hx-get="{reverse("clusters:run-timeline", args=[cluster.code, run.pk])}"' in page


def test_run_history_selects_a_run_and_unknown_ones_are_404(cluster: Any,
                                                            owner_client: Client) -> None:
    first = pipeline.create_run(cluster, RunKind.CREATE,
                                [pipeline.StepSpec("only_first", "First only", "test.work")],
                                start=False)
    Run.objects.filter(pk=first.pk).update(status=RunStatus.FAILED)
    pipeline.create_run(cluster, RunKind.HEALTH,
                        [pipeline.StepSpec("later", "Later step", "test.work")], start=False)
    latest = page_of(owner_client, cluster)
    assert "Later step" in latest and "First only" not in latest
    older = page_of(owner_client, cluster, f"?run={first.pk}")
    assert "First only" in older
    assert "Retry from the failed step" not in older  # another run is still active
    other = make_cluster()
    stranger_run = pipeline.create_run(other, RunKind.TEST,
                                       [pipeline.StepSpec("x", "X", "test.work")], start=False)
    response = owner_client.get(reverse("clusters:cluster", args=[cluster.code]) +
                                f"?run={stranger_run.pk}")
    assert response.status_code == 404


def test_cancel_an_active_run(cluster: Any, owner_client: Client) -> None:
    run = pipeline.create_run(cluster, RunKind.TEST, [pipeline.StepSpec("a", "A", "test.work")],
                              start=False)
    assert "Cancel run" in page_of(owner_client, cluster)
    owner_client.post(reverse("clusters:run-cancel", args=[cluster.code, run.pk]))
    run.refresh_from_db()
    assert run.cancel_requested
    assert AuditEvent.objects.get().action == AuditAction.RUN_CANCEL


def test_destroy_after_a_failed_create_asks_for_the_name_then_starts(cluster: Any,
                                                                    owner_client: Client) -> None:
    run = pipeline.create_run(cluster, RunKind.CREATE, [pipeline.StepSpec("a", "A", "test.work")],
                              start=False)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.FAILED)
    assert "Destroy cluster" in page_of(owner_client, cluster)
    url = reverse("clusters:cluster-destroy", args=[cluster.code])
    wrong = owner_client.post(url, {"confirm_name": "not-edge"}, follow=True)
    assert "Type the cluster" in wrong.content.decode()
    assert not Run.objects.filter(cluster=cluster, kind=RunKind.DESTROY).exists()
    owner_client.post(url, {"confirm_name": "edge"})
    assert AuditEvent.objects.get().action == AuditAction.CLUSTER_DESTROY
    assert Run.objects.filter(cluster=cluster, kind=RunKind.DESTROY).count() == 1


def test_a_running_step_whose_worker_went_quiet_says_so_long_before_its_lease_expires(
        cluster: Any, user: Any, client_for: Any) -> None:
    """A worker killed by the OOM killer: its step stays Running until the lease (120 s)
    expires. After a few missed beats (5 s each) the page says so, in English and Chinese,
    and so does the live timeline's JSON; a step that beat a moment ago does not."""
    run = pipeline.create_run(cluster, RunKind.TEST, [
        pipeline.StepSpec("quiet", "Quiet", "test.work"),
        pipeline.StepSpec("busy", "Busy", "test.work")], start=False)
    run.status = RunStatus.RUNNING
    run.save()
    now = timezone.now()
    last_beat = now - timedelta(seconds=20)
    run.steps.filter(key="quiet").update(status="running", heartbeat_at=last_beat,
                                         lease_until=last_beat + timedelta(seconds=120))
    run.steps.filter(key="busy").update(status="running", heartbeat_at=now - timedelta(seconds=2),
                                        lease_until=now + timedelta(seconds=118))
    said = f"No word from its worker since {timezone.localtime(last_beat):%H:%M:%S}."
    page = page_of(client_for(user), cluster)
    assert page.count(said) == 1
    quiet = re.search(r'data-step-id="\d+" data-status="running".*?</li>', page, re.S)
    assert quiet and said in quiet.group(0)  # on the quiet step's own row (the first)
    busy = re.search(r'data-step-id="\d+" data-status="running".*?</li>.*?(<li.*?</li>)', page,
                     re.S)
    assert busy and "step-late" not in busy.group(1)  # the busy step beat a moment ago

    chinese = page_of(client_for(user, HTTP_ACCEPT_LANGUAGE="zh-hans"), cluster)
    assert f"自 {timezone.localtime(last_beat):%H:%M:%S} 起没有收到其工作进程的消息。" in chinese

    status = client_for(user).get(
        reverse("clusters:run-status", args=[cluster.code, run.pk])).json()
    late = {step["key"]: step["heartbeat_late_since"] for step in status["steps"]}
    assert late["busy"] is None and late["quiet"].startswith(
        last_beat.isoformat(timespec="milliseconds")[:19])
