"""Every URL of the project, found by walking the URL patterns, against three actors: the
anonymous visitor (sent to a login), another user (404 for the owner's things) and a staff
member who is not a superuser (no way to change what decides who owns, reaches or runs what).

Why driven by the patterns: a hand-kept list of URLs misses the one added next month. Each
URL found must belong to a class below (public, the user's own pages, one owner's things, or
the admin, which is checked model by model); a new URL that belongs to none fails the test
until someone says which it is.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve, reverse
from django.utils import timezone

from clusters.api.permissions import hands_out_credentials
from clusters.engine import pipeline
from clusters.interface.wizard import SLUGS
from clusters.models import (
    ApiToken,
    AuditEvent,
    CloudAccount,
    CloudResource,
    Cluster,
    InstallSource,
    KubeCredential,
    KubeCredentialStatus,
    LogLine,
    Node,
    ResourceState,
    Run,
    RunKind,
    Step,
)
from tests.support.api import bearer, issue, post_json
from tests.support.factories import TEST_ACCESS_KEY_SECRET, TEST_TOKEN, make_cluster, make_user

# --- what the walk classifies ----------------------------------------------------------------

#: Open to anyone by design: signing in and out, password reset, the language switch, the
#: health probe, the admin's own sign-in page.
PUBLIC = frozenset({
    "healthz", "login", "logout", "password_reset", "password_reset_done",
    "password_reset_confirm", "password_reset_complete", "set_language", "admin:login",
    "admin:logout",
})
#: Signed-in pages about the user's own things only (another user's never appear).
OWN_PAGES = frozenset({
    "clusters:dashboard", "clusters:cloud-accounts", "clusters:wizard", "clusters:wizard-step",
    "password_change", "password_change_done", "clusters:api-tokens",
    "clusters:etcd-restore-doc",
})
#: URLs of one owner's cluster (its runs, steps, nodes): anyone else gets a 404.
OWNER_ONLY = frozenset({
    "clusters:cluster", "clusters:cluster-live", "clusters:kubeconfig",
    "clusters:cluster-destroy", "clusters:node-add", "clusters:node-add-instances",
    "clusters:node-remove",
    "clusters:node-host-key", "clusters:cluster-upgrade", "clusters:kubeconfig-renew",
    "clusters:run-retry", "clusters:run-cancel", "clusters:run-diagnostics",
    "clusters:run-status", "clusters:run-timeline", "clusters:step-log-lines",
    "clusters:step-log", "clusters:step-log-search", "clusters:step-log-download",
    "clusters:cluster-allowlist", "clusters:kubeconfig-issue", "clusters:kubeconfig-revoke",
    "clusters:generated-ssh-key",
    "clusters:api-token-revoke", "clusters:etcd-snapshots-refresh",
})

# The REST API (/api/v1/): anonymous callers get 401 (JSON), not a login page.
#: Its schema and docs, open to anyone.
API_PUBLIC = frozenset({"api:schema", "api:docs", "api:redoc", "api:no-such-endpoint"})
#: The caller's own lists and lookups (another user's things never appear in them).
API_OWN = frozenset({"api:me", "api:cloud-accounts", "api:clusters", "api:audit-events",
                     "api:k3s-versions"})
#: One owner's cluster, run, step, node or cloud account: anyone else gets a 404.
API_OWNER_ONLY = frozenset({
    "api:cloud-account", "api:regions", "api:network-choices", "api:rds-choices",
    "api:cluster", "api:health", "api:health-check", "api:kubeconfig", "api:kubeconfig-renew",
    "api:destroy", "api:upgrade", "api:nodes", "api:node-instances", "api:node",
    "api:node-remove", "api:runs", "api:run", "api:run-retry", "api:run-cancel",
    "api:step-log", "api:kube-credentials", "api:kube-credential", "api:kube-credential-revoke",
    "api:generated-ssh-key",
})
API = API_PUBLIC | API_OWN | API_OWNER_ONLY
#: Answers 404 to anyone without looking at who asks (any other path under /api/v1/).
API_NO_AUTH = frozenset({"api:no-such-endpoint"})

#: Per model of the panel in the admin: the fields that decide who owns, reaches, pays for or
#: runs what (shown read-only to everyone), and the secrets (never shown, only "set").
SECURITY_FIELDS: dict[type, tuple[str, ...]] = {
    Cluster: ("owner", "cloud_account", "region", "zone", "vpc_id", "vswitch_id",
              "k3s_version", "k3s_channel", "install_source", "install_base_url",
              "extra_tls_sans", "datastore_kind", "datastore_engine", "rds_engine_version",
              "slb_address",
              "k3s_ca_hash", "api_allowed_cidrs", "datastore_tls", "secrets_encryption",
              "load_balancer_kind", "nlb_zones", "api_dns_name", "api_addresses", "status"),
    Node: ("cluster", "role", "name", "private_ip", "public_ip", "ssh_port", "ssh_user",
           "host_key", "ecs_instance_id", "status", "k3s_installed"),
    CloudAccount: ("owner", "credential_kind", "access_key_id", "role_arn", "external_id",
                   "session_policy", "ecs_role_name", "default_region"),
    CloudResource: ("cluster", "run", "kind", "provider_id", "client_token", "region", "state",
                    "attributes"),
    Run: ("cluster", "kind", "status", "params", "created_by", "cancel_requested"),
    Step: ("run", "key", "handler", "args", "status", "result", "not_before", "lease_until"),
    LogLine: ("step", "text"),
    AuditEvent: ("user", "username", "action", "cluster", "details"),
    KubeCredential: ("cluster", "issued_to", "username", "namespace", "name", "role",
                     "service_account_uid", "token_id", "status", "revoked_by"),
}
SECRETS: dict[type, tuple[str, ...]] = {
    Cluster: ("k3s_token", "k3s_agent_token", "kubeconfig", "datastore_password",
              "external_dsn"),
    Node: ("ssh_private_key", "ssh_password", "ssh_key_passphrase"),
    CloudAccount: ("access_key_secret", "security_token"),
}
#: Admin models that are not the panel's: Django's users and groups (only superusers change
#: them) and django-axes' sign-in records (the operator's; no one owns them).
FOREIGN_ADMIN_MODELS = frozenset({"auth.user", "auth.group", "axes.accessattempt",
                                  "axes.accesslog", "axes.accessfailurelog"})

ATTACKER_IP = "203.0.113.66"
SECRET_VALUES = (
    TEST_TOKEN, TEST_ACCESS_KEY_SECRET, "agent-token-never-shown-7d1f", "kubeconfig-never-shown",
    "dsn-password-never-shown", "datastore-password-never-shown", "ssh-password-0-secret",
    "PRIVATE-KEY-BODY-never-shown", "passphrase-never-shown", "sts-token-never-shown-4c2e",
)


@dataclass(frozen=True)
class Route:
    """One URL pattern: its name (or pattern, when unnamed) and the URL built for it."""

    key: str
    pattern: str
    params: tuple[str, ...]
    admin: bool
    urls: tuple[str, ...] = field(default=())


def walk(resolver: URLResolver | None = None, prefix: str = "", namespace: str = "",
         ) -> Iterator[tuple[str, str]]:
    """(name or pattern, full pattern) for every URL pattern, into every include()."""
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from walk(entry, prefix + str(entry.pattern), inner)
        else:
            assert isinstance(entry, URLPattern)
            pattern = prefix + str(entry.pattern)
            yield (namespace + entry.name if entry.name else pattern), pattern


PARAM = re.compile(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>[^)]*\)")


def fill(pattern: str, values: dict[str, str]) -> str:
    """The concrete URL of a pattern (route or regex) with its parameters replaced."""
    path = PARAM.sub(lambda m: values[m.group(1) or m.group(2)], pattern)
    return "/" + path.replace("^", "").replace("$", "")


# --- the world: two users' clusters, a staff member, a superuser ------------------------------


@dataclass
class World:
    owner: Any
    stranger: Any
    staff: Any
    superuser: Any
    cluster: Cluster
    node: Node
    run: Run
    step: Step
    resource: CloudResource
    staff_account: CloudAccount
    group: Group
    objects: dict[str, Any]
    owner_token: str


@pytest.fixture
def world(db: Any) -> World:
    owner, stranger = make_user("victim"), make_user("stranger")
    staff = make_user("operator", is_staff=True)
    staff.user_permissions.set(Permission.objects.all())  # the worst case: every permission
    superuser = make_user("root", is_staff=True, is_superuser=True)
    cluster = make_cluster(
        owner=owner, nodes=3, name="victim-prod", kubeconfig="kubeconfig-never-shown",
        k3s_agent_token="agent-token-never-shown-7d1f",
        external_dsn="mysql://k3s:dsn-password-never-shown@10.0.0.9:3306/k3s",
        datastore_password="datastore-password-never-shown",
        install_source=InstallSource.CUSTOM, install_base_url="https://mirror.example.com/k3s",
        k3s_version="v1.30.4+k3s1")
    node = cluster.nodes.order_by("pk").first()
    assert node is not None
    Node.objects.filter(pk=node.pk).update(
        ssh_private_key="-----BEGIN OPENSSH PRIVATE KEY-----\nPRIVATE-KEY-BODY-never-shown\n",
        ssh_key_passphrase="passphrase-never-shown", host_key="SHA256:" + "k" * 43)
    node.refresh_from_db()
    account = cluster.cloud_account
    account.security_token = "sts-token-never-shown-4c2e"
    account.save(update_fields=["security_token"])
    run = pipeline.create_run(cluster, RunKind.TEST, [pipeline.StepSpec("a", "A", "test.work")],
                              start=False)
    step = run.steps.get()
    LogLine.objects.create(step=step, seq=1, time=step.updated_at, text="installing")
    resource = CloudResource.objects.create(
        cluster=cluster, run=run, kind="ecs", provider_id="i-victim", client_token="tok-victim",
        region="cn-hangzhou", state=ResourceState.PRESENT)
    staff_cluster = make_cluster(owner=staff, name="staff-own")
    make_cluster(owner=stranger, nodes=1, name="stranger-own")
    group = Group.objects.create(name="operators")
    credential = KubeCredential.objects.create(
        cluster=cluster, issued_to=owner, username="victim", namespace="kube-system",
        name="panel-victim-0a1b2c3d", role="cluster-admin", token_id="jti-victim",
        status=KubeCredentialStatus.ACTIVE)
    owner_token = issue(owner, "victim-ci")
    event = AuditEvent.objects.create(username="victim", action="kubeconfig_download",
                                      cluster=cluster, cluster_name=cluster.name)
    objects = {
        "clusters.cluster": cluster, "clusters.node": node, "clusters.run": run,
        "clusters.step": step, "clusters.logline": step.log_lines.get(),
        "clusters.cloudresource": resource, "clusters.cloudaccount": cluster.cloud_account,
        "credential": credential, "clusters.kubecredential": credential,
        "clusters.auditevent": event, "auth.user": owner, "auth.group": group,
        "axes.accessattempt": AccessAttempt.objects.create(
            username="victim", ip_address="10.1.1.1", failures_since_start=1),
        "axes.accesslog": AccessLog.objects.create(username="victim", ip_address="10.1.1.1"),
        "axes.accessfailurelog": AccessFailureLog.objects.create(
            username="victim", ip_address="10.1.1.1", locked_out=False),
    }
    return World(owner, stranger, staff, superuser, cluster, node, run, step, resource,
                 staff_cluster.cloud_account, group, objects, owner_token)


def admin_model(pattern: str) -> str | None:
    """"app.model" of an admin URL pattern under admin/<app>/<model>/, else None."""
    match = re.match(r"admin/(\w+)/(\w+)/", pattern)
    return f"{match[1]}.{match[2]}" if match else None


def routes(world: World) -> list[Route]:
    cluster_type = ContentType.objects.get_for_model(Cluster)
    values = {
        "code": str(world.cluster.code), "run_id": str(world.run.pk),
        "step_id": str(world.step.pk), "node_id": str(world.node.pk),
        "uidb64": "MQ", "token": "set-password", "url": "no-such-page/",
        "content_type_id": str(cluster_type.pk), "object_id": str(world.cluster.pk),
        "account_id": str(world.cluster.cloud_account_id), "rest": "no-such-endpoint/",
        "token_id": str(ApiToken.objects.filter(user_id=world.owner.pk).order_by("pk")[0].pk),
        "credential_id": str(world.objects["credential"].pk),
    }
    found = []
    for key, pattern in walk():
        params = tuple(m.group(1) or m.group(2) for m in PARAM.finditer(pattern))
        model = admin_model(pattern)
        if "step" in params:
            urls = tuple(fill(pattern, {**values, "step": slug}) for slug in SLUGS)
        elif "app_label" in params:
            labels = sorted({m._meta.app_label for m in admin.site._registry})
            urls = tuple(fill(pattern, {**values, "app_label": label}) for label in labels)
        elif model and ("object_id" in params or "id" in params):
            assert model in world.objects, f"the world has no {model} for {pattern}"
            pk = str(world.objects[model].pk)
            urls = (fill(pattern, {**values, "object_id": pk, "id": pk}),)
        else:
            urls = (fill(pattern, values),)
        for url in urls:  # each URL built must be the pattern it was built from
            assert resolve(url).route == pattern or "(?P<" in pattern, (url, pattern)
        found.append(Route(key, pattern, params, pattern.startswith("admin/"), urls))
    return found


# --- what no one but the owner may change -----------------------------------------------------


def snapshot(world: World) -> dict[str, Any]:
    """What another user or a staff member must never change: the owner's cluster and all
    under it, every account, and everyone's privileges."""
    user_model = get_user_model()
    cluster = world.cluster.pk
    return {
        "clusters": list(Cluster.objects.order_by("pk").values()),
        "accounts": list(CloudAccount.objects.order_by("pk").filter(
            owner__in=[world.owner, world.staff]).values()),
        "nodes": list(Node.objects.filter(cluster_id=cluster).order_by("pk").values()),
        "runs": list(Run.objects.filter(cluster_id=cluster).order_by("pk").values()),
        "steps": list(Step.objects.filter(run__cluster_id=cluster).order_by("pk").values()),
        "log": list(LogLine.objects.filter(step__run__cluster_id=cluster).values()),
        "ledger": list(CloudResource.objects.order_by("pk").values()),
        "credentials": list(KubeCredential.objects.order_by("pk").values()),
        "audit": list(AuditEvent.objects.order_by("pk").values()),
        "users": list(user_model.objects.order_by("pk").values(
            "pk", "username", "password", "is_staff", "is_superuser", "is_active")),
        "user_permissions": sorted(user_model.user_permissions.through.objects.values_list(
            "user_id", "permission_id")),
        "groups": sorted(user_model.groups.through.objects.values_list("user_id", "group_id")),
        "group_permissions": sorted(Group.permissions.through.objects.values_list(
            "group_id", "permission_id")),
    }


def attack(world: World, target: Any = None) -> dict[str, Any]:
    """One POST body that would take the owner's cluster over if any view accepted it."""
    permissions = [str(pk) for pk in Permission.objects.values_list("pk", flat=True)]
    return {
        "owner": world.staff.pk, "cloud_account": world.staff_account.pk,
        "cluster": world.staff_account.clusters.get().pk, "name": "taken-over",
        "private_ip": ATTACKER_IP, "public_ip": ATTACKER_IP, "ssh_port": "2222",
        "ssh_user": "mallory", "host_key": "", "install_source": InstallSource.CUSTOM,
        "install_base_url": f"http://{ATTACKER_IP}/install.sh", "k3s_version": "v0.0.1+k3s1",
        "access_key_id": "LTAImallory", "access_key_secret": "mallory", "provider_id": "i-x",
        "state": "deleted", "status": "destroyed", "kubeconfig": "mallory", "k3s_token": "x",
        "external_dsn": f"mysql://u:p@{ATTACKER_IP}/k3s", "ssh_password": "mallory",
        "is_superuser": "on", "is_staff": "on", "is_active": "on", "username": "operator",
        "user_permissions": permissions, "permissions": permissions,
        "groups": [world.group.pk], "password1": "Mallory-pw-123", "password2": "Mallory-pw-123",
        "old_password": "wrong", "new_password1": "Mallory-pw-123",
        "new_password2": "Mallory-pw-123", "confirm_name": world.cluster.name,
        "fingerprint": "SHA256:" + "m" * 43, "version": "v1.31.0+k3s1",
        "action": "delete_selected", "post": "yes", "_save": "Save",
        "_selected_action": [target.pk] if target is not None else [],
        "role": "server", "hosts-TOTAL_FORMS": "1", "hosts-INITIAL_FORMS": "0",
        "hosts-0-private_ip": ATTACKER_IP, "hosts-0-role": "server",
    }


def send(actor: Client, method: str, url: str, body: dict[str, Any]) -> Any:
    """GET plain (its query string would be echoed in links), POST with the take-over."""
    return actor.get(url) if method == "get" else actor.post(url, body)


def client(user: Any = None) -> Client:
    fresh = Client()
    if user is not None:
        fresh.force_login(user)
    return fresh


def assert_no_secret(response: Any, url: str) -> None:
    body = b"".join(response.streaming_content) if response.streaming else response.content
    text = body.decode(errors="replace")
    for secret in SECRET_VALUES:
        assert secret not in text, (url, secret)


def login_redirect(response: Any, login_url: str, url: str) -> None:
    assert response.status_code == 302, (url, response.status_code)
    assert response["Location"].startswith(login_url + "?next="), (url, response["Location"])


# --- the test ---------------------------------------------------------------------------------


def test_every_url_is_classified(world: World) -> None:
    """A new URL must be put into a class (and so be checked) before the suite passes."""
    named = {route.key for route in routes(world) if not route.admin}
    unclassified = named - PUBLIC - OWN_PAGES - OWNER_ONLY - API
    assert not unclassified, f"URLs nobody has classified: {sorted(unclassified)}"
    stale = (PUBLIC | OWN_PAGES | OWNER_ONLY | API) - named - {"admin:login", "admin:logout"}
    assert not stale, f"classified URLs that no longer exist: {sorted(stale)}"
    registered = {m._meta.label_lower for m in admin.site._registry}
    panel = {m._meta.label_lower for m in SECURITY_FIELDS}
    assert registered - panel - FOREIGN_ADMIN_MODELS == set(), "an admin model nobody checks"


def test_anonymous_visitors_are_sent_to_a_login_everywhere_but_the_public_urls(
        world: World) -> None:
    before = snapshot(world)
    checked = 0
    for route in routes(world):
        for url in route.urls:
            for method in ("get", "post"):
                response = send(client(), method, url, attack(world))
                assert response.status_code < 500, (url, method)
                assert_no_secret(response, url)
                if route.key in PUBLIC | API_PUBLIC:
                    continue
                if route.key in API:
                    assert response.status_code == 401, (url, method, response.status_code)
                    assert response.json()["code"] == "not_authenticated", url
                    checked += 1
                    continue
                login = reverse("admin:login") if route.admin else reverse("login")
                login_redirect(response, login, url)
                checked += 1
    assert checked > 150
    assert snapshot(world) == before


@pytest.mark.parametrize("who", ["stranger", "staff"])
def test_another_user_gets_404_on_every_url_of_the_owners_cluster(world: World,
                                                                  who: str) -> None:
    """A staff member is nobody on the panel's pages: the admin is where operators look."""
    actor = getattr(world, who)
    owner = client(world.owner)
    before = snapshot(world)
    checked = 0
    for route in routes(world):
        if route.key not in OWNER_ONLY | OWN_PAGES:
            continue
        for url in route.urls:
            for method in ("get", "post"):
                response = send(client(actor), method, url, attack(world))
                assert_no_secret(response, url)
                if route.key in OWN_PAGES:
                    assert response.status_code in (200, 302, 405), (url, method)
                    assert "victim-prod" not in response.content.decode(), url
                    continue
                if response.status_code == 405:
                    # The view does not take this method from anyone (the owner neither).
                    assert getattr(owner, method)(url).status_code == 405, (url, method)
                    continue
                assert response.status_code == 404, (url, method, response.status_code)
                checked += 1
    assert checked >= len(OWNER_ONLY)
    assert snapshot(world) == before


def test_a_user_who_is_not_staff_gets_only_the_admins_login(world: World) -> None:
    before = snapshot(world)
    for route in routes(world):
        if not route.admin or route.key in PUBLIC:
            continue
        for url in route.urls:
            for method in ("get", "post"):
                response = send(client(world.stranger), method, url, attack(world))
                login_redirect(response, reverse("admin:login"), url)
    assert snapshot(world) == before


def test_staff_who_are_not_superusers_change_nothing_through_any_admin_url(
        world: World) -> None:
    """Every admin URL, with every permission granted and a take-over in every POST: the
    owner's cluster, the ledger, the accounts and everyone's privileges stay as they were,
    and no page shows a secret."""
    before = snapshot(world)
    statuses: dict[str, set[int]] = {}
    for route in routes(world):
        if not route.admin:
            continue
        model = admin_model(route.pattern)
        target = world.objects.get(model) if model else None
        for url in route.urls:
            for method in ("get", "post"):
                response = send(client(world.staff), method, url, attack(world, target))
                assert response.status_code < 500, (url, method)
                assert_no_secret(response, url)
                statuses.setdefault(route.key, set()).add(response.status_code)
        assert snapshot(world) == before, route.pattern
    # The forms that would write are refused outright, not merely ignored.
    for model in SECURITY_FIELDS:
        name = model._meta.model_name
        assert statuses[f"admin:clusters_{name}_add"] == {403}, name
        assert statuses[f"admin:clusters_{name}_delete"] == {403}, name
    for name in ("auth_user_change", "auth_user_add", "auth_group_change"):
        assert 403 in statuses[f"admin:{name}"], name


@pytest.mark.parametrize("model", list(SECURITY_FIELDS), ids=lambda m: m.__name__)
def test_staff_see_every_change_form_read_only_with_secrets_as_set(world: World,
                                                                   model: type) -> None:
    obj = world.objects[model._meta.label_lower]
    url = reverse(f"admin:clusters_{model._meta.model_name}_change", args=[obj.pk])
    page = client(world.staff).get(url)
    assert page.status_code == 200
    html = page.content.decode()
    for name in SECURITY_FIELDS[model] + SECRETS.get(model, ()):
        assert f'name="{name}"' not in html, (model, name)  # no input for it
    assert_no_secret(page, url)
    for name in SECRETS.get(model, ()):
        label = model._meta.get_field(name).verbose_name
        assert f"{label}: set" in html or f"{label}: not set" in html, (model, name)
    # The values are there to read.
    if model is Node:
        assert world.node.private_ip in html and world.node.host_key in html
    if model is Cluster:
        assert "https://mirror.example.com/k3s" in html and "victim" in html


def test_no_admin_page_shows_a_secret_even_to_a_superuser(world: World) -> None:
    superuser = client(world.superuser)
    pages = 0
    for route in routes(world):
        if route.admin and route.key not in PUBLIC:
            for url in route.urls:
                response = superuser.get(url)
                assert response.status_code < 500, url
                assert_no_secret(response, url)
                pages += response.status_code == 200
    assert pages > 40


# --- the REST API, with tokens ----------------------------------------------------------------


def api_routes(world: World) -> list[Route]:
    return [route for route in routes(world) if route.key in API - API_NO_AUTH]


def methods_of(url: str) -> list[str]:
    """The methods the endpoint's view answers (besides HEAD and OPTIONS)."""
    view = resolve(url).func.view_class  # type: ignore[attr-defined]
    return [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)]


def call(actor: Client, method: str, url: str, world: World) -> Any:
    """GET plain; a write with a JSON take-over body."""
    if method == "get":
        return actor.get(url)
    body = {**attack(world), "confirm_name": world.cluster.name}
    return getattr(actor, method)(url, body, content_type="application/json")


def test_another_users_token_gets_404_on_every_api_url_of_the_owners_things(
        world: World) -> None:
    """Driven by the URL patterns: a new endpoint under a cluster, run, step, node or account
    is covered the day it is added. With a read-write token, so the scope is not why."""
    stranger = bearer(issue(world.stranger, "stranger-ci"))
    stranger.get(reverse("api:me"))  # today's "token used" row, before the snapshot
    before = snapshot(world)
    checked = 0
    for route in api_routes(world):
        if route.key not in API_OWNER_ONLY:
            continue
        for url in route.urls:
            for method in methods_of(url):
                response = call(stranger, method, url, world)
                assert response.status_code == 404, (url, method, response.status_code)
                assert response.json()["code"] == "not_found", url
                assert_no_secret(response, url)
                checked += 1
    assert checked >= len(API_OWNER_ONLY)
    # The lists of the stranger's own things do not show the owner's.
    for key in API_OWN - {"api:k3s-versions"}:
        (route,) = [r for r in api_routes(world) if r.key == key]
        text = stranger.get(route.urls[0]).content.decode()
        assert "victim-prod" not in text and str(world.cluster.code) not in text, key
    assert snapshot(world) == before


def test_a_read_only_token_can_start_no_operation_on_any_api_url(world: World) -> None:
    """Every write is 403, and so is every GET whose view hands out a credential (marked
    with clusters.api.permissions.HANDS_OUT_CREDENTIALS); every other GET it may read must
    show no secret, so a credential download nobody marked fails here too."""
    reader = bearer(issue(world.owner, "reader", scope="read"))
    reader.get(reverse("api:me"))  # today's "token used" row, before the snapshot
    Cluster.objects.filter(pk=world.cluster.pk).update(status="ready")
    before = snapshot(world)
    writes = downloads = reads = 0
    for route in api_routes(world):
        for url in route.urls:
            view = resolve(url).func.view_class  # type: ignore[attr-defined]
            for method in methods_of(url):
                response = call(reader, method, url, world)
                if method == "get" and not hands_out_credentials(view):
                    assert response.status_code < 500, url
                    assert_no_secret(response, url)
                    reads += response.status_code == 200
                    continue
                assert response.status_code == 403, (url, method, response.status_code)
                assert response.json()["code"] == "permission_denied", url
                if method == "get":
                    assert "read-write token" in response.json()["detail"], url
                    assert_no_secret(response, url)
                    downloads += 1
                else:
                    writes += 1
    assert writes >= 10
    assert downloads >= 1  # the admin kubeconfig at least
    assert reads >= 12
    assert snapshot(world) == before


def test_a_read_only_token_is_refused_the_admin_kubeconfig_in_both_languages(
        world: World) -> None:
    Cluster.objects.filter(pk=world.cluster.pk).update(status="ready")
    reader = bearer(issue(world.owner, "reader-zh", scope="read"))
    url = reverse("api:kubeconfig", args=[world.cluster.code])
    english = reader.get(url)
    assert english.status_code == 403
    assert "kubeconfig-never-shown" not in english.content.decode()
    assert english.json()["detail"] == ("This token is read-only: downloading a kubeconfig or "
                                        "another credential needs a read-write token.")
    chinese = reader.get(url, HTTP_ACCEPT_LANGUAGE="zh-hans")
    assert chinese.status_code == 403
    assert "read-write" not in chinese.json()["detail"] and "令牌" in chinese.json()["detail"]
    # A read-write token still downloads it.
    writer = bearer(issue(world.owner, "writer-ci"))
    assert writer.get(url).content.decode() == "kubeconfig-never-shown"


@pytest.mark.parametrize("how", ["expired", "revoked"])
def test_an_expired_or_revoked_token_gets_401_on_every_api_url(world: World, how: str) -> None:
    token = issue(world.owner, "gone")
    if how == "expired":
        ApiToken.objects.filter(name="gone").update(expires_at=timezone.now())
    else:
        ApiToken.objects.filter(name="gone").update(revoked_at=timezone.now())
    gone = bearer(token)
    checked = 0
    for route in api_routes(world):
        for url in route.urls:
            for method in methods_of(url):
                response = call(gone, method, url, world)
                assert response.status_code == 401, (url, method, response.status_code)
                checked += 1
    assert checked >= len(API)


def test_no_api_answer_shows_a_secret_but_the_kubeconfig_download(world: World) -> None:
    """Every GET of the API as the owner, with secrets in every secret field of the world:
    none comes back, except the kubeconfig from its own download endpoint."""
    owner = bearer(world.owner_token)
    Cluster.objects.filter(pk=world.cluster.pk).update(status="ready")
    answered = 0
    for route in api_routes(world):
        for url in route.urls:
            if "get" not in methods_of(url):
                continue
            response = owner.get(url)
            assert response.status_code < 500, url
            if route.key == "api:kubeconfig":
                assert response.content.decode() == "kubeconfig-never-shown"
                continue
            assert_no_secret(response, url)
            assert world.owner_token not in response.content.decode(), url
            answered += response.status_code == 200
    assert answered >= 12
    # A write's answer shows none either (the run it acted on).
    cancel = post_json(owner, reverse("api:run-cancel", args=[world.cluster.code, world.run.pk]))
    assert cancel.status_code == 202, cancel.content
    assert_no_secret(cancel, "cancel")
