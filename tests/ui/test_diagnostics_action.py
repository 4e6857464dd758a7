""""Collect diagnostics" on a failed run: owner-only, POST with CSRF, audited, queued as a
task that reads the failed step's host into that step's log, and Retry waits meanwhile."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client, TestCase
from django.urls import reverse
from django.utils import timezone

from clusters.engine import pipeline
from clusters.models import (
    AuditAction,
    AuditEvent,
    LogLine,
    Node,
    NodeRole,
    RunKind,
    RunStatus,
    Step,
    StepStatus,
)
from tests.adapters.sshd_server import PASSWORDS, SshServer, start_sshd
from tests.support.engine_specs import in_process_engine
from tests.support.factories import make_cluster, make_user
from tests.support.tools import require

TASK = "clusters.collect_diagnostics"


@pytest.fixture(scope="module")
def sshd() -> Iterator[SshServer]:
    """A real OpenSSH server on loopback (tests/adapters/sshd_server.py) as the failed host."""
    require("sshd", "ssh-keygen", "unshare", "openssl", "sudo")
    server = start_sshd()
    yield server
    server.stop()


@pytest.fixture
def failed_run(user: Any) -> Any:
    """A run whose first server installed and whose second failed."""
    cluster = make_cluster(owner=user, nodes=2, name="forensic")
    first, second = cluster.nodes.order_by("pk")
    run = pipeline.create_run(cluster, RunKind.TEST, [
        pipeline.StepSpec("server_1", "Install server 1", "k3s.install_server",
                          args={"node_id": first.pk}),
        pipeline.StepSpec("server_2", "Install server 2", "k3s.install_server", ["server_1"],
                          args={"node_id": second.pk}),
    ], start=False)
    type(run).objects.filter(pk=run.pk).update(status=RunStatus.FAILED)
    run.steps.filter(key="server_1").update(status=StepStatus.SUCCEEDED)
    run.steps.filter(key="server_2").update(status=StepStatus.FAILED, error="K3s failed")
    run.refresh_from_db()
    return run


def url(run: Any, name: str = "clusters:run-diagnostics") -> str:
    return reverse(name, args=[run.cluster.code, run.pk])


def failed_step(run: Any) -> Step:
    return run.steps.get(key="server_2")


def test_the_owner_starts_one_collection_audited_and_queued(failed_run: Any,
                                                            owner_client: Client) -> None:
    page = owner_client.get(reverse("clusters:cluster", args=[failed_run.cluster.code]))
    assert url(failed_run) in page.content.decode() and "Collect diagnostics" in page.content \
        .decode()
    with in_process_engine() as engine, TestCase.captureOnCommitCallbacks(execute=True):
        response = owner_client.post(url(failed_run), REMOTE_ADDR="10.1.2.3", follow=True)
    assert response.redirect_chain[-1][0].endswith(f"?run={failed_run.pk}")
    assert "Collecting diagnostics from 1 host" in response.content.decode()
    step = failed_step(failed_run)
    assert step.diagnosing_until is not None and step.diagnosing_until > timezone.now()
    assert [(m.task, m.args) for m in engine.take()] == [(TASK, (step.pk,))]
    event = AuditEvent.objects.get()
    assert (event.action, event.user, event.cluster, event.ip_address) == (
        AuditAction.RUN_DIAGNOSTICS, failed_run.cluster.owner, failed_run.cluster, "10.1.2.3")
    second = failed_run.cluster.nodes.order_by("pk")[1]
    assert event.details == {"run": failed_run.pk, "step": "server_2",
                             "hosts": [second.private_ip]}
    # One at a time: a second press while it runs is refused and not audited.
    again = owner_client.post(url(failed_run), follow=True)
    assert "being collected already" in again.content.decode()
    assert AuditEvent.objects.count() == 1


def test_only_the_owner_may_and_only_by_post_with_csrf(failed_run: Any, user: Any,
                                                       client_for: Any, client: Client) -> None:
    assert client_for(make_user()).post(url(failed_run)).status_code == 404
    anonymous = client.post(url(failed_run))
    assert anonymous.status_code == 302 and anonymous["Location"].startswith(reverse("login"))
    assert client_for(user).get(url(failed_run)).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(url(failed_run)).status_code == 403
    assert not AuditEvent.objects.exists()
    assert failed_step(failed_run).diagnosing_until is None


def test_a_run_that_did_not_fail_offers_no_collection_and_refuses_one(
        failed_run: Any, owner_client: Client) -> None:
    type(failed_run).objects.filter(pk=failed_run.pk).update(status=RunStatus.SUCCEEDED)
    failed_run.steps.update(status=StepStatus.SUCCEEDED, error="")
    page = owner_client.get(reverse("clusters:cluster", args=[failed_run.cluster.code]))
    assert url(failed_run) not in page.content.decode()
    refused = owner_client.post(url(failed_run), follow=True)
    assert "collected for a failed run only" in refused.content.decode()
    assert not AuditEvent.objects.exists()


def test_retry_waits_while_diagnostics_are_written_into_the_log(
        failed_run: Any, owner_client: Client) -> None:
    Step.objects.filter(pk=failed_step(failed_run).pk).update(
        diagnosing_until=timezone.now() + timedelta(seconds=60))
    waited = owner_client.post(url(failed_run, "clusters:run-retry"), follow=True)
    assert "Diagnostics are being written into this run" in waited.content.decode()
    failed_run.refresh_from_db()
    assert failed_run.status == RunStatus.FAILED
    # A mark whose task died expires by itself: Retry is not blocked for good.
    Step.objects.filter(pk=failed_step(failed_run).pk).update(
        diagnosing_until=timezone.now() - timedelta(seconds=1))
    with TestCase.captureOnCommitCallbacks(execute=False):
        owner_client.post(url(failed_run, "clusters:run-retry"))
    failed_run.refresh_from_db()
    assert failed_run.status == RunStatus.RUNNING


@pytest.mark.django_db(transaction=True)  # hosts are read in threads with their own connection
def test_the_task_reads_the_failed_host_into_the_failed_steps_log(
        failed_run: Any, owner_client: Client, sshd: SshServer) -> None:
    """A non-root sudoer on a real sshd; whatever this machine lacks (systemd, K3s) is
    reported per section, and the log keeps polling until the collection is over."""
    step = failed_step(failed_run)
    Node.objects.filter(pk=step.args["node_id"]).update(
        private_ip=sshd.host, ssh_port=sshd.port, ssh_user="pt_pw",
        ssh_password=PASSWORDS["pt_pw"], role=NodeRole.SERVER)
    lines_url = reverse("clusters:step-log-lines",
                        args=[failed_run.cluster.code, failed_run.pk, step.pk])
    assert owner_client.get(lines_url + "?after=0").content.decode().count("log-more") == 0
    with in_process_engine() as engine:
        with TestCase.captureOnCommitCallbacks(execute=True):
            owner_client.post(url(failed_run))
        # While it is collecting, the open log keeps asking for more.
        assert owner_client.get(lines_url + "?after=0").status_code == 204
        (message,) = engine.take()
        engine.deliver(message)
    lines = list(LogLine.objects.filter(step=step).order_by("seq")
                 .values_list("text", flat=True))
    assert lines[0] == f"{sshd.host}: host key {sshd.host_fingerprint} recorded (it is " \
                       "checked on every later connection)"
    assert lines[1] == f"==== Diagnostics of {sshd.host} (collected on request) ===="
    titles = [line for line in lines if line.startswith("--- ")]
    assert [t.split(" (")[0] for t in titles] == [
        "--- Unit status", "--- Last 50 journal lines",
        "--- K3s config, keys only", "--- Free disk", "--- Free memory"]
    # This machine has no K3s config, or one some other test wrote: its keys only, then.
    config = lines.index(next(t for t in titles if t.startswith("--- K3s config")))
    shown = lines[config + 1:lines.index(next(t for t in titles if t.startswith("--- Free")))]
    assert shown == ["(not readable, exit 1: cat: /etc/rancher/k3s/config.yaml: No such file "
                     "or directory)"] or all(line.endswith(("***", "items)", "item)", "keys)",
                                                            "key)", "(empty)"))
                                             for line in shown), shown
    disk = lines.index(next(t for t in titles if t.startswith("--- Free disk")))
    assert lines[disk + 1].split()[:2] == ["Filesystem", "Size"]
    assert lines[-1] == f"==== End of the diagnostics of {sshd.host} ===="
    assert PASSWORDS["pt_pw"] not in "\n".join(lines)
    assert failed_step(failed_run).diagnosing_until is None
    drained = owner_client.get(lines_url + "?after=0").content.decode()
    assert "Diagnostics of" in drained and "log-more" not in drained


def test_the_action_speaks_chinese(failed_run: Any, client_for: Any) -> None:
    client = client_for(failed_run.cluster.owner, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    page = client.get(reverse("clusters:cluster", args=[failed_run.cluster.code])).content \
        .decode()
    assert "收集诊断信息" in page and "配置文件的键名（值已隐藏）" in page  # noqa: RUF001
    with TestCase.captureOnCommitCallbacks(execute=False):
        answer = client.post(url(failed_run), follow=True).content.decode()
    assert "正在从 1 台主机收集诊断信息" in answer
