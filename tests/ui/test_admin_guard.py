"""The operator's admin: what staff and superusers may still do there, and what it writes.

Staff who are not superusers view and use the actions, which go through clusters.operations
and are audited with their name; superusers may rename (LogEntry and AuditEvent), delete a
cluster only while nothing is in its ledger, and never see a secret.
(tests/ui/test_every_url.py walks every admin URL; this file follows each path through.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission
from django.db.models import ProtectedError
from django.test import Client
from django.urls import reverse

from clusters.engine import pipeline
from clusters.models import (
    AuditAction,
    AuditEvent,
    CloudResource,
    Cluster,
    ClusterStatus,
    ResourceState,
    Run,
    RunKind,
    RunStatus,
)
from tests.support.engine_specs import InProcessEngine, in_process_engine
from tests.support.factories import TEST_TOKEN, make_cluster, make_user

CHECK = "clusters.refresh_health"


@pytest.fixture
def engine(db: Any) -> Iterator[InProcessEngine]:
    with in_process_engine() as driven:
        yield driven


@pytest.fixture
def staff(db: Any) -> Any:
    user = make_user("operator", is_staff=True)
    user.user_permissions.set(Permission.objects.all())
    return user


@pytest.fixture
def superuser(db: Any) -> Any:
    return make_user("root", is_staff=True, is_superuser=True)


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def buy(cluster: Cluster) -> CloudResource:
    return CloudResource.objects.create(
        cluster=cluster, kind="ecs", provider_id="i-billed", client_token=f"tok-{cluster.pk}",
        region=cluster.region, state=ResourceState.PRESENT)


def change_form(client: Client, cluster: Cluster, **changes: Any) -> Any:
    data = {"name": cluster.name, "_save": "Save", **changes}
    for inline in ("nodes", "resources", "runs"):  # what the page's inline tables post back
        data.update({f"{inline}-TOTAL_FORMS": "0", f"{inline}-INITIAL_FORMS": "0"})
    return client.post(reverse("admin:clusters_cluster_change", args=[cluster.pk]), data)


def test_staff_cannot_take_over_a_cluster_its_nodes_or_its_account(staff: Any) -> None:
    cluster = make_cluster(nodes=1, install_base_url="https://mirror.example.com/k3s")
    node = cluster.nodes.get()
    account = cluster.cloud_account
    client = signed_in(staff)
    assert change_form(client, cluster, owner=staff.pk, name="mine",
                       install_base_url="http://203.0.113.9/x.sh").status_code == 403
    node_url = reverse("admin:clusters_node_change", args=[node.pk])
    assert client.post(node_url, {"private_ip": "203.0.113.9", "host_key": "",
                                  "cluster": cluster.pk, "role": "server", "ssh_port": 22,
                                  "ssh_user": "root", "status": "ready"}).status_code == 403
    account_url = reverse("admin:clusters_cloudaccount_change", args=[account.pk])
    assert client.post(account_url, {"owner": staff.pk, "name": account.name,
                                      "access_key_id": "x",
                                      "default_region": "cn-hangzhou"}).status_code == 403
    cluster.refresh_from_db()
    node.refresh_from_db()
    account.refresh_from_db()
    assert (cluster.owner_id, cluster.name, cluster.install_base_url) != (staff.pk, "mine", "")
    assert cluster.install_base_url == "https://mirror.example.com/k3s"
    assert node.private_ip == "10.0.0.1"
    assert account.owner_id == cluster.owner_id
    assert not AuditEvent.objects.exists()


def test_a_superuser_renames_only_and_both_trails_say_so(superuser: Any) -> None:
    cluster = make_cluster(install_base_url="https://mirror.example.com/k3s")
    owner = cluster.owner_id
    client = signed_in(superuser)
    page = client.get(reverse("admin:clusters_cluster_change", args=[cluster.pk]))
    html = page.content.decode()
    assert TEST_TOKEN not in html
    assert "K3s token: set" in html and "kubeconfig: not set" in html
    assert 'name="name"' in html and 'name="owner"' not in html
    assert 'name="install_base_url"' not in html
    # A worker moves the cluster on while the form is open: the save must not undo it.
    Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.READY)
    response = change_form(client, cluster, name="renamed", owner=superuser.pk,
                           install_base_url="http://203.0.113.9/x.sh")
    assert response.status_code == 302, response.context["adminform"].form.errors
    cluster.refresh_from_db()
    assert (cluster.name, cluster.owner_id, cluster.status) == ("renamed", owner,
                                                               ClusterStatus.READY)
    assert cluster.install_base_url == "https://mirror.example.com/k3s"
    event = AuditEvent.objects.get()
    assert (event.action, event.user, event.cluster) == (AuditAction.ADMIN_CHANGE, superuser,
                                                         cluster)
    assert event.details == {"model": "cluster", "object": cluster.pk, "fields": ["name"]}
    entry = LogEntry.objects.get()
    assert (entry.action_flag, entry.user_id, entry.object_id) == (CHANGE, superuser.pk,
                                                                   str(cluster.pk))


def test_a_rename_that_clashes_with_another_cluster_of_the_owner_is_a_form_error(
        superuser: Any) -> None:
    cluster = make_cluster(name="one")
    make_cluster(owner=cluster.owner, name="two")
    response = change_form(signed_in(superuser), cluster, name="two")
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    cluster.refresh_from_db()
    assert cluster.name == "one"
    assert not AuditEvent.objects.exists()


def test_a_cluster_with_runs_or_nodes_is_not_deleted_its_history_is_kept(
        superuser: Any) -> None:
    busy = make_cluster(name="busy")
    pipeline.create_run(busy, RunKind.TEST, [pipeline.StepSpec("a", "A", "test.work")],
                        start=False)
    hosts = make_cluster(name="hosts", nodes=1)
    client = signed_in(superuser)
    for cluster in (busy, hosts):
        url = reverse("admin:clusters_cluster_delete", args=[cluster.pk])
        assert "Cannot delete cluster" in client.get(url).content.decode()
        assert client.post(url, {"post": "yes"}).status_code == 403
    bulk = client.post(reverse("admin:clusters_cluster_changelist"), {
        "action": "delete_selected", "_selected_action": [busy.pk, hosts.pk], "post": "yes"})
    assert bulk.status_code == 403
    assert Cluster.objects.filter(pk__in=[busy.pk, hosts.pk]).count() == 2
    assert not AuditEvent.objects.exists()


def test_a_cluster_with_a_ledger_is_never_deleted_so_destroy_still_finds_what_is_billed(
        superuser: Any) -> None:
    cluster = make_cluster(status=ClusterStatus.FAILED)
    bought = buy(cluster)
    client = signed_in(superuser)
    url = reverse("admin:clusters_cluster_delete", args=[cluster.pk])
    page = client.get(url)
    assert page.status_code == 200
    assert "Cannot delete cluster" in page.content.decode()
    client.post(url, {"post": "yes"})
    bulk = client.post(reverse("admin:clusters_cluster_changelist"), {
        "action": "delete_selected", "_selected_action": [cluster.pk], "post": "yes"})
    assert bulk.status_code in (200, 302)
    assert Cluster.objects.filter(pk=cluster.pk).exists()
    assert CloudResource.objects.filter(pk=bought.pk, cluster=cluster).exists()
    assert not AuditEvent.objects.exists()
    # Nor through a cascade from elsewhere (deleting the owner).
    with pytest.raises(ProtectedError):
        cluster.owner.delete()
    assert CloudResource.objects.filter(pk=bought.pk).exists()


def test_a_superuser_deletes_a_cluster_that_bought_nothing_and_it_is_audited(
        superuser: Any, staff: Any) -> None:
    cluster = make_cluster(name="never-bought")
    url = reverse("admin:clusters_cluster_delete", args=[cluster.pk])
    assert signed_in(staff).post(url, {"post": "yes"}).status_code == 403
    assert signed_in(superuser).post(url, {"post": "yes"}).status_code == 302
    assert not Cluster.objects.filter(pk=cluster.pk).exists()
    event = AuditEvent.objects.get()
    assert (event.action, event.user, event.cluster_name) == (AuditAction.ADMIN_DELETE,
                                                              superuser, "")
    assert event.details["name"] == "never-bought"


def act(client: Client, changelist: str, action: str, *pks: int) -> Any:
    return client.post(reverse(changelist), {"action": action, "_selected_action": list(pks)},
                       follow=True)


def test_staff_retry_and_cancel_go_through_the_operations_and_name_them(
        staff: Any, engine: InProcessEngine) -> None:
    cluster = make_cluster()
    failed = pipeline.create_run(cluster, RunKind.TEST, [pipeline.StepSpec("a", "A", "test.work")],
                                 start=False)
    Run.objects.filter(pk=failed.pk).update(status=RunStatus.FAILED)
    failed.steps.update(status="failed", error="boom")
    client = signed_in(staff)
    act(client, "admin:clusters_run_changelist", "retry_runs", failed.pk)
    failed.refresh_from_db()
    assert failed.status == RunStatus.RUNNING
    retried = AuditEvent.objects.get()
    assert (retried.action, retried.user, retried.cluster, retried.details) == (
        AuditAction.RUN_RETRY, staff, cluster, {"run": failed.pk})

    act(client, "admin:clusters_run_changelist", "cancel_runs", failed.pk)
    failed.refresh_from_db()
    assert failed.cancel_requested
    cancelled = AuditEvent.objects.latest("pk")
    assert (cancelled.action, cancelled.user, cancelled.details) == (
        AuditAction.RUN_CANCEL, staff, {"run": failed.pk})


def test_a_stopped_run_is_not_cancelled_and_nothing_is_written(staff: Any) -> None:
    cluster = make_cluster()
    run = pipeline.create_run(cluster, RunKind.TEST, [pipeline.StepSpec("a", "A", "test.work")],
                              start=False)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    act(signed_in(staff), "admin:clusters_run_changelist", "cancel_runs", run.pk)
    run.refresh_from_db()
    assert not run.cancel_requested
    assert not AuditEvent.objects.exists()


def test_staff_health_check_is_queued_once_and_audited(staff: Any,
                                                       engine: InProcessEngine) -> None:
    cluster = make_cluster(status=ClusterStatus.READY)
    client = signed_in(staff)
    page = act(client, "admin:clusters_cluster_changelist", "refresh_health", cluster.pk)
    assert "1 health check(s) queued" in page.content.decode()
    assert [sent.args[0] for sent in engine.take() if sent.task == CHECK] == [cluster.pk]
    event = AuditEvent.objects.get()
    assert (event.action, event.user, event.cluster) == (AuditAction.HEALTH_CHECK, staff,
                                                         cluster)
    # Still queued: pressing again queues nothing more.
    page = act(client, "admin:clusters_cluster_changelist", "refresh_health", cluster.pk)
    assert "0 health check(s) queued" in page.content.decode()
    assert engine.take() == []
    assert AuditEvent.objects.count() == 1


def test_staff_without_the_change_permission_are_not_offered_the_actions(db: Any) -> None:
    viewer = make_user("viewer", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    cluster = make_cluster(status=ClusterStatus.READY)
    client = signed_in(viewer)
    page = client.get(reverse("admin:clusters_cluster_changelist")).content.decode()
    assert "refresh_health" not in page
    act(client, "admin:clusters_cluster_changelist", "refresh_health", cluster.pk)
    assert not AuditEvent.objects.exists()


def test_no_admin_page_shows_any_encrypted_field_in_the_clear(superuser: Any) -> None:
    """Each EncryptedTextField of a model the guarded admin shows is one of its secrets: the
    generated SSH private key leaves the panel only by the owner's audited download."""
    from django.contrib import admin as django_admin  # noqa: PLC0415

    from clusters.admin import GuardedAdmin  # noqa: PLC0415
    from clusters.fields import EncryptedTextField  # noqa: PLC0415

    for model, model_admin in django_admin.site._registry.items():
        if not isinstance(model_admin, GuardedAdmin):
            continue
        encrypted = {f.name for f in model._meta.fields if isinstance(f, EncryptedTextField)}
        assert encrypted <= set(model_admin.secret_fields), model.__name__
    private = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAAtheGENERATEDkey\n"
    cluster = make_cluster(nodes=1)
    Cluster.objects.filter(pk=cluster.pk).update(generated_ssh_key=private)
    cluster.refresh_from_db()
    assert cluster.generated_ssh_key == private  # stored (encrypted) and read back
    html = signed_in(superuser).get(
        reverse("admin:clusters_cluster_change", args=[cluster.pk])).content.decode()
    assert "tGENERATEDkey" not in html and "PRIVATE KEY" not in html
    assert "generated SSH private key: set" in html
