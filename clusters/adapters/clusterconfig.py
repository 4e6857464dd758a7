"""What every step derives the same way from a cluster: datastore DSN, install source, config.

Why: two servers with different critical flags (or tokens) break an HA cluster silently, so
the values are computed in one place from the stored cluster and earlier step results.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from clusters.adapters import datastore_tls
from clusters.adapters.datastore_engines import engine_for
from clusters.adapters.kubeapi import KubeClient
from clusters.core.errors import PermanentError
from clusters.k3s.config import (
    DATASTORE_CA_PATH,
    ClusterSettings,
    NodeIdentity,
    render_server_config,
)
from clusters.k3s.install import InstallSource
from clusters.k3s.kubeconfig import api_url
from clusters.k3s.tokens import AGENT_USER, SERVER_USER, secure_token
from clusters.models import Cluster, DatastoreKind, Node, Step, StepStatus
from clusters.models import InstallSource as SourceChoice

if TYPE_CHECKING:
    # A type only: adapters never import the engine (.importlinter); the step
    # context is handed in by the step that calls them.
    from clusters.engine.stepcontext import StepContext

SERVER_TAINT = "CriticalAddonsOnly=true:NoExecute"
RDS_RESULT_STEP = "rds_configure"


def install_source(cluster: Cluster) -> InstallSource:
    if cluster.install_source == SourceChoice.CHINA_MIRROR:
        return InstallSource("china")
    if cluster.install_source == SourceChoice.CUSTOM:
        return InstallSource("custom", cluster.install_base_url)
    return InstallSource("official")


def recorded_rds_datastore(cluster: Cluster) -> dict:
    """What the create run's RDS step recorded (host, port, account, database), for later runs
    (upgrade, add node) that render the same server config without an RDS step of their own."""
    found = (Step.objects.filter(run__cluster=cluster, key=RDS_RESULT_STEP,
                                 status=StepStatus.SUCCEEDED)
             .order_by("-finished_at", "-pk").values_list("result", flat=True).first())
    return dict(found or {})


def datastore_endpoint(ctx: StepContext) -> str:
    """The K3s --datastore-endpoint (contains the password: only for 0600 files)."""
    cluster = ctx.cluster
    if cluster.datastore_kind == DatastoreKind.EXTERNAL:
        return cluster.external_dsn
    rds = ctx.result_of(RDS_RESULT_STEP) or recorded_rds_datastore(cluster)
    if not rds or not cluster.datastore_password:
        raise PermanentError("The RDS instance is not configured yet (no endpoint recorded).")
    return engine_for(cluster).endpoint(rds["account"], cluster.datastore_password,
                                        rds["host"], int(rds["port"]), rds["database"])


def recorded_datastore_endpoint(cluster: Cluster) -> str:
    """The DSN outside a run (health checks): own MySQL as given, RDS as its create recorded."""
    if cluster.datastore_kind == DatastoreKind.EXTERNAL:
        return cluster.external_dsn
    rds = recorded_rds_datastore(cluster)
    if not rds or not cluster.datastore_password:
        raise PermanentError("The RDS instance is not configured yet (no endpoint recorded).")
    return engine_for(cluster).endpoint(rds["account"], cluster.datastore_password,
                                        rds["host"], int(rds["port"]), rds["database"])


def founding_server(cluster: Cluster) -> Node | None:
    """The server that started this cluster's etcd with `cluster-init`: its first server ever
    (by creation, removed ones included, so a founder that left is never replaced by another
    `cluster-init`: every later server joins through the load balancer)."""
    return cluster.nodes.servers().order_by("pk").first()


def etcd_role(cluster: Cluster, node: Node | None) -> dict[str, object]:
    """How an embedded-etcd server finds its cluster (ClusterSettings' cluster_init or
    server_url), docs.k3s.io/datastore/ha-embedded: the founder `cluster-init`, every other
    server `server: https://<API load balancer>:6443`. K3s ignores both once the server's
    own etcd data exists (a restart or upgrade rejoins from server/db/etcd)."""
    founder = founding_server(cluster)
    if node is not None and founder is not None and founder.pk == node.pk:
        return {"cluster_init": True}
    if not cluster.api_host:
        raise PermanentError("The load balancer's address is not known yet; joining etcd "
                             "servers reach the cluster through it.")
    return {"server_url": api_url(cluster.api_host)}


def server_settings(ctx: StepContext, node: Node | None = None) -> ClusterSettings:
    cluster = ctx.cluster
    if not cluster.api_tls_sans:
        raise PermanentError("The load balancer's address is not known yet; it must be in "
                             "tls-san.")
    if cluster.datastore_kind == DatastoreKind.ETCD:
        datastore: dict[str, object] = {
            "datastore_endpoint": "", **etcd_role(cluster, node),
            "etcd_snapshot_cron": cluster.etcd_snapshot_cron,
            "etcd_snapshot_retention": cluster.etcd_snapshot_retention}
    else:
        datastore = {"datastore_endpoint": datastore_endpoint(ctx)}
    return ClusterSettings(
        token=server_join_token(cluster),
        agent_token=cluster.k3s_agent_token,
        **datastore,  # type: ignore[arg-type]  # the keys above are ClusterSettings' own
        tls_sans=tuple(dict.fromkeys((*cluster.api_tls_sans, *cluster.extra_tls_sans))),
        disable=("traefik",) if cluster.disable_traefik else (),
        node_taints=(SERVER_TAINT,) if cluster.taint_servers else (),
        secrets_encryption=cluster.secrets_encryption,
        datastore_cafile=DATASTORE_CA_PATH if datastore_tls.uses_tls(cluster) else None,
    )


def server_join_token(cluster: Cluster) -> str:
    """The server token as servers get it: secure (pins the CA) once the CA hash is known,
    short before (only the first server starts then: the CA does not exist yet)."""
    if cluster.k3s_ca_hash:
        return secure_token(cluster.k3s_ca_hash, SERVER_USER, cluster.k3s_token)
    return cluster.k3s_token


def agent_join_token(cluster: Cluster) -> str:
    """The token an agent joins with, always secure: the agent token (user `node`, no admin
    rights), or for a cluster created before agent tokens the server token (its servers run
    without agent-token, so `node`'s password is the server token's; adding agent-token now
    would lock out the agents that joined with it). Needs the CA hash."""
    if not cluster.k3s_ca_hash:
        raise PermanentError("The cluster CA hash is not known yet; agents join only once a "
                             "server runs.")
    if cluster.k3s_agent_token:
        return secure_token(cluster.k3s_ca_hash, AGENT_USER, cluster.k3s_agent_token)
    return secure_token(cluster.k3s_ca_hash, SERVER_USER, cluster.k3s_token)


def server_config_text(ctx: StepContext, node: Node) -> str:
    return render_server_config(server_settings(ctx, node), NodeIdentity(node_ip=node.private_ip))


def api_client(cluster: Cluster, timeout: float = 10) -> KubeClient:
    """A client for the cluster's stored kubeconfig (through the SLB, TLS verified)."""
    if not cluster.kubeconfig:
        raise PermanentError("The cluster has no kubeconfig yet.")
    return KubeClient(cluster.kubeconfig, timeout=timeout)
