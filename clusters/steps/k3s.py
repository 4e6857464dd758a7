"""Install K3s servers (one at a time) and agents, then wait for them without parking a worker.

Every secret (token, datastore DSN) reaches the host in /etc/rancher/k3s/config.yaml, mode
0600, over SFTP; command lines carry only versions and URLs. With datastore TLS the ApsaraDB
CA goes first, to /etc/rancher/k3s/datastore-ca.pem (0600), which config.yaml names.

A failed install leaves the host as it is (nothing is stopped or uninstalled) and ends its
log with the host's diagnostics (`collects_diagnostics`, clusters.adapters.forensics), so
there is something to debug.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

import yaml
from django.conf import settings

from clusters.adapters import (
    clusterconfig,
    datastore_tls,
    etcd_members,
    forensics,
    k3s_release,
    kubeapi,
    nodes,
    ssh,
)
from clusters.adapters.instance_order import node_of_slot
from clusters.core.errors import PermanentError, TransientError
from clusters.engine.outcomes import Done, Fail, Outcome, Wait
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.k3s.config import CONFIG_PATH, DATASTORE_CA_PATH
from clusters.k3s.diagnosis import parse_kine_pool
from clusters.k3s.install import Role, install_command
from clusters.k3s.kubeconfig import api_url, rewrite_kubeconfig
from clusters.k3s.tokens import AGENT_TOKEN_PATH, SERVER_TOKEN_PATH, verified_ca_hash
from clusters.k3s.versions import parse_version
from clusters.models import Cluster, DatastoreKind, Node, NodeRole, NodeStatus

READY_TIMEOUT_SECONDS = 300
INSTALL_TIMEOUT_SECONDS = 900
#: The host lock the install script holds: an install left running by an earlier attempt (its
#: worker gave up on it, or died) makes the next attempt wait instead of starting a second.
INSTALL_LOCK = "k3s-install"
BUSY_POLL_SECONDS = 15.0


def _node(ctx: StepContext) -> Node:
    """The step's node: by id, or (an instance the create run buys) by its order's slot."""
    if "slot" in ctx.args:
        return node_of_slot(ctx.cluster, str(ctx.args["slot"]))
    return Node.objects.get(pk=ctx.args["node_id"], cluster_id=ctx.cluster.pk)


Handler = Callable[[StepContext], Outcome]


def collects_diagnostics(handler: Handler) -> Handler:
    """When the step about one node (`node_id`) fails for good (Fail, PermanentError), read
    the host's unit status, journal, config keys, disk and memory into the step's log first.

    Transient errors are left to the engine's retries (the host is usually unreachable then,
    and the step is not over).
    """
    @functools.wraps(handler)
    def run(ctx: StepContext) -> Outcome:
        try:
            outcome = handler(ctx)
        except PermanentError as exc:
            forensics.after_failure(ctx, _node(ctx), exc)
            raise
        if isinstance(outcome, Fail):
            forensics.after_failure(ctx, _node(ctx))
        return outcome
    return run


def install_k3s(ctx: StepContext, node: Node, role: Role, config_text: str, *,
                version: str, systemctl_action: str = "start") -> None:
    """config.yaml (0600), the install script, then start (or restart) without blocking.

    Used by create, add-node and upgrade alike, so every host is installed the same way:
    always with an exact INSTALL_K3S_VERSION, never a channel (clusters.adapters.k3s_release).
    Raises ssh.HostBusy, having started nothing, while another install runs on the host.
    """
    command = install_command(clusterconfig.install_source(ctx.cluster),
                              version=str(parse_version(version)), role=role)
    unit = "k3s" if role == NodeRole.SERVER else "k3s-agent"
    ca_pem = datastore_tls.datastore_ca(ctx.cluster) if role == NodeRole.SERVER else None
    with nodes.session(ctx, node) as connection:
        if ca_pem is not None:  # before config.yaml names it: kine reads it at start
            connection.put_file(DATASTORE_CA_PATH, ca_pem, mode=0o600)
            ctx.say(f"{node.private_ip}: wrote {DATASTORE_CA_PATH} (0600), the CA the "
                    "datastore's certificate is verified against")
        connection.put_file(CONFIG_PATH, config_text, mode=0o600)
        # From here on the host holds this cluster's K3s (whatever was there is replaced):
        # recorded on the node, so cleanup knows it even once config.yaml is gone.
        Node.objects.filter(pk=node.pk).update(k3s_installed=True)
        ctx.say(f"{node.private_ip}: wrote {CONFIG_PATH} (0600)")
        nodes.run_logged(ctx, connection, command, what="The K3s install script",
                         timeout=INSTALL_TIMEOUT_SECONDS, lock=INSTALL_LOCK)
        nodes.run_logged(ctx, connection, ["systemctl", systemctl_action, "--no-block", unit],
                         what=f"Running systemctl {systemctl_action} {unit}", timeout=60)
    Node.objects.filter(pk=node.pk).update(status=NodeStatus.INSTALLING)


def busy_wait(ctx: StepContext, node: Node, exc: ssh.HostBusy) -> Wait:
    """The Wait of a step whose install found an earlier one still running on the host."""
    ctx.say(f"{node.private_ip}: {exc.message}", "stderr")
    return Wait(BUSY_POLL_SECONDS, f"Waiting for the earlier K3s install on {node.private_ip} "
                "to end")


def _journal_verdict(ctx: StepContext, node: Node, unit: str) -> tuple[str, str]:
    """(state of the unit, a plain explanation of a known failure in its journal or '')."""
    with nodes.session(ctx, node) as connection:
        state = connection.run(["systemctl", "is-active", unit], sudo=True, timeout=30)
        explanation = nodes.journal_problem(ctx, connection, node, unit)
    return state.stdout.strip(), explanation


def _wait_or_fail(ctx: StepContext, node: Node, unit: str, what: str) -> Outcome:
    state, explanation = _journal_verdict(ctx, node, unit)
    if explanation:
        Node.objects.filter(pk=node.pk).update(status=NodeStatus.FAILED)
        return Fail(f"K3s on {node.private_ip} failed: {explanation}")
    if time.time() > ctx.memo["deadline"]:
        Node.objects.filter(pk=node.pk).update(status=NodeStatus.FAILED)
        return Fail(f"K3s on {node.private_ip} was not ready within {READY_TIMEOUT_SECONDS} s "
                    f"(unit {state}); read `journalctl -u {unit}` on the host.")
    return Wait(settings.PANEL_HOST_POLL_SECONDS,
                f"Waiting for {what} on {node.private_ip} (unit {state})")


def record_ca_hash(ctx: StepContext, server: Node) -> str:
    """Read the secure tokens K3s wrote on a running server, prove they are this cluster's,
    and store the CA hash they carry (once): later servers and agents pin that CA."""
    cluster = ctx.cluster
    with nodes.session(ctx, server) as connection:
        server_file = connection.read_file(SERVER_TOKEN_PATH, sudo=True).decode().strip()
        agent_file = connection.read_file(AGENT_TOKEN_PATH, sudo=True).decode().strip()
    ctx.register_secret(server_file)
    ctx.register_secret(agent_file)
    ca_hash = verified_ca_hash(server_file, agent_file, server_password=cluster.k3s_token,
                               agent_password=cluster.k3s_agent_token)
    Cluster.objects.filter(pk=cluster.pk).update(k3s_ca_hash=ca_hash)
    cluster.k3s_ca_hash = ca_hash
    ctx.say(f"{server.private_ip}: cluster CA hash {ca_hash} recorded; joining servers and "
            "agents get their token in the secure form that pins this CA")
    return ca_hash


def known_ca_hash(ctx: StepContext, joining: Node) -> str:
    """The cluster CA hash, read from a running server the first time it is needed (clusters
    created before the panel recorded it); '' while no server runs yet (the first one)."""
    if ctx.cluster.k3s_ca_hash:
        return ctx.cluster.k3s_ca_hash
    running = (ctx.cluster.nodes.live().servers().exclude(pk=joining.pk)
               .exclude(status__in=[NodeStatus.PENDING, NodeStatus.FAILED]).order_by("pk")
               .first())
    return record_ca_hash(ctx, running) if running is not None else ""


@step_handler("k3s.install_server")
@collects_diagnostics
def install_server(ctx: StepContext) -> Outcome:
    """Config, install, start; then poll the local API until /readyz says ok. The first
    server starts with the short token (no CA exists yet); once it runs, the CA hash is
    recorded and every later server gets the secure form."""
    node = _node(ctx)
    if "installed_at" not in ctx.memo:
        known_ca_hash(ctx, node)
        try:
            install_k3s(ctx, node, "server", clusterconfig.server_config_text(ctx, node),
                        version=k3s_release.pinned_version(ctx.cluster))
        except ssh.HostBusy as exc:
            return busy_wait(ctx, node, exc)
        ctx.memo.update(installed_at=time.time(), deadline=time.time() + READY_TIMEOUT_SECONDS)
        return Wait(settings.PANEL_HOST_POLL_SECONDS,
                    f"Waiting for the K3s API on {node.private_ip}")
    if not nodes.local_api_ready(ctx, node):
        return _wait_or_fail(ctx, node, "k3s", "the K3s API")
    if ctx.cluster.datastore_kind == DatastoreKind.ETCD:
        waiting = etcd_member_waiting(ctx, node)
        if waiting:
            return _wait_or_fail(ctx, node, "k3s", waiting)
    # The version it runs is read back from the API once it is reachable (verify, or here
    # when the cluster already has a kubeconfig), not copied from what was asked for.
    Node.objects.filter(pk=node.pk).update(status=NodeStatus.READY)
    ctx.say(f"{node.private_ip}: the K3s API answers /readyz ok")
    if not ctx.cluster.k3s_ca_hash:
        record_ca_hash(ctx, node)
    if ctx.cluster.datastore_kind != DatastoreKind.ETCD:
        _say_kine_pool(ctx, node)
    return Done({"node": node.private_ip})


def etcd_member_waiting(ctx: StepContext, node: Node) -> str:
    """What an embedded-etcd server is still waiting for ('' once it is a healthy etcd
    member AND its Node is Ready): the next server joins only then (one at a time, so the
    cluster never has two members that do not vote yet). The member's health comes from its
    own etcd (127.0.0.1:2381/health, clusters.adapters.etcd_members); the Node from its own
    API, since the kubeconfig through the load balancer does not exist yet during create."""
    member = etcd_members.member_state(node)
    if not member.healthy:
        return f"its etcd member to be healthy ({member.error or 'not yet'})"
    try:
        with nodes.session(ctx, node) as connection:
            found = connection.run(["k3s", "kubectl", "get", "node", node.name, "-o", "json"],
                                   sudo=True, timeout=30)
    except TransientError:
        return f"node {node.name} to be Ready (host not reachable)"
    if not found.ok or not kubeapi.node_ready_in_json(found.stdout):
        return f"node {node.name} to be Ready"
    ctx.say(f"{node.private_ip}: etcd member healthy{' (leader)' if member.leader else ''}, "
            f"node {node.name} Ready")
    return ""


def _say_kine_pool(ctx: StepContext, node: Node) -> None:
    """Log how many MySQL connections this server's kine keeps (either kine log form)."""
    try:
        with nodes.session(ctx, node) as connection:
            found = connection.run(["journalctl", "-u", "k3s", "-g", "database connection "
                                    "pooling", "-n", "1", "--no-pager"], sudo=True, timeout=30)
    except TransientError:
        return
    pool = parse_kine_pool(found.stdout.splitlines())
    if pool is not None:
        ctx.say(f"{node.private_ip}: {pool.describe()}")


def agent_config_text(ctx: StepContext, node: Node) -> str:
    """The agent's config.yaml (install and upgrade): the CA hash is read from a running
    server first when this cluster never recorded it (made before the panel did)."""
    known_ca_hash(ctx, node)
    cluster = ctx.cluster
    config = {"server": api_url(cluster.api_host),
              "token": clusterconfig.agent_join_token(cluster), "node-ip": node.private_ip}
    return "# Written by the K3s HA panel.\n" + yaml.safe_dump(config, sort_keys=False)


@step_handler("k3s.install_agent")
@collects_diagnostics
def install_agent(ctx: StepContext) -> Outcome:
    """Join through the SLB with the agent token in its secure form (the agent checks the CA
    the SLB address presents before it sends the token); done when the node is Ready."""
    node = _node(ctx)
    if not ctx.cluster.api_host:
        raise PermanentError("The load balancer's address is not known; agents join through "
                             "it.")
    if "installed_at" not in ctx.memo:
        if not known_ca_hash(ctx, node):
            raise PermanentError("No server of this cluster runs, so its CA is unknown; an "
                                 "agent joins only a running cluster.")
        if not ctx.cluster.k3s_agent_token:
            ctx.say(f"{node.private_ip}: this cluster was created before the panel gave agents "
                    "a token of their own, and its servers run without one; the agent joins "
                    "with the server token, in the secure form that pins the cluster CA "
                    "(an agent token now would lock out the agents that joined before)",
                    "stderr")
        try:
            install_k3s(ctx, node, "agent", agent_config_text(ctx, node),
                        version=k3s_release.pinned_version(ctx.cluster))
        except ssh.HostBusy as exc:
            return busy_wait(ctx, node, exc)
        ctx.memo.update(installed_at=time.time(), deadline=time.time() + READY_TIMEOUT_SECONDS)
        return Wait(settings.PANEL_HOST_POLL_SECONDS,
                    f"Waiting for agent {node.private_ip} to register")
    name = node.name
    states = {state.name: state for state in clusterconfig.api_client(ctx.cluster).nodes()}
    if name in states and states[name].ready:
        running = states[name].version
        off = k3s_release.off_release(ctx.cluster, list(states.values()), {name})
        Node.objects.filter(pk=node.pk).update(
            status=NodeStatus.FAILED if off else NodeStatus.READY, k3s_version=running)
        if off:
            return Fail(f"Agent {node.private_ip}: {off[0]}, not the cluster's "
                        f"{ctx.cluster.k3s_version}; remove it and check the install source.")
        ctx.say(f"{node.private_ip}: node {name} is Ready on {running}")
        return Done({"node": name})
    return _wait_or_fail(ctx, node, "k3s-agent", f"node {name} to be Ready")


# --- the kubeconfig -----------------------------------------------------------------------

K3S_YAML = "/etc/rancher/k3s/k3s.yaml"


def kubeconfig_server(cluster: Cluster) -> Node | None:
    """The server whose k3s.yaml the panel reads (kubeconfig renewal restarts this one)."""
    return cluster.nodes.live().servers().order_by("pk").first()


@step_handler("k3s.kubeconfig")
def fetch_kubeconfig(ctx: StepContext) -> Outcome:
    """Read k3s.yaml, point it at the SLB, name it after the cluster, store it encrypted."""
    cluster = ctx.cluster
    server = kubeconfig_server(cluster)
    if server is None or not cluster.api_host:
        raise PermanentError("There is no server (or no SLB address) to build a kubeconfig for.")
    with nodes.session(ctx, server) as connection:
        original = connection.read_file(K3S_YAML, sudo=True).decode()
    ctx.register_secret(original)
    config = rewrite_kubeconfig(original, cluster.name, cluster.api_host)
    ctx.register_secret(config.text)
    cluster.kubeconfig = config.text
    cluster.kubeconfig_expires_at = config.client_cert_not_after
    cluster.save(update_fields=["kubeconfig", "kubeconfig_expires_at", "updated_at"])
    ctx.say(f"kubeconfig for {config.server} (context {config.name}); client certificate "
            f"valid until {config.client_cert_not_after:%Y-%m-%d}")
    return Done({"server": config.server, "context": config.name})
