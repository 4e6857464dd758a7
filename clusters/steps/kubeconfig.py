"""Fetch the kubeconfig from a server and prove the cluster works through the SLB."""

from __future__ import annotations

from clusters.adapters import clusterconfig, k3s_release, nodes
from clusters.core.errors import PermanentError, TransientError
from clusters.engine.outcomes import Done, Outcome, Wait
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.k3s.kubeconfig import rewrite_kubeconfig
from clusters.models import Cluster, Node, NodeRole

K3S_YAML = "/etc/rancher/k3s/k3s.yaml"
VERIFY_ATTEMPTS = 40


def kubeconfig_server(cluster: Cluster) -> Node | None:
    """The server whose k3s.yaml the panel reads (kubeconfig renewal restarts this one)."""
    return cluster.nodes.filter(role=NodeRole.SERVER).exclude(status="removed") \
        .order_by("pk").first()


@step_handler("k3s.kubeconfig")
def fetch_kubeconfig(ctx: StepContext) -> Outcome:
    """Read k3s.yaml, point it at the SLB, name it after the cluster, store it encrypted."""
    cluster = ctx.cluster
    server = kubeconfig_server(cluster)
    if server is None or not cluster.slb_address:
        raise PermanentError("There is no server (or no SLB address) to build a kubeconfig for.")
    with nodes.session(ctx, server) as connection:
        original = connection.read_file(K3S_YAML, sudo=True).decode()
    ctx.register_secret(original)
    config = rewrite_kubeconfig(original, cluster.name, cluster.slb_address)
    ctx.register_secret(config.text)
    cluster.kubeconfig = config.text
    cluster.kubeconfig_expires_at = config.client_cert_not_after
    cluster.save(update_fields=["kubeconfig", "kubeconfig_expires_at", "updated_at"])
    ctx.say(f"kubeconfig for {config.server} (context {config.name}); client certificate "
            f"valid until {config.client_cert_not_after:%Y-%m-%d}")
    return Done({"server": config.server, "context": config.name})


@step_handler("verify.cluster")
def verify_cluster(ctx: StepContext) -> Outcome:
    """What the user will do: the downloaded kubeconfig, through the SLB, TLS verified."""
    cluster = Cluster.objects.get(pk=ctx.cluster.pk)
    client = clusterconfig.api_client(cluster)
    attempt = ctx.memo.get("attempt", 0) + 1
    ctx.memo["attempt"] = attempt
    try:
        readyz = client.readyz()
        states = client.nodes()
    except TransientError as exc:
        if attempt >= VERIFY_ATTEMPTS:
            raise PermanentError(f"The API is not answering through the SLB: {exc}") from None
        return Wait(3, f"The API does not answer through the SLB yet: {exc}")
    expected = set(cluster.nodes.filter(role=NodeRole.SERVER).exclude(status="removed")
                   .values_list("name", flat=True))
    ready = {state.name for state in states if state.ready}
    missing = sorted(expected - ready)
    if readyz != "ok" or missing:
        if attempt >= VERIFY_ATTEMPTS:
            raise PermanentError(f"Through the SLB /readyz says {readyz!r}; servers not Ready: "
                                 f"{', '.join(missing) or 'none'}.")
        return Wait(3, f"/readyz {readyz!r}; waiting for {', '.join(missing) or 'readiness'}")
    ctx.say(f"{client.server}/readyz: ok (TLS verified against the cluster CA)")
    for state in states:
        ctx.say(f"node {state.name}: {'Ready' if state.ready else 'NotReady'} "
                f"{','.join(state.roles) or '<none>'} {state.version}")
    # What each node runs, as the API says (the servers' first reading is here).
    k3s_release.record_running_versions(cluster, states)
    off = k3s_release.off_release(cluster, states, expected)
    if off:
        raise PermanentError(f"Servers on another release than the cluster's "
                             f"{cluster.k3s_version}: {'; '.join(off)}. Servers of one HA "
                             "control plane must run one release; remove the odd one out.")
    return Done({"nodes": sorted(ready)})
