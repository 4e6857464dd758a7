"""Renew the stored kubeconfig before its client certificate expires.

Why no `k3s certificate rotate`: K3s renews its leaf certificates by itself when it starts
within 90 days (120 since May 2025) of their expiry, and rewrites k3s.yaml with them. So the
panel re-fetches k3s.yaml first, and only when that copy still expires within 30 days restarts
K3s on that one server (out of the SLB while it restarts) and fetches it again.
"""

from __future__ import annotations

from clusters.adapters import nodes
from clusters.core.errors import PermanentError
from clusters.engine.outcomes import Fail, Outcome, Skip
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.k3s.kubeconfig_expiry import expires_soon
from clusters.models import Cluster, Node
from clusters.steps.k3s import fetch_kubeconfig, kubeconfig_server
from clusters.steps.rolling import ServerRestart, roll_server

RESTART_STEP = "restart_if_expiring"


def _restart_k3s(ctx: StepContext, node: Node) -> None:
    with nodes.session(ctx, node) as connection:
        nodes.run_logged(ctx, connection, ["systemctl", "restart", "--no-block", "k3s"],
                         what="Restarting k3s", timeout=60)
    ctx.say(f"{node.private_ip}: k3s restarting (it renews certificates close to expiry)")


def _ready(ctx: StepContext, node: Node) -> str | None:
    return None if nodes.local_api_ready(ctx, node) else "its local API to answer /readyz ok"


@step_handler("kubeconfig.restart_if_expiring")
def restart_if_expiring(ctx: StepContext) -> Outcome:
    """Restart K3s on the kubeconfig's server only when the fetched certificate needs it."""
    cluster = Cluster.objects.get(pk=ctx.cluster.pk)
    server = kubeconfig_server(cluster)
    if server is None:
        raise PermanentError("The cluster has no live server to restart.")
    if "phase" not in ctx.memo:
        expires = cluster.kubeconfig_expires_at
        if expires is None:
            return Skip("The kubeconfig has no client certificate to renew.")
        if not expires_soon(expires):
            ctx.say(f"The fetched client certificate is valid until {expires:%Y-%m-%d %H:%M} "
                    "UTC, more than 30 days away: no restart needed.")
            return Skip(f"Valid until {expires:%Y-%m-%d}; no restart needed.")
        ctx.say(f"The fetched client certificate expires {expires:%Y-%m-%d %H:%M} UTC, within "
                f"30 days: restarting K3s on {server.private_ip} (one server, out of the SLB "
                "meanwhile), which renews certificates that close to expiry.")
    return roll_server(ctx, server, ServerRestart(
        what="restart", restart=_restart_k3s, ready=_ready, on_ready=lambda ctx, node: None,
        way_back="Restart k3s on it by hand (systemctl restart k3s), or press Retry."))


@step_handler("kubeconfig.refetch")
def refetch_after_restart(ctx: StepContext) -> Outcome:
    """Fetch k3s.yaml again after the restart; it must now be valid for more than 30 days."""
    if ctx.result_of(RESTART_STEP).get("phase") != "done":
        return Skip("No restart was needed; the kubeconfig fetched first is current.")
    outcome = fetch_kubeconfig(ctx)
    expires = Cluster.objects.values_list("kubeconfig_expires_at", flat=True) \
        .get(pk=ctx.cluster.pk)
    if expires_soon(expires):
        return Fail(f"K3s did not renew its client certificate (it still expires "
                    f"{expires:%Y-%m-%d}). On the server run `systemctl stop k3s; k3s "
                    "certificate rotate; systemctl start k3s`, then renew again.")
    return outcome
