"""The REST API: schema, tokens (scope, expiry, revocation, audit), the wizard's rules on
create, one error shape, pagination, throttling, the browser's session with CSRF."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import yaml
from django.core.cache import cache
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from clusters.interface import tokens
from clusters.k3s.kubeconfig import token_claims
from clusters.models import (
    ApiToken,
    AuditAction,
    AuditEvent,
    CloudAccount,
    Cluster,
    ClusterStatus,
    Run,
    RunKind,
)
from sandbox.aliyun.testing import Emulator
from sandbox.k3s.artifacts import ArtifactServer
from tests.support.api import bearer, issue, post_json
from tests.support.factories import make_cluster, make_user
from tests.support.kube_api import live_kube_api
from tests.ui.wizard_data import openssh_key

pytestmark = pytest.mark.django_db


# --- the schema and its docs ----------------------------------------------------------------


def test_the_openapi_schema_validates_with_no_warning(tmp_path: Any) -> None:
    """drf-spectacular's own validation (OpenAPI 3 JSON schema), warnings fail it too."""
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    text = out.read_text()
    assert "/api/v1/clusters/{code}/runs/{run_id}/steps/{step_id}/log/" in text
    assert "bearerAuth" in text


def test_swagger_ui_and_redoc_are_served_by_the_panel_with_no_cdn(client: Client) -> None:
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200 and b"openapi: 3" in schema.content
    for url in ("/api/v1/docs/", "/api/v1/redoc/"):
        page = client.get(url).content.decode()
        assert "/static/drf_spectacular_sidecar/" in page, url
        assert "cdn." not in page and "unpkg" not in page, url
    asset = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert asset.status_code == 200


# --- tokens: issued once, hashed, scoped, expiring, revocable, audited ---------------------------


def test_a_token_is_shown_once_stored_as_a_digest_and_works_until_revoked() -> None:
    user = make_user("ops")
    page = Client()
    page.force_login(user)
    answer = page.post(reverse("clusters:api-tokens"),
                       {"name": "ci", "scope": "read", "lifetime": "30"})
    html = answer.content.decode()
    token = ApiToken.objects.get(user=user)
    value = html.split('data-token>')[1].split("<")[0]
    assert value.startswith("pnl_") and token.digest == tokens.digest(value)
    assert value not in str(list(ApiToken.objects.values()))  # only the digest is stored
    assert value not in page.get(reverse("clusters:api-tokens")).content.decode()
    assert AuditEvent.objects.filter(action=AuditAction.API_TOKEN_CREATE, user=user).exists()

    me = bearer(value).get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json() == {"username": "ops", "token": "ci", "scope": "read",
                         "expires_at": me.json()["expires_at"]}

    page.post(reverse("clusters:api-token-revoke", args=[token.pk]))
    refused = bearer(value).get("/api/v1/me/")
    assert refused.status_code == 401
    assert refused.json()["code"] == "authentication_failed"
    assert refused["WWW-Authenticate"].startswith("Bearer")
    assert AuditEvent.objects.filter(action=AuditAction.API_TOKEN_REVOKE).count() == 1


def test_an_expired_or_unknown_token_or_none_at_all_is_401() -> None:
    user = make_user()
    expired = issue(user, "old")
    ApiToken.objects.filter(name="old").update(expires_at=timezone.now() - timedelta(seconds=1))
    for headers in ({"HTTP_AUTHORIZATION": f"Bearer {expired}"},
                    {"HTTP_AUTHORIZATION": "Bearer pnl_nonsense"},
                    {"HTTP_AUTHORIZATION": "Bearer"}, {}):
        response = Client(**headers).get("/api/v1/clusters/")
        assert response.status_code == 401, headers
        assert set(response.json()) == {"detail", "code"}


def test_token_use_is_audited_once_a_day_and_every_write_names_the_token() -> None:
    user = make_user()
    cluster = make_cluster(owner=user, nodes=1, status=ClusterStatus.READY)
    api = bearer(issue(user, "deployer"))
    for _ in range(5):
        assert api.get("/api/v1/clusters/").status_code == 200
    used = AuditEvent.objects.filter(action=AuditAction.API_TOKEN_USE)
    assert used.count() == 1 and used.get().details["path"] == "/api/v1/clusters/"
    assert used.get().details["api_token"] == "deployer"
    assert ApiToken.objects.get().last_used_at is not None

    response = post_json(api, f"/api/v1/clusters/{cluster.code}/kubeconfig/renew/")
    assert response.status_code == 202, response.json()
    renew = AuditEvent.objects.get(action=AuditAction.KUBECONFIG_RENEW)
    assert renew.details["api_token"] == "deployer" and renew.cluster == cluster
    assert response.json()["run"]["kind"] == RunKind.RENEW_KUBECONFIG
    assert response["Location"] == response.json()["run_url"]

    # Tomorrow (as the token remembers it): one more "used" row.
    ApiToken.objects.update(audited_on=timezone.now().date() - timedelta(days=1))
    api.get("/api/v1/clusters/")
    assert used.count() == 2


def test_a_refused_operation_is_409_with_the_operations_sentence() -> None:
    user = make_user()
    cluster = make_cluster(owner=user, nodes=1, status=ClusterStatus.PROVISIONING)
    response = post_json(bearer(issue(user)), f"/api/v1/clusters/{cluster.code}/upgrade/",
                         {"version": "v1.33.1+k3s1"})
    assert response.status_code in (400, 409)
    assert response.json()["code"] in ("invalid", "refused")
    destroy = post_json(bearer(issue(user, "two")), f"/api/v1/clusters/{cluster.code}/destroy/",
                        {"confirm_name": "not-it"})
    assert destroy.status_code == 400
    assert destroy.json()["fields"] == {"confirm_name": [
        "Type the cluster's name to confirm that it may be destroyed."]}
    assert not Run.objects.filter(kind=RunKind.DESTROY).exists()


def test_an_unknown_api_path_is_a_json_404(client: Client) -> None:
    response = client.post("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


def test_every_list_is_paged() -> None:
    user = make_user()
    for index in range(3):
        make_cluster(owner=user, name=f"c{index}")
    api = bearer(issue(user))
    page = api.get("/api/v1/clusters/?page_size=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    assert len(api.get(page["next"]).json()["results"]) == 1


def test_throttling_is_per_token(settings: Any) -> None:
    settings.PANEL_API_REQUESTS_PER_MINUTE = 3
    cache.clear()
    user = make_user()
    first, second = bearer(issue(user, "a")), bearer(issue(user, "b"))
    statuses = [first.get("/api/v1/me/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    throttled = first.get("/api/v1/me/")
    assert throttled.json()["code"] == "throttled" and "Retry-After" in throttled
    assert second.get("/api/v1/me/").status_code == 200  # the other token has its own budget


def test_the_browsers_session_works_with_csrf() -> None:
    user = make_user()
    cluster = make_cluster(owner=user, nodes=1, status=ClusterStatus.READY)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.get("/api/v1/clusters/").status_code == 200
    url = f"/api/v1/clusters/{cluster.code}/kubeconfig/renew/"
    refused = post_json(browser, url)
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    browser.get(reverse("clusters:dashboard"))  # sets the CSRF cookie, as a page does
    token = browser.cookies["csrftoken"].value
    assert post_json(browser, url, HTTP_X_CSRFTOKEN=token).status_code == 202


# --- create: the wizard's own rules and messages -------------------------------------------------


def spec(cloud: Emulator, account: CloudAccount, artifacts: ArtifactServer, **over: Any) -> dict:
    vswitch = cloud.vswitch
    base = vswitch["cidr"].rsplit(".", 1)[0]
    value = {
        "name": "api-prod", "cloud_account": account.pk, "region": cloud.vpc["region_id"],
        "network": {"zone": vswitch["zone_id"], "vpc": cloud.vpc["vpc_id"],
                    "vswitch": vswitch["vswitch_id"]},
        "datastore": {"kind": "rds", "rds_engine_version": "8.0",
                      "rds_instance_class": "mysql.n2.medium.2c", "rds_storage_gb": 20},
        "hosts": [{"role": "server", "private_ip": f"{base}.11", "auth": "password",
                   "password": "s3cret-pass"},
                  {"role": "server", "private_ip": f"{base}.12", "private_key": openssh_key()},
                  {"role": "agent", "private_ip": f"{base}.13", "auth": "password",
                   "password": "s3cret-pass"}],
        "k3s": {"version": "v1.32.5+k3s1", "install_source": "custom",
                "install_base_url": artifacts.base_url, "extra_tls_sans": ["k8s.example.com"]},
        "billing_ack": True,
    }
    value.update(over)
    return value


@pytest.fixture
def account(cloud: Emulator) -> CloudAccount:
    return CloudAccount.objects.create(owner=make_user("ops"), name="main",
                                       access_key_id=cloud.access_key_id,
                                       access_key_secret=cloud.access_key_secret,
                                       default_region=cloud.vpc["region_id"])


def test_create_takes_the_wizards_fields_and_answers_202_with_the_run(
        cloud: Emulator, artifacts: ArtifactServer, account: CloudAccount) -> None:
    api = bearer(issue(account.owner))
    body = spec(cloud, account, artifacts)
    dry = post_json(api, "/api/v1/clusters/?dry_run=1", body)
    assert dry.status_code == 200 and dry.json()["valid"] is True, dry.json()
    billed = dry.json()["billed"]
    assert [item["what"] for item in billed["items"]] == [
        "RDS MySQL instance (pay-as-you-go)",
        "CLB instance (pay-as-you-go, pay-by-LCU), TCP listener on 6443"]
    assert all(item["monthly"] > 0 for item in billed["items"]), billed
    assert not Cluster.objects.exists()

    response = post_json(api, "/api/v1/clusters/", body)
    assert response.status_code == 202, response.json()
    cluster = Cluster.objects.get(owner=account.owner)
    answer = response.json()
    assert answer["cluster"]["id"] == str(cluster.code)
    assert answer["run"]["kind"] == "create" and answer["run_url"].endswith(
        f"/runs/{answer['run']['id']}/")
    assert (cluster.name, cluster.zone, cluster.vswitch_id) == (
        "api-prod", cloud.vswitch["zone_id"], cloud.vswitch["vswitch_id"])
    assert cluster.extra_tls_sans == ["k8s.example.com"] and cluster.secrets_encryption
    assert cluster.nodes.count() == 3 and cluster.status == ClusterStatus.PROVISIONING
    assert "s3cret-pass" not in response.content.decode()
    assert AuditEvent.objects.get(action=AuditAction.CLUSTER_CREATE).details["api_token"] == "ci"

    # What `clusters show -o yaml` prints is a spec create accepts again (secrets aside).
    shown = api.get(f"/api/v1/clusters/{cluster.code}/").json()["spec"]
    shown["name"] = "api-copy"
    for host in shown["hosts"]:
        host.update({"auth": "password", "password": "s3cret-pass"})
    again = post_json(api, "/api/v1/clusters/?dry_run=1", shown)
    assert again.status_code == 200, again.json()


def test_create_refuses_what_the_wizard_refuses_with_its_messages_by_field(
        cloud: Emulator, artifacts: ArtifactServer, account: CloudAccount) -> None:
    api = bearer(issue(account.owner))
    make_cluster(owner=account.owner, name="taken")
    response = post_json(api, "/api/v1/clusters/", spec(cloud, account, artifacts, name="taken"))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert response.json()["fields"] == {"name": ["You already have a cluster called taken."]}
    body = spec(cloud, account, artifacts)
    body["network"]["zone"] = cloud.vpc["vswitches"][1]["zone_id"]
    fields = post_json(api, "/api/v1/clusters/", body).json()["fields"]
    assert "is in zone" in fields["network.vswitch"][0]

    body = spec(cloud, account, artifacts, billing_ack=False)
    body["hosts"][1]["private_key"] = "not a key"
    body["hosts"][2]["auth"] = "generated"
    body["datastore"]["rds_storage_gb"] = 100000
    body["k3s"]["version"] = "v9.9.9+k3s1"
    fields = post_json(api, "/api/v1/clusters/", body).json()["fields"]
    assert fields["hosts.1.private_key"]
    assert fields["hosts.2.auth"][0].startswith("Log in with a private key")
    assert "GB of storage" in fields["datastore.rds_storage_gb"][0]
    assert "does not exist at" in fields["k3s.version"][0]
    assert fields["billing_ack"] == ["This field is required."]
    body = spec(cloud, account, artifacts)
    body["hosts"][0]["private_ip"] = "10.99.0.1"
    fields = post_json(api, "/api/v1/clusters/", body).json()["fields"]
    assert fields == {"hosts.0.private_ip": [
        f"10.99.0.1 is outside the VPC's range {cloud.vpc['cidr']}."]}
    assert not Cluster.objects.exclude(name="taken").exists()


def test_another_users_cloud_account_is_not_a_choice(
        cloud: Emulator, artifacts: ArtifactServer, account: CloudAccount) -> None:
    stranger = make_user("stranger")
    body = spec(cloud, account, artifacts)
    fields = post_json(bearer(issue(stranger)), "/api/v1/clusters/", body).json()["fields"]
    assert "cloud_account" in fields
    assert bearer(issue(stranger, "x")).get(
        f"/api/v1/cloud-accounts/{account.pk}/network/").status_code == 404


def test_live_choices_are_the_wizards(cloud: Emulator, artifacts: ArtifactServer,
                                      account: CloudAccount) -> None:
    api = bearer(issue(account.owner))
    base = f"/api/v1/cloud-accounts/{account.pk}"
    regions = api.get(f"{base}/regions/").json()
    assert cloud.vpc["region_id"] in {r["region_id"] for r in regions}
    network = api.get(f"{base}/network/").json()
    assert cloud.vswitch["vswitch_id"] in {v["vswitch_id"] for v in network["vswitches"]}
    assert cloud.vpc["vpc_id"] in {v["vpc_id"] for v in network["vpcs"]}
    # NLB's own DescribeZones: where an NLB's two zones may be (every seeded zone here).
    assert network["nlb_zones"] == [s["zone_id"] for s in cloud.vpc["vswitches"]]
    rds = api.get(f"{base}/rds/?zone={cloud.vswitch['zone_id']}&version=8.0").json()
    assert "mysql.n2.medium.2c" in {c["instance_class"] for c in rds["classes"]}
    k3s = api.get(f"/api/v1/k3s-versions/?version=v1.32.5%2Bk3s1&install_source=custom"
                  f"&install_base_url={artifacts.base_url}")
    assert k3s.status_code == 200 and k3s.json()["exists"] is True, k3s.json()
    missing = api.get(f"/api/v1/k3s-versions/?version=v9.9.9%2Bk3s1&install_source=custom"
                      f"&install_base_url={artifacts.base_url}")
    assert missing.status_code == 400 and "does not exist" in missing.json()["fields"][
        "version"][0]


def test_a_new_cloud_account_secret_is_taken_once_and_never_returned(cloud: Emulator) -> None:
    user = make_user()
    api = bearer(issue(user))
    response = post_json(api, "/api/v1/cloud-accounts/", {
        "name": "main", "access_key_id": cloud.access_key_id,
        "access_key_secret": cloud.access_key_secret, "default_region": cloud.vpc["region_id"]})
    assert response.status_code == 201, response.json()
    assert cloud.access_key_secret not in response.content.decode()
    assert CloudAccount.objects.get(owner=user).access_key_secret == cloud.access_key_secret
    listed = api.get("/api/v1/cloud-accounts/").content.decode()
    assert cloud.access_key_secret not in listed and cloud.access_key_id in listed
    wrong = post_json(api, "/api/v1/cloud-accounts/", {
        "name": "bad", "access_key_id": cloud.access_key_id, "access_key_secret": "nope"})
    assert wrong.status_code == 400 and "access_key_secret" in wrong.json()["fields"]


def test_day2_operations_use_the_pages_forms_and_rules() -> None:
    user = make_user()
    cluster = make_cluster(owner=user, nodes=2, status=ClusterStatus.READY,
                           k3s_version="v1.32.5+k3s1")
    api = bearer(issue(user))
    nodes = f"/api/v1/clusters/{cluster.code}/nodes/"
    taken = cluster.nodes.first()
    bad = post_json(api, nodes, {"role": "server", "private_ip": taken.private_ip,
                                 "auth": "password", "password": "pw"})
    assert bad.status_code == 400
    assert bad.json()["fields"] == {"private_ip": [
        f"{taken.private_ip} is already a node of this cluster."]}
    added = post_json(api, nodes, {"role": "agent", "private_ip": "10.0.0.77",
                                   "auth": "password", "password": "pw-never-shown"})
    assert added.status_code == 202, added.json()
    assert added.json()["run"]["kind"] == RunKind.ADD_NODE
    assert "pw-never-shown" not in added.content.decode() + api.get(nodes).content.decode()
    assert AuditEvent.objects.get(action=AuditAction.NODE_ADD).details["private_ip"] == \
        "10.0.0.77"

    # One run at a time: the add is still running, so an upgrade is refused with the
    # operations' sentence, and nothing is started.
    upgrade = post_json(api, f"/api/v1/clusters/{cluster.code}/upgrade/",
                        {"version": "v1.33.1+k3s1"})
    assert upgrade.status_code in (400, 409), upgrade.json()
    assert Run.objects.filter(cluster=cluster).count() == 1

    run = Run.objects.get(cluster=cluster)
    retry = post_json(api, f"/api/v1/clusters/{cluster.code}/runs/{run.pk}/retry/")
    assert retry.status_code == 409
    assert retry.json() == {"detail": "Only a failed or cancelled run can be retried.",
                            "code": "refused"}
    assert AuditEvent.objects.filter(action=AuditAction.RUN_RETRY_REFUSED).count() == 1
    detail = api.get(f"/api/v1/clusters/{cluster.code}/runs/{run.pk}/").json()
    assert detail["steps"] and detail["retry_refusal"] is None
    log = api.get(f"/api/v1/clusters/{cluster.code}/runs/{run.pk}/steps/"
                  f"{detail['steps'][0]['id']}/log/?after=0").json()
    assert log["lines"] == [] and log["next"] == 0


def test_a_postgresql_spec_is_checked_against_what_rds_sells_of_postgresql(
        cloud: Emulator, artifacts: ArtifactServer, account: CloudAccount) -> None:
    """The API's create and its live choices ask RDS about the chosen engine, as the wizard's
    page does: a PostgreSQL class is offered and accepted, not refused as an unknown MySQL one."""
    api = bearer(issue(account.owner))
    base = f"/api/v1/cloud-accounts/{account.pk}"
    zone = cloud.vswitch["zone_id"]
    choices = api.get(f"{base}/rds/?zone={zone}&engine=PostgreSQL")
    assert choices.status_code == 200, choices.json()
    assert "17.0" in choices.json()["versions"]
    classes = {c["instance_class"] for c in choices.json()["classes"]}
    assert classes and all(name.startswith("pg.") for name in classes), classes
    assert api.get(f"{base}/rds/?zone={zone}&engine=Oracle").json()["fields"] == {
        "engine": ["Choose MySQL or PostgreSQL."]}

    body = spec(cloud, account, artifacts)
    body["datastore"] = {"kind": "rds_postgresql", "rds_engine_version": "17.0",
                         "rds_instance_class": sorted(classes)[0], "rds_storage_gb": 20}
    dry = post_json(api, "/api/v1/clusters/?dry_run=1", body)
    assert dry.status_code == 200 and dry.json()["valid"] is True, dry.json()
    assert dry.json()["billed"]["items"][0]["what"].startswith("RDS PostgreSQL"), dry.json()


def test_an_nlb_and_postgresql_spec_is_created_and_shown_back_as_it_was_given(
        cloud: Emulator, artifacts: ArtifactServer, account: CloudAccount) -> None:
    """The load balancer type, an NLB's second zone and the datastore choice travel through
    the API both ways: create takes them (the wizard's rules), `show`'s spec names them again."""
    api = bearer(issue(account.owner))
    first, second = cloud.vpc["vswitches"][0], cloud.vpc["vswitches"][1]
    body = spec(cloud, account, artifacts)
    body["network"] = {"zone": first["zone_id"], "vpc": cloud.vpc["vpc_id"],
                       "vswitch": first["vswitch_id"], "load_balancer_kind": "nlb",
                       "nlb_zone2": first["zone_id"], "nlb_vswitch2": second["vswitch_id"]}
    refused = post_json(api, "/api/v1/clusters/?dry_run=1", body)
    assert refused.status_code == 400, refused.json()
    assert "other than the first" in " ".join(refused.json()["fields"]["network.nlb_zone2"])

    body["network"]["nlb_zone2"] = second["zone_id"]
    pg = api.get(f"/api/v1/cloud-accounts/{account.pk}/rds/?zone={first['zone_id']}"
                 f"&engine=PostgreSQL").json()
    body["datastore"] = {"kind": "rds_postgresql", "rds_engine_version": "17.0",
                         "rds_instance_class": pg["classes"][0]["instance_class"],
                         "rds_storage_gb": 20}
    response = post_json(api, "/api/v1/clusters/", body)
    assert response.status_code == 202, response.json()
    cluster = Cluster.objects.get(owner=account.owner)
    assert (cluster.load_balancer_kind, cluster.datastore_engine) == ("nlb", "postgresql")
    shown = api.get(f"/api/v1/clusters/{cluster.code}/").json()
    assert shown["load_balancer_kind"] == "nlb" and shown["datastore_engine"] == "postgresql"
    assert shown["spec"]["network"]["nlb_vswitch2"] == second["vswitch_id"]
    assert shown["spec"]["network"]["load_balancer_kind"] == "nlb"
    assert shown["spec"]["datastore"]["kind"] == "rds_postgresql"
# --- personal kubeconfigs ------------------------------------------------------------------------


def test_personal_kubeconfigs_issue_list_and_revoke_through_the_api(tmp_path: Any) -> None:
    """Issue (the kubeconfig once, 201, no-store, audited with the token's name), list (IDs,
    never the token), revoke; a read-only token may list but not issue; the stand-in API's
    ServiceAccount comes and goes with it."""
    user = make_user("ops")
    with live_kube_api(tmp_path) as api:
        cluster = make_cluster(owner=user, status=ClusterStatus.READY,
                               kubeconfig=api.kubeconfig)
        base = f"/api/v1/clusters/{cluster.code}/kube-credentials/"
        writer, reader = bearer(issue(user, "ci")), bearer(issue(user, "ro", scope="read"))
        assert post_json(reader, base, {"lifetime": "8h"}).status_code == 403
        bad = post_json(writer, base, {"lifetime": "365d"})
        assert bad.status_code == 400 and "lifetime" in bad.json()["fields"]

        answer = post_json(writer, base, {"lifetime": "8h"})
        assert answer.status_code == 201, answer.content
        assert answer["Cache-Control"] == "no-store"
        body = answer.json()
        token = yaml.safe_load(body["kubeconfig"])["users"][0]["user"]["token"]
        credential = body["credential"]
        assert credential["status"] == "active" and credential["revocable"]
        assert answer["Location"] == f"{base}{credential['id']}/"
        assert token_claims(token)["jti"] == credential["token_id"]
        listed = reader.get(base + "?live=1")
        assert listed.status_code == 200 and token not in listed.content.decode()
        assert [row["id"] for row in listed.json()["results"]] == [credential["id"]]
        assert reader.get(f"{base}{credential['id']}/").json()["name"] == credential["name"]
        assert len(api.kine.list("/registry/serviceaccounts/kube-system/")) == 1

        revoke = f"{base}{credential['id']}/revoke/"
        assert post_json(reader, revoke).status_code == 403
        revoked = post_json(writer, revoke)
        assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
        assert api.kine.list("/registry/serviceaccounts/kube-system/") == []
        again = post_json(writer, revoke)
        assert again.status_code == 409 and "already revoked" in again.json()["detail"]
        assert reader.get(base + "?live=1").json()["results"] == []

    events = AuditEvent.objects.filter(action__in=[AuditAction.KUBE_CREDENTIAL_ISSUE,
                                                   AuditAction.KUBE_CREDENTIAL_REVOKE])
    assert sorted(e.action for e in events) == [AuditAction.KUBE_CREDENTIAL_ISSUE,
                                                AuditAction.KUBE_CREDENTIAL_REVOKE]
    for event in events:
        assert event.details["credential"] == credential["id"]
        assert token not in str(event.details)
