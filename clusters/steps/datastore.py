"""Prove the datastore accepts K3s's schema before K3s ever starts.

The check runs kine's own DDL from a server host through an SSH tunnel: the RDS whitelist
admits the hosts, not the panel, and this is exactly the path K3s will use.
"""

from __future__ import annotations

from clusters.adapters import clusterconfig, datastore_tls, nodes
from clusters.adapters.datastore import KEY_TOO_LONG, SchemaRejected
from clusters.adapters.datastore_engines import engine_for
from clusters.adapters.datastore_health import capacity_finding, required_connections
from clusters.adapters.health import kine_pool
from clusters.engine.outcomes import Done, Fail, Outcome, Wait
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.models import DatastoreKind, NodeRole
from clusters.steps.rds import turn_large_prefix_on

DEFAULT_SCHEMA_VERSION = "v1.32.5+k3s1"


@step_handler("datastore.check")
def check(ctx: StepContext) -> Outcome:
    cluster = ctx.cluster
    engine = engine_for(cluster)
    endpoint = engine.parse(clusterconfig.datastore_endpoint(ctx))
    server = cluster.nodes.filter(role=NodeRole.SERVER).order_by("pk").first()
    if server is None:
        return Fail("The cluster has no server host to check the datastore from.")
    version = cluster.k3s_version or DEFAULT_SCHEMA_VERSION
    key_column = engine.key_column(version)
    ca_pem = datastore_tls.datastore_ca(cluster)
    over = " over TLS, verifying the server against the datastore CA" if ca_pem else ""
    ctx.say(f"Running kine's {engine.label} DDL for K3s {version} (key column {key_column}) "
            f"against {endpoint.redacted()} from {server.private_ip}{over}")
    try:
        with nodes.session(ctx, server) as connection:
            report = engine.prove(endpoint, version, via=connection, ca_pem=ca_pem)
    except SchemaRejected as exc:
        if exc.code != KEY_TOO_LONG or cluster.datastore_kind != DatastoreKind.RDS:
            raise
        ctx.say(str(exc), "stderr")
        ctx.say("The panel created this RDS instance, so it turns innodb_large_prefix ON "
                "itself and checks again.")
        waiting = turn_large_prefix_on(ctx)
        return waiting or Wait(2, "Checking the schema again after the parameter change")
    if report.holds_cluster:
        ctx.say("This database already holds K3s bootstrap data: servers must use the token "
                "it was created with.", "stderr")
    ctx.say(f"{engine.label} {report.server_version} accepted K3s's schema in "
            f"{report.seconds:.2f} s")
    if report.tls:
        ctx.say(f"The connection was {report.tls}; the certificate of {endpoint.address} "
                "verified against the datastore CA")
    warning = _connection_capacity(ctx, report.max_connections)
    return Done({"server_version": report.server_version, "tls": report.tls,
                 "max_connections": report.max_connections,
                 **({"warnings": [warning]} if warning else {})})


def _connection_capacity(ctx: StepContext, max_connections: int) -> str | None:
    """Warn (not fail) when max_connections cannot hold every server's kine pool: the cluster
    works today and fails under load with "Too many connections"; the health check repeats
    the warning on the cluster page."""
    if not max_connections:
        ctx.say("Could not read max_connections; the connection capacity is not checked.",
                "stderr")
        return None
    servers = ctx.cluster.nodes.live().servers().count()
    idle = kine_pool(ctx.cluster.k3s_version)
    finding = capacity_finding(max_connections, servers, idle)
    if finding is None:
        ctx.say(f"max_connections {max_connections} holds {servers} servers' kine pools "
                f"(needs about {required_connections(servers, idle)})")
        return None
    ctx.say(f"Warning: {finding.message}", "stderr")
    return finding.message
