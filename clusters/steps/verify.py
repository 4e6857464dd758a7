"""Prove the cluster works through the SLB, as its user will: the stored kubeconfig, TLS
verified, every server Ready on the cluster's release."""

from __future__ import annotations

from clusters.adapters import api_balancer, clusterconfig, k3s_release, nodes
from clusters.core.errors import PermanentError, TransientError
from clusters.engine.outcomes import Done, Outcome, Wait
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.k3s.secrets_encryption import STATUS_COMMAND, parse_status
from clusters.models import Cluster

VERIFY_ATTEMPTS = 40


@step_handler("verify.cluster")
def verify_cluster(ctx: StepContext) -> Outcome:
    """What the user will do: the downloaded kubeconfig, through the SLB, TLS verified."""
    cluster = Cluster.objects.get(pk=ctx.cluster.pk)
    client = clusterconfig.api_client(cluster)
    via = api_balancer.for_cluster(cluster).what  # "SLB" or "NLB"
    attempt = ctx.memo.get("attempt", 0) + 1
    ctx.memo["attempt"] = attempt
    try:
        readyz = client.readyz()
        states = client.nodes()
    except TransientError as exc:
        if attempt >= VERIFY_ATTEMPTS:
            raise PermanentError(f"The API is not answering through the {via}: {exc}") from None
        return Wait(3, f"The API does not answer through the {via} yet: {exc}")
    expected = set(cluster.nodes.live().servers()
                   .values_list("name", flat=True))
    ready = {state.name for state in states if state.ready}
    missing = sorted(expected - ready)
    if readyz != "ok" or missing:
        if attempt >= VERIFY_ATTEMPTS:
            raise PermanentError(f"Through the {via} /readyz says {readyz!r}; servers not Ready: "
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
    result: dict = {"nodes": sorted(ready)}
    if cluster.secrets_encryption:
        result["secrets_encryption"] = _secrets_encryption(ctx, cluster)
    return Done(result)


def _secrets_encryption(ctx: StepContext, cluster: Cluster) -> str:
    """`k3s secrets-encrypt status` on a server: Enabled, and every server's hash the same."""
    server = cluster.nodes.live().servers().order_by("pk").first()
    if server is None:
        raise PermanentError("No server to ask about Secrets encryption.")
    with nodes.session(ctx, server) as connection:
        found = connection.run(list(STATUS_COMMAND), sudo=True, timeout=60)
    for line in found.stdout.splitlines():
        if line.strip():
            ctx.say(f"{server.private_ip}: {line}")
    try:
        status = parse_status(found.stdout)
    except ValueError:
        raise PermanentError(f"`{' '.join(STATUS_COMMAND)}` on {server.private_ip} failed "
                             f"(exit {found.exit_status}): "
                             f"{(found.stderr or found.stdout).strip()[-500:]}") from None
    if not status.healthy:
        raise PermanentError(
            f"Secrets encryption on {server.private_ip}: "
            f"{'Enabled' if status.enabled else 'Disabled'}, server hashes: {status.hashes}. "
            "Every server must run with secrets-encryption and the same key.")
    return f"Enabled, stage {status.stage}, {status.hashes.lower()}"
