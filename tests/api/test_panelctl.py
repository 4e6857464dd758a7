"""panelctl against the panel served on a real port (live_server): HTTP only."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from django.utils import timezone

from clusters.core.redaction import Redactor
from clusters.engine import pipeline
from clusters.engine.steplog import LogLimits, StepLog
from clusters.models import (
    ApiToken,
    CloudAccount,
    CloudResource,
    Cluster,
    Node,
    Run,
    RunKind,
    RunStatus,
    StepStatus,
)
from panel.celery import app as celery_app
from panelctl import kubeconfig
from panelctl.cli import main
from panelctl.client import Client
from panelctl.watch import _print_log
from sandbox.aliyun.testing import Emulator
from sandbox.k3s.artifacts import ArtifactServer
from tests.api.test_api_instances import bought_cluster
from tests.support.api import issue
from tests.support.factories import make_cluster, make_user
from tests.support.kube_api import live_kube_api
from tests.ui.wizard_data import openssh_key

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("PANELCTL_CONFIG", str(tmp_path / "panelctl" / "config.json"))
    monkeypatch.delenv("PANELCTL_TOKEN", raising=False)
    monkeypatch.delenv("PANELCTL_URL", raising=False)
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Any:
        return runner.invoke(main, list(args), input=input, catch_exceptions=False)

    return run


@pytest.fixture
def quiet_queue(task_queue: str) -> Any:
    """A create enqueues its run on this session's own queue; no worker takes it here."""
    yield task_queue
    celery_app.control.purge()


def logged_in(cli: Any, live_server: Any, user: Any, scope: str = "write") -> None:
    token = issue(user, f"cli-{scope}", scope=scope)
    result = cli("login", "--url", live_server.url, input=token + "\n")
    assert result.exit_code == 0, result.output


def test_the_client_imports_nothing_of_the_panel_nor_django() -> None:
    code = ("import sys, panelctl.cli, panelctl.watch, panelctl.kubeconfig; "
            "bad = [m for m in sys.modules if m.split('.')[0] in "
            "('django', 'clusters', 'panel', 'sandbox', 'rest_framework')]; "
            "assert not bad, bad")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr


def test_login_keeps_the_token_in_a_0600_file_and_a_bad_one_is_refused(
        cli: Any, live_server: Any, tmp_path: Path) -> None:
    user = make_user("ops")
    logged_in(cli, live_server, user)
    stored = tmp_path / "panelctl" / "config.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert "logged in" in cli("login", "--url", live_server.url,
                              input=issue(user, "x") + "\n").output
    refused = cli("login", "--url", live_server.url, input="pnl_wrong\n")
    assert refused.exit_code == 1 and "not valid" in refused.output


def test_clusters_create_from_yaml_with_secrets_from_files_and_env_then_show_feeds_back(  # noqa: PLR0917
        cli: Any, live_server: Any, cloud: Emulator, artifacts: ArtifactServer,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quiet_queue: str,
) -> None:
    user = make_user("ops")
    account = CloudAccount.objects.create(owner=user, name="main",
                                          access_key_id=cloud.access_key_id,
                                          access_key_secret=cloud.access_key_secret,
                                          default_region=cloud.vpc["region_id"])
    logged_in(cli, live_server, user)
    key = tmp_path / "id_ed25519"
    key.write_text(openssh_key())
    monkeypatch.setenv("HOST_PW", "s3cret-pass")
    base = cloud.vswitch["cidr"].rsplit(".", 1)[0]
    spec = {
        "name": "cli-prod", "cloud_account": account.pk, "region": cloud.vpc["region_id"],
        "network": {"zone": cloud.vswitch["zone_id"], "vpc": cloud.vpc["vpc_id"],
                    "vswitch": cloud.vswitch["vswitch_id"]},
        "datastore": {"kind": "rds", "rds_instance_class": "mysql.n2.medium.2c"},
        "hosts": [{"role": "server", "private_ip": f"{base}.21", "private_key_file": str(key)},
                  {"role": "server", "private_ip": f"{base}.22", "auth": "password",
                   "password_env": "HOST_PW"},
                  {"role": "agent", "private_ip": f"{base}.23", "private_key_file": str(key)}],
        "k3s": {"version": "v1.32.5+k3s1", "install_source": "custom",
                "install_base_url": artifacts.base_url},
        "billing_ack": True,
    }
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert "the spec is valid" in cli("clusters", "create", "-f", str(path), "--dry-run").output
    created = cli("clusters", "create", "-f", str(path))
    assert created.exit_code == 0, created.output
    cluster = Cluster.objects.get(name="cli-prod")
    assert f"cluster cli-prod ({cluster.code}) created" in created.output
    assert cluster.nodes.get(private_ip=f"{base}.22").ssh_password == "s3cret-pass"
    assert cluster.nodes.get(private_ip=f"{base}.21").ssh_private_key.strip() == \
        key.read_text().strip()

    listed = cli("clusters", "list").output
    assert "cli-prod" in listed and "provisioning" in listed
    shown = cli("clusters", "show", "cli-prod", "-o", "yaml").output
    assert "s3cret-pass" not in shown and "OPENSSH" not in shown
    again = yaml.safe_load(shown)
    again["name"] = "cli-copy"
    for host in again["hosts"]:
        host.pop("auth")  # a key for all of them, from --ssh-key-file
    path.write_text(yaml.safe_dump(again))
    fed = cli("clusters", "create", "-f", str(path), "--dry-run", "--ssh-key-file", str(key))
    assert fed.exit_code == 0, fed.output

    # The wizard's messages, by field, and exit 1.
    again["hosts"][0]["private_ip"] = "10.99.0.1"
    path.write_text(yaml.safe_dump(again))
    bad = cli("clusters", "create", "-f", str(path), "--ssh-key-file", str(key))
    assert bad.exit_code == 1
    assert "hosts.0.private_ip: 10.99.0.1 is outside the VPC's range" in bad.output


def test_a_read_only_token_cannot_destroy_and_the_cli_says_why(cli: Any,
                                                               live_server: Any) -> None:
    user = make_user()
    make_cluster(owner=user, name="keep", nodes=1, status="ready")
    logged_in(cli, live_server, user, scope="read")
    result = cli("clusters", "destroy", "keep", "--confirm", "keep")
    assert result.exit_code == 1 and "read-only" in result.output and "HTTP 403" in result.output
    assert ApiToken.objects.filter(scope="read").exists()


def test_a_read_only_token_cannot_get_the_admin_kubeconfig_and_the_cli_says_why(
        cli: Any, live_server: Any, tmp_path: Path) -> None:
    user = make_user()
    make_cluster(owner=user, name="watch-only", nodes=1, status="ready",
                 kubeconfig="apiVersion: v1\nkind: Config\nclusters: []\n")
    logged_in(cli, live_server, user, scope="read")
    out = tmp_path / "admin.yaml"
    result = cli("kubeconfig", "get", "watch-only", "-o", str(out))
    assert result.exit_code == 1 and "HTTP 403" in result.output
    assert "needs a read-write token" in result.output
    assert not out.exists()


def test_runs_watch_prints_the_steps_and_their_logs_and_exits_by_the_outcome(
        cli: Any, live_server: Any) -> None:
    user = make_user()
    cluster = make_cluster(owner=user, name="watched", nodes=1)
    logged_in(cli, live_server, user)
    for outcome, code in ((StepStatus.SUCCEEDED, 0), (StepStatus.FAILED, 1)):
        run = pipeline.create_run(cluster, RunKind.TEST, [
            pipeline.StepSpec("a", "First step", "test.work"),
            pipeline.StepSpec("b", "Second step", "test.work", depends_on=("a",))],
            start=False)
        first, second = run.steps.order_by("position")
        first.status = StepStatus.SUCCEEDED
        first.save()
        first.log_lines.create(seq=1, time=first.updated_at, text="hello from a")
        second.status, second.error = outcome, "it broke" if code else ""
        second.save()
        run.status = "succeeded" if code == 0 else "failed"
        run.save()
        result = cli("runs", "watch", "watched", "--run", str(run.pk), "--interval", "0.1")
        assert result.exit_code == code, result.output
        assert "[2/2] First step: succeeded" in result.output
        assert "    | hello from a" in result.output
        assert f"run #{run.pk} (test) {run.status}" in result.output
        if code:
            assert "error: it broke" in result.output


def test_kubeconfig_merge_keeps_other_entries_and_a_backup(tmp_path: Path) -> None:
    target = tmp_path / "config"
    target.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "other",
        "clusters": [{"name": "other", "cluster": {"server": "https://o:6443"}},
                     {"name": "shop", "cluster": {"server": "https://old:6443"}}],
        "users": [{"name": "other", "user": {"token": "t"}}],
        "contexts": [{"name": "other", "context": {"cluster": "other", "user": "other"}}]}))
    new = yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "shop",
        "clusters": [{"name": "shop", "cluster": {"server": "https://new:6443"}}],
        "users": [{"name": "shop", "user": {"client-key-data": "x"}}],
        "contexts": [{"name": "shop", "context": {"cluster": "shop", "user": "shop"}}]})
    before = target.read_text()
    backup = kubeconfig.merge_into(target, new)
    assert backup is not None and backup.read_text() == before
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    merged = yaml.safe_load(target.read_text())
    assert merged["current-context"] == "other"
    assert {c["name"]: c["cluster"]["server"] for c in merged["clusters"]} == {
        "other": "https://o:6443", "shop": "https://new:6443"}
    assert [u["name"] for u in merged["users"]] == ["other", "shop"]
    target.write_text("not: [a, kubeconfig")
    with pytest.raises(kubeconfig.MergeError):
        kubeconfig.merge_into(target, new)
    assert target.read_text() == "not: [a, kubeconfig"


def test_nodes_add_takes_the_password_from_the_environment_and_kubeconfig_get_writes_0600(
        cli: Any, live_server: Any, quiet_queue: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    user = make_user()
    cluster = make_cluster(owner=user, name="grow", nodes=1, status="ready",
                           kubeconfig="apiVersion: v1\nkind: Config\nclusters: []\n")
    logged_in(cli, live_server, user)
    monkeypatch.setenv("NODE_PW", "node-pw-never-on-the-line")
    added = cli("nodes", "add", "grow", "--role", "agent", "--private-ip", "10.0.0.88",
                "--password-env", "NODE_PW")
    assert added.exit_code == 0, added.output
    assert "started run #" in added.output and "node-pw" not in added.output
    assert cluster.nodes.get(private_ip="10.0.0.88").ssh_password == "node-pw-never-on-the-line"
    busy = cli("upgrade", "grow", "v1.33.1+k3s1")
    assert busy.exit_code == 1 and "error:" in busy.output
    out = tmp_path / "grow.yaml"
    assert cli("kubeconfig", "get", "grow", "-o", str(out)).exit_code == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and "kind: Config" in out.read_text()
    missing = cli("kubeconfig", "get", "nope")
    assert missing.exit_code == 1 and "no cluster named nope" in missing.output


def test_personal_kubeconfig_get_list_and_revoke(cli: Any, live_server: Any,
                                                 tmp_path: Path) -> None:
    user = make_user()
    with live_kube_api(tmp_path) as api:
        make_cluster(owner=user, name="shop", status="ready", kubeconfig=api.kubeconfig)
        logged_in(cli, live_server, user)
        out = tmp_path / "mine.yaml"
        got = cli("kubeconfig", "get", "shop", "--personal", "--lifetime", "8h", "-o", str(out))
        assert got.exit_code == 0, got.output
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        token = yaml.safe_load(out.read_text())["users"][0]["user"]["token"]
        assert token not in got.output and "panelctl kubeconfig revoke shop" in got.output
        listed = cli("kubeconfig", "list", "shop")
        assert listed.exit_code == 0 and "kube-system/panel-" in listed.output
        credential_id = listed.output.splitlines()[1].split()[0]
        revoked = cli("kubeconfig", "revoke", "shop", credential_id)
        assert revoked.exit_code == 0, revoked.output
        assert "refused within seconds" in revoked.output
        assert api.kine.list("/registry/serviceaccounts/kube-system/") == []
        assert "panel-" not in cli("kubeconfig", "list", "shop").output
        assert "revoked" in cli("kubeconfig", "list", "shop", "--all").output
        again = cli("kubeconfig", "revoke", "shop", credential_id)
        assert again.exit_code == 1 and "already revoked" in again.output


def test_watch_says_when_lines_were_trimmed_while_it_followed_and_renders_marker_and_cut(
        live_server: Any) -> None:
    """`runs watch` had printed up to line 15 (past the marker at 6) when lines 16-30 were
    trimmed: it says so, where it skipped from 15 to 31 in silence before; the marker row
    and a cut line are in words (the marker was an empty `|`)."""
    user = make_user()
    cluster = make_cluster(owner=user, name="followed", nodes=1)
    run = pipeline.create_run(cluster, RunKind.TEST, [
        pipeline.StepSpec("work", "Work", "test.work")], start=False)
    step = run.steps.get()
    log = StepLog(step.pk, Redactor([]), max_delay=60,
                  limits=LogLimits(head_lines=5, tail_lines=10, max_line_chars=10))
    for index in range(1, 41):
        log.write(f"line {index}" if index < 40 else "a very long last line")
        if index in (20, 40):
            log.flush()
    client = Client(live_server.url, issue(user, "watch", scope="read"))
    shown: list[str] = []
    cursor = {step.pk: 15}
    _print_log(client, cluster.code, run.pk, {"id": step.pk}, cursor=cursor, echo=shown.append)
    size = sum(len(f"line {i}") for i in range(6, 31))
    assert shown[0] == (f"    [lines 16-30 were trimmed from the stored log while following; "
                        f"it omits 25 lines ({size} bytes) in all]")
    assert shown[1:] == [f"    | line {i}" for i in range(31, 40)] + [
        "    | a very lon [cut 11 characters]"]
    assert cursor[step.pk] == 40
    shown.clear()
    _print_log(client, cluster.code, run.pk, {"id": step.pk}, cursor={}, echo=shown.append)
    assert shown[5] == (f"    [... 25 lines ({size} bytes) omitted here: the stored log keeps "
                        "a step's first and newest lines ...]")
    assert "trimmed" not in "".join(shown)


def test_clusters_create_buys_instances_from_the_command_line_options(  # noqa: PLR0917
        cli: Any, live_server: Any, cloud: Emulator, artifacts: ArtifactServer,
        tmp_path: Path, quiet_queue: str,
) -> None:
    """--servers/--agents/--instance-type/--image/... fill the spec's `instances`: the panel
    checks them as the wizard's "create instances" does, and buys them at create."""
    user = make_user("ops")
    account = CloudAccount.objects.create(owner=user, name="main",
                                          access_key_id=cloud.access_key_id,
                                          access_key_secret=cloud.access_key_secret,
                                          default_region=cloud.vpc["region_id"])
    logged_in(cli, live_server, user)
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump({
        "name": "cli-buy", "cloud_account": account.pk, "region": cloud.vpc["region_id"],
        "network": {"zone": cloud.vswitch["zone_id"], "vpc": cloud.vpc["vpc_id"],
                    "vswitch": cloud.vswitch["vswitch_id"]},
        "datastore": {"kind": "etcd"}, "hosts": [],
        "k3s": {"version": "v1.32.5+k3s1", "install_source": "custom",
                "install_base_url": artifacts.base_url},
        "billing_ack": True}))
    options = ["--servers", "3", "--agents", "2", "--instance-type", "ecs.g7.large",
               "--image", "ubuntu_24_04_x64_20G_alibase_20250722.vhd", "--disk-gb", "80"]
    wrong = cli("clusters", "create", "-f", str(path), "--dry-run",
                *options[:-2], "--disk-gb", "10")
    assert wrong.exit_code == 1 and "instances.system_disk_gb:" in wrong.output
    dry = cli("clusters", "create", "-f", str(path), "--dry-run", *options)
    assert dry.exit_code == 0, dry.output
    assert "would buy: ECS instance a2 (Agent, pay-as-you-go)" in dry.output
    created = cli("clusters", "create", "-f", str(path), *options)
    assert created.exit_code == 0, created.output
    order = Cluster.objects.get(name="cli-buy").instance_order
    assert (order["servers"], order["agents"], order["system_disk_gb"]) == (3, 2, 80)
    shown = yaml.safe_load(cli("clusters", "show", "cli-buy", "-o", "yaml").output)
    assert shown["instances"]["instance_type"] == "ecs.g7.large"


def test_nodes_add_instances_buys_like_the_first_ones_and_remove_can_keep_the_instance(
        cli: Any, live_server: Any, quiet_queue: str) -> None:
    """`nodes add-instances` is the API's …/nodes/instances/ (billing confirmed, or asked);
    `nodes remove --keep-instance` keeps a bought node's instance."""
    user = make_user()
    cluster = bought_cluster(user)
    Cluster.objects.filter(pk=cluster.pk).update(name="bought")
    logged_in(cli, live_server, user)
    declined = cli("nodes", "add-instances", "bought", "--agents", "2", input="n\n")
    assert declined.exit_code == 1 and "nothing was bought" in declined.output
    assert not Run.objects.exists()
    added = cli("nodes", "add-instances", "bought", "--agents", "2", "--confirm-billing")
    assert added.exit_code == 0, added.output
    assert "buying: 2 ECS instances ecs.g7.large" in added.output
    assert "started run #" in added.output
    run = Run.objects.get()
    assert (run.kind, run.params["slots"]) == (RunKind.ADD_NODE, ["a1", "a2"])

    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED, finished_at=timezone.now())
    Cluster.objects.filter(pk=cluster.pk).update(status="ready")
    agent = Node.objects.create(cluster=cluster, role="agent", private_ip="10.0.3.9",
                                ecs_instance_id="i-agent9", ssh_password="pw")
    CloudResource.objects.create(cluster=cluster, kind="ecs_instance_a9",
                                 provider_id="i-agent9", client_token=f"{cluster.code.hex}-a9",
                                 region=cluster.region)
    removed = cli("nodes", "remove", "bought", "10.0.3.9", "--keep-instance")
    assert removed.exit_code == 0, removed.output
    removal = Run.objects.get(kind=RunKind.REMOVE_NODE)
    assert removal.params["keep_instance"] is True
    assert removal.steps.get(key="ecs_instance_delete").args == {
        "node_id": agent.pk, "keep_instances": True}


def test_removing_a_bought_node_asks_before_its_instance_is_released(
        cli: Any, live_server: Any, quiet_queue: str) -> None:
    """`nodes remove` of a node whose instance the panel bought (the API's instance_bought)
    asks before releasing it, as add-instances asks before billing; --yes says it and goes
    on. `add-instances` with nothing to buy is refused before any question."""
    user = make_user()
    cluster = bought_cluster(user)
    Cluster.objects.filter(pk=cluster.pk).update(name="bought")
    logged_in(cli, live_server, user)
    nothing = cli("nodes", "add-instances", "bought")
    assert nothing.exit_code == 2 and "add at least one server or agent" in nothing.output
    assert "Buy 0" not in nothing.output
    agent = Node.objects.create(cluster=cluster, role="agent", private_ip="10.0.3.9",
                                ecs_instance_id="i-agent9", ssh_password="pw")
    CloudResource.objects.create(cluster=cluster, kind="ecs_instance_a9",
                                 provider_id="i-agent9", client_token=f"{cluster.code.hex}-a9",
                                 region=cluster.region)
    declined = cli("nodes", "remove", "bought", "10.0.3.9", input="n\n")
    assert declined.exit_code == 1, declined.output
    assert "ECS instance i-agent9, which the panel bought, is released (deleted)" in (
        declined.output)
    assert "nothing was removed" in declined.output and not Run.objects.exists()
    released = cli("nodes", "remove", "bought", "10.0.3.9", "--yes")
    assert released.exit_code == 0, released.output
    assert "notice: ECS instance i-agent9" in released.output
    removal = Run.objects.get(kind=RunKind.REMOVE_NODE)
    assert removal.params["keep_instance"] is False
    assert removal.steps.get(key="ecs_instance_delete").args["node_id"] == agent.pk


def test_clusters_ssh_key_writes_the_generated_key_to_a_new_private_file(
        cli: Any, live_server: Any, tmp_path: Path) -> None:
    """`clusters ssh-key` is the API's …/ssh-key/: the key in a new file of mode 0600 (never
    over an existing one), audited on the panel's side."""
    from clusters.steps.ecs import generate_key_pair  # noqa: PLC0415

    user = make_user()
    cluster = bought_cluster(user)
    private, public = generate_key_pair("k3s-panel-test")
    Cluster.objects.filter(pk=cluster.pk).update(
        name="keyed", generated_ssh_key=private, generated_ssh_public_key=public)
    logged_in(cli, live_server, user)
    target = tmp_path / "keyed-id_ecdsa"
    wrote = cli("clusters", "ssh-key", "keyed", "-o", str(target))
    assert wrote.exit_code == 0, wrote.output
    assert target.read_text() == private
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert "fingerprint" in wrote.output and private not in wrote.output
    again = cli("clusters", "ssh-key", "keyed", "-o", str(target))
    assert again.exit_code == 2 and "exists already" in again.output
    cluster.refresh_from_db()
    assert cluster.generated_ssh_key_downloaded_at is not None
