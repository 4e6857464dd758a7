"""Prove the cluster works through the SLB, as its user will: the stored kubeconfig, TLS
verified, every server Ready on the cluster's release."""

from __future__ import annotations

from clusters.adapters import clusterconfig, k3s_release
from clusters.core.errors import PermanentError, TransientError
from clusters.engine.outcomes import Done, Outcome, Wait
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.models import Cluster

VERIFY_ATTEMPTS = 40


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
    expected = set(cluster.nodes.live().servers()
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
