"""The commands. Every one talks to the REST API only (panelctl.client)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from panelctl import config, kubeconfig, spec, watch
from panelctl.client import ApiError, Client

F = TypeVar("F", bound=Callable[..., Any])


def handled(function: F) -> F:
    """An API error, a bad spec or a missing login ends the command with its message and
    exit status 1 (2 for a usage error, as click does)."""

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (ApiError, spec.SpecError, config.NotLoggedIn, kubeconfig.MergeError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def client() -> Client:
    settings = config.load()
    return Client(settings.url, settings.token)


def output(data: Any, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(data, indent=2, default=str))
    else:
        click.echo(spec.dump(data).rstrip("\n"))


def table(rows: list[list[Any]], header: list[str]) -> None:
    cells = [header, *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def follow(api: Client, answer: dict[str, Any], cluster_code: str, wait: bool) -> None:
    run = answer["run"]
    click.echo(f"started run #{run['id']} ({run['kind']}); follow it with: panelctl runs "
               f"watch <cluster> --run {run['id']}")
    if wait:
        status = watch.follow(api, cluster_code, run["id"], click.echo)
        sys.exit(0 if status == "succeeded" else 1)


WATCH = click.option("--watch/--no-watch", "wait", default=False,
                     help="Follow the run until it ends (exit 0 on success).")


@click.group()
@click.version_option("1", prog_name="panelctl")
def main() -> None:
    """The K3s HA panel from the command line (its REST API, /api/v1/)."""


# --- login -----------------------------------------------------------------------------------


@main.command()
@click.option("--url", required=True, help="The panel's address, e.g. https://panel.example.com")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False),
              help="Read the token from this file (else PANELCTL_TOKEN, else standard input).")
@handled
def login(url: str, token_file: str | None) -> None:
    """Store the panel's URL and an API token (Account → API tokens) in a 0600 file.

    The token is never taken on the command line: from --token-file, PANELCTL_TOKEN, or typed
    (hidden) / piped on standard input."""
    if token_file:
        token = Path(token_file).read_text().strip()
    elif os.environ.get("PANELCTL_TOKEN"):
        token = os.environ["PANELCTL_TOKEN"].strip()
    elif sys.stdin.isatty():
        token = click.prompt("API token", hide_input=True).strip()
    else:
        token = sys.stdin.readline().strip()
    me = Client(url, token).get("me/")
    where = config.save(config.Settings(url.rstrip("/"), token))
    click.echo(f"logged in to {url} as {me['username']} with token {me['token']} "
               f"({me['scope']}); saved to {where}")


# --- clusters --------------------------------------------------------------------------------


@main.group()
def clusters() -> None:
    """List, show, create and destroy clusters."""


@clusters.command("list")
@click.option("-o", "--output", "fmt", type=click.Choice(["table", "json", "yaml"]),
              default="table")
@handled
def clusters_list(fmt: str) -> None:
    items = client().every("clusters/")
    if fmt != "table":
        output(items, fmt)
        return
    table([[c["name"], c["status"], c["health"], c["k3s_version"] or c["k3s_channel"],
            c["slb_address"], c["region"], c["id"]] for c in items],
          ["NAME", "STATUS", "HEALTH", "K3S", "API", "REGION", "ID"])


@clusters.command("show")
@click.argument("name")
@click.option("-o", "--output", "fmt", type=click.Choice(["table", "json", "yaml"]),
              default="table", help="yaml: the create spec (feed it to `clusters create -f`).")
@handled
def clusters_show(name: str, fmt: str) -> None:
    cluster = client().cluster(name)
    if fmt == "yaml":
        output(cluster["spec"], "yaml")
        return
    if fmt == "json":
        output(cluster, "json")
        return
    for key in ("name", "id", "status", "health", "region", "zone", "vpc_id", "vswitch_id",
                "slb_address", "k3s_version", "datastore_kind", "kubeconfig_expires_at",
                "active_run"):
        click.echo(f"{key + ':':24} {'' if cluster[key] is None else cluster[key]}")
    for reason in cluster.get("health_reasons") or []:
        click.echo(f"  health: {reason}")
    table([[n["name"], n["role"], n["private_ip"], n["status"], n["k3s_version"]]
           for n in cluster["nodes"]], ["NODE", "ROLE", "PRIVATE IP", "STATUS", "K3S"])


@clusters.command("create")
@click.option("-f", "--file", "path", required=True, type=click.File("r"),
              help="cluster.yaml (the API's field names; secrets by *_file / *_env).")
@click.option("--ssh-key-file", type=click.Path(exists=True, dir_okay=False),
              help="The private key of every host with auth: key that names none.")
@click.option("--dry-run", is_flag=True, help="Only check the spec, as the wizard would.")
@click.option("--servers", type=int, help="Instances to buy: servers (instead of hosts).")
@click.option("--agents", type=int, help="Instances to buy: agents.")
@click.option("--instance-type", "instance_type",
              help="ECS instance type the zone sells now, e.g. ecs.g7.large.")
@click.option("--image", "image_id", help="Public image id (Ubuntu LTS, Debian, Alinux 3).")
@click.option("--disk-gb", "system_disk_gb", type=int, help="ESSD system disk, GiB.")
@click.option("--bandwidth", "public_bandwidth_mbps", type=int,
              help="Public bandwidth, Mbit/s (0: no public address).")
@click.option("--key-pair", "key_pair", help="An existing key pair of the region.")
@click.option("--key-pair-private-key-file", "key_pair_private_key_file",
              type=click.Path(exists=True, dir_okay=False),
              help="The private key of --key-pair (read from the file, never an argument).")
@WATCH
@handled
def clusters_create(path: Any, ssh_key_file: str | None, dry_run: bool, wait: bool,
                    **order: Any) -> None:
    """Create a cluster; the same checks as the wizard's (errors name their field). The
    instance options fill the spec's `instances` (the panel buys them instead of hosts)."""
    body = spec.order_instances(spec.load(path.read(), ssh_key_file=ssh_key_file), order)
    api = client()
    if dry_run:
        answer = api.post("clusters/", body, dry_run="1")
        for warning in answer.get("warnings", []):
            click.echo(f"warning: {warning}")
        billed = answer.get("billed") or {}
        for item in billed.get("items", []):
            price = (f"{item['monthly']:.2f} {item['currency']}/month"
                     if item["monthly"] is not None else f"price unknown: {item['problem']}")
            click.echo(f"would buy: {item['what']} ({item['detail']}): {price}")
        if billed.get("monthly_total") is not None:
            partial = (" (without the items whose price is unknown)"
                       if billed.get("monthly_total_incomplete") else "")
            click.echo(f"monthly total (pay-as-you-go): {billed['monthly_total']:.2f} "
                       f"{billed['currency']}{partial}")
        click.echo("the spec is valid")
        return
    answer = api.post("clusters/", body)
    for warning in answer.get("warnings", []):
        click.echo(f"warning: {warning}")
    click.echo(f"cluster {answer['cluster']['name']} ({answer['cluster']['id']}) created")
    follow(api, answer, answer["cluster"]["id"], wait)


@clusters.command("destroy")
@click.argument("name")
@click.option("--confirm", help="The cluster's name again (else you are asked to type it).")
@click.option("--keep-database", is_flag=True, help="Keep the RDS instance.")
@click.option("--keep-instances", is_flag=True,
              help="Keep the ECS instances the panel bought (they stay billed). With a key "
                   "pair the panel generated, download its private key first (panelctl "
                   "clusters ssh-key).")
@WATCH
@handled
def clusters_destroy(name: str, confirm: str | None, keep_database: bool,
                     keep_instances: bool, wait: bool) -> None:
    """Delete everything the cluster bought and take K3s off its hosts."""
    api = client()
    cluster = api.cluster(name)
    typed = confirm if confirm is not None else click.prompt(
        f"Type the cluster's name ({name}) to destroy it")
    answer = api.post(f"clusters/{cluster['id']}/destroy/",
                      {"confirm_name": typed, "keep_database": keep_database,
                       "keep_instances": keep_instances})
    follow(api, answer, cluster["id"], wait)


@clusters.command("ssh-key")
@click.argument("name")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False),
              help="Write the private key here (a new file, mode 0600).")
@handled
def clusters_ssh_key(name: str, out: str) -> None:
    """Download the SSH private key the panel generated for the cluster's instances (user
    root; audited): keeping the instances, at destroy or a node's removal, needs it."""
    target = Path(out).expanduser()
    if target.exists():
        # Never over another key: a private key file is not something to clobber.
        raise click.UsageError(f"{target} exists already; name a new file")
    api = client()
    cluster = api.cluster(name)
    answer = api.post(f"clusters/{cluster['id']}/ssh-key/")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(answer["private_key"])
    click.echo(f"wrote {target} (fingerprint {answer['fingerprint']}); log in as root")


# --- runs ------------------------------------------------------------------------------------


@main.group()
def runs() -> None:
    """A cluster's runs (create, add node, upgrade, destroy, ...)."""


@runs.command("list")
@click.argument("cluster")
@handled
def runs_list(cluster: str) -> None:
    api = client()
    found = api.cluster(cluster)
    table([[r["id"], r["kind"], r["status"], r["created_by"], r["created_at"],
            r["finished_at"]] for r in api.every(f"clusters/{found['id']}/runs/")],
          ["ID", "KIND", "STATUS", "BY", "CREATED", "FINISHED"])


@runs.command("watch")
@click.argument("cluster")
@click.option("--run", "run_id", type=int, help="Default: the active run, else the newest.")
@click.option("--no-logs", is_flag=True, help="Only the steps' progress.")
@click.option("--interval", type=float, default=1.0, show_default=True)
@handled
def runs_watch(cluster: str, run_id: int | None, no_logs: bool, interval: float) -> None:
    """Follow a run with its steps and their logs until it ends; exit 0 if it succeeded."""
    api = client()
    found = api.cluster(cluster)
    if run_id is None:
        run_id = found["active_run"]
    if run_id is None:
        newest = api.get(f"clusters/{found['id']}/runs/", page_size=1)["results"]
        if not newest:
            raise ApiError(404, f"{cluster} has no run", "not_found")
        run_id = newest[0]["id"]
    status = watch.follow(api, found["id"], run_id, click.echo, interval=interval,
                          logs=not no_logs)
    sys.exit(0 if status == "succeeded" else 1)


# --- kubeconfig -------------------------------------------------------------------------------


@main.group("kubeconfig")
def kubeconfig_group() -> None:
    """The cluster's admin kubeconfig, and personal kubeconfigs that can be revoked."""


LIFETIMES = ("1h", "8h", "1d", "7d", "30d")  # the panel's choices (kube_credentials.LIFETIMES)


@kubeconfig_group.command("get")
@click.argument("name")
@click.option("--merge", is_flag=True,
              help="Merge into ~/.kube/config (or $KUBECONFIG), after a backup.")
@click.option("--kubeconfig", "target", type=click.Path(dir_okay=False),
              help="The file to merge into (with --merge).")
@click.option("--use-context", is_flag=True, help="With --merge: make it the current context.")
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False),
              help="Write it to this file (0600) instead of standard output.")
@click.option("--personal", is_flag=True,
              help="A personal kubeconfig instead: a token of its own that `kubeconfig "
                   "revoke` ends (needs a read-write token).")
@click.option("--lifetime", type=click.Choice(LIFETIMES), default="1d", show_default=True,
              help="With --personal: how long its token stays valid.")
@handled
def kubeconfig_get(name: str, merge: bool, target: str | None, use_context: bool,  # noqa: PLR0917
                   out: str | None, personal: bool, lifetime: str) -> None:
    """Download the admin kubeconfig, or issue a personal one (both are audited)."""
    api = client()
    cluster = api.cluster(name)
    if personal:
        issued = api.post(f"clusters/{cluster['id']}/kube-credentials/", {"lifetime": lifetime})
        text = issued["kubeconfig"]
        credential = issued["credential"]
        click.echo(f"issued {credential['namespace']}/{credential['name']} (id "
                   f"{credential['id']}), valid until {credential['expires_at']}; end it with: "
                   f"panelctl kubeconfig revoke {name} {credential['id']}", err=True)
    else:
        text = api.request("GET", f"clusters/{cluster['id']}/kubeconfig/", raw=True).decode()
    if merge:
        path = Path(target).expanduser() if target else kubeconfig.default_path()
        backup = kubeconfig.merge_into(path, text, use_context=use_context)
        click.echo(f"merged context {name} into {path}"
                   + (f" (previous file kept as {backup})" if backup else ""))
    elif out:
        kubeconfig.write_new(Path(out), text)
        click.echo(f"wrote {out}")
    else:
        click.echo(text, nl=False)


@kubeconfig_group.command("list")
@click.argument("name")
@click.option("--all", "every", is_flag=True, help="Ended ones too (revoked, expired...).")
@handled
def kubeconfig_list(name: str, every: bool) -> None:
    """The cluster's personal kubeconfigs (live ones unless --all)."""
    api = client()
    cluster = api.cluster(name)
    query = {} if every else {"live": "1"}
    rows = api.every(f"clusters/{cluster['id']}/kube-credentials/", **query)
    table([[c["id"], f"{c['namespace']}/{c['name']}", c["username"],
            "expired" if c["expired"] and c["status"] == "active" else c["status"],
            c["expires_at"]] for c in rows],
          ["ID", "SERVICEACCOUNT", "ISSUED TO", "STATUS", "EXPIRES"])


@kubeconfig_group.command("revoke")
@click.argument("name")
@click.argument("credential_id", type=int)
@handled
def kubeconfig_revoke(name: str, credential_id: int) -> None:
    """Revoke a personal kubeconfig: its token is refused within seconds."""
    api = client()
    cluster = api.cluster(name)
    done = api.post(f"clusters/{cluster['id']}/kube-credentials/{credential_id}/revoke/")
    click.echo(f"revoked {done['namespace']}/{done['name']}: refused within seconds")


# --- nodes and upgrade ------------------------------------------------------------------------


@main.group()
def nodes() -> None:
    """Add and remove a cluster's nodes."""


@nodes.command("list")
@click.argument("cluster")
@handled
def nodes_list(cluster: str) -> None:
    api = client()
    found = api.cluster(cluster)
    table([[n["id"], n["name"], n["role"], n["private_ip"], n["status"], n["k3s_version"]]
           for n in api.every(f"clusters/{found['id']}/nodes/")],
          ["ID", "NAME", "ROLE", "PRIVATE IP", "STATUS", "K3S"])


@nodes.command("add")
@click.argument("cluster")
@click.option("--role", type=click.Choice(["server", "agent"]), required=True)
@click.option("--private-ip", required=True)
@click.option("--public-ip")
@click.option("--ssh-port", type=int, default=22, show_default=True)
@click.option("--ssh-user", default="root", show_default=True)
@click.option("--ssh-key-file", type=click.Path(exists=True, dir_okay=False))
@click.option("--passphrase-env", help="Variable holding the key's passphrase.")
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False))
@click.option("--password-env", help="Variable holding the SSH password.")
@WATCH
@handled
def nodes_add(cluster: str, *, role: str, private_ip: str, public_ip: str | None, ssh_port: int,
              ssh_user: str, ssh_key_file: str | None, passphrase_env: str | None,
              password_file: str | None, password_env: str | None, wait: bool) -> None:
    """Join a server or an agent (checked as the wizard checks hosts)."""
    host: dict[str, Any] = {"role": role, "private_ip": private_ip, "public_ip": public_ip,
                            "ssh_port": ssh_port, "ssh_user": ssh_user}
    refs = {"private_key_file": ssh_key_file, "passphrase_env": passphrase_env,
            "password_file": password_file, "password_env": password_env}
    host.update({k: v for k, v in refs.items() if v})
    host["auth"] = "password" if (password_file or password_env) else "key"
    body = spec.load(spec.dump({"hosts": [host]}))["hosts"][0]
    api = client()
    found = api.cluster(cluster)
    follow(api, api.post(f"clusters/{found['id']}/nodes/", body), found["id"], wait)


@nodes.command("add-instances")
@click.argument("cluster")
@click.option("--servers", type=click.IntRange(0, 9), default=0, show_default=True)
@click.option("--agents", type=click.IntRange(0, 50), default=0, show_default=True)
@click.option("--confirm-billing", is_flag=True,
              help="The new instances are billed from their creation (else you are asked).")
@WATCH
@handled
def nodes_add_instances(cluster: str, servers: int, agents: int, confirm_billing: bool,
                        wait: bool) -> None:
    """Buy new ECS instances like the cluster's first ones (its type, image, disk, security
    group and key pair) and join them as servers and agents."""
    if servers + agents < 1:
        # Before the billing question: never ask to buy nothing.
        raise click.UsageError("add at least one server or agent (--servers N, --agents N)")
    if not confirm_billing and not click.confirm(
            f"Buy {servers + agents} ECS instance(s), billed pay-as-you-go from their "
            "creation until they are released?"):
        click.echo("error: not confirmed; nothing was bought", err=True)
        sys.exit(1)
    api = client()
    found = api.cluster(cluster)
    answer = api.post(f"clusters/{found['id']}/nodes/instances/",
                      {"servers": servers, "agents": agents, "confirm_billing": True})
    click.echo(f"buying: {answer['billed']}")
    for warning in answer.get("warnings", []):
        click.echo(f"warning: {warning}")
    follow(api, answer, found["id"], wait)


@nodes.command("remove")
@click.argument("cluster")
@click.argument("node", metavar="NODE")
@click.option("--keep-instance", is_flag=True,
              help="An instance the panel bought stays (and stays billed, in the cluster's "
                   "security group until you move it); else it is released once the node "
                   "has left.")
@click.option("--yes", is_flag=True,
              help="Release an instance the panel bought without asking.")
@WATCH
@handled
def nodes_remove(cluster: str, node: str, keep_instance: bool, yes: bool, wait: bool) -> None:
    """Remove a node, named by its name (server-2), private IP or id."""
    api = client()
    found = api.cluster(cluster)
    match = [n for n in found["nodes"] if node in (n["name"], n["private_ip"], str(n["id"]))]
    if not match:
        raise ApiError(404, f"{cluster} has no node {node}", "not_found")
    instance = match[0].get("ecs_instance_id") if match[0].get("instance_bought") else None
    if instance and not keep_instance:
        # As add-instances asks before billing: releasing is deleting, never silent.
        notice = (f"ECS instance {instance}, which the panel bought, is released (deleted) "
                  "once the node has left, billed until then; --keep-instance keeps it")
        if yes:
            click.echo(f"notice: {notice}")
        elif not click.confirm(f"{notice}. Remove the node and release it?"):
            click.echo("error: not confirmed; nothing was removed", err=True)
            sys.exit(1)
    answer = api.post(f"clusters/{found['id']}/nodes/{match[0]['id']}/remove/",
                      {"keep_instance": keep_instance})
    follow(api, answer, found["id"], wait)


@main.command()
@click.argument("cluster")
@click.argument("version")
@WATCH
@handled
def upgrade(cluster: str, version: str, wait: bool) -> None:
    """Upgrade K3s to VERSION (a release or a channel), one server at a time."""
    api = client()
    found = api.cluster(cluster)
    follow(api, api.post(f"clusters/{found['id']}/upgrade/", {"version": version}),
           found["id"], wait)
