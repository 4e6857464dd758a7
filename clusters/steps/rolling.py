"""Restart one K3s server behind the SLB without the API ever going dark.

Why: an upgrade (and a kubeconfig renewal) must restart servers, and kubectl users talk to
the SLB. Taking the server out of the SLB first, restarting it, waiting until it really serves
again and only then putting it back (and waiting for a normal health check) keeps every new
connection on a server that answers. The sequence is a small state machine in the step's
memo, so a worker crash or a Wait resumes at the phase it reached; every phase looks before
it acts (is it still a backend? is it already back?), so running one again is harmless.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from clusters.adapters import api_balancer, cloud, forensics, nodes, ssh
from clusters.core.errors import PermanentError, TransientError
from clusters.engine.outcomes import Done, Fail, Outcome, Wait
from clusters.engine.stepcontext import StepContext
from clusters.models import Node, NodeStatus
from clusters.steps.k3s import busy_wait

READY_TIMEOUT_SECONDS = 300
HEALTHY_TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class ServerRestart:
    """What to do to one server while it is out of the SLB, and how to know it is back."""

    what: str                                           # "upgrade to v1.32.5+k3s1", "restart"
    restart: Callable[[StepContext, Node], None]        # install and/or restart, returns at once
    ready: Callable[[StepContext, Node], str | None]    # None when ready, else what is awaited
    on_ready: Callable[[StepContext, Node], None]       # record what changed (versions)
    way_back: str                                       # appended to every failure message


def host_time(ctx: StepContext, node: Node) -> str:
    """The host's own clock, for `journalctl --since` (the panel's clock may differ)."""
    with nodes.session(ctx, node) as connection:
        return connection.run(["date", "+%Y-%m-%d %H:%M:%S"], timeout=30).stdout.strip()


def _journal_problem(ctx: StepContext, node: Node, unit: str, since: str) -> str:
    """A plain explanation of a known failure K3s logged since the restart, or '' (also when
    the host cannot be reached just now: the next poll looks again)."""
    try:
        with nodes.session(ctx, node) as connection:
            return nodes.journal_problem(ctx, connection, node, unit, since)
    except TransientError:
        return ""


def _other_servers(node: Node) -> dict[str, str]:
    """ECS instance id → IP of the cluster's other servers that are meant to serve."""
    return dict(Node.objects.filter(cluster_id=node.cluster_id).live().servers()
                .exclude(pk=node.pk).exclude(ecs_instance_id="")
                .values_list("ecs_instance_id", "private_ip"))


def _fail(ctx: StepContext, node: Node, plan: ServerRestart, message: str,
          *, out_of_slb: bool, error: Exception | None = None) -> Fail:
    """The step fails with the server left as it is; its diagnostics end the step's log."""
    Node.objects.filter(pk=node.pk).update(status=NodeStatus.FAILED)
    forensics.after_failure(ctx, node, error)
    where = (f" {node.private_ip} stays out of the SLB; the other servers keep serving the API."
             if out_of_slb else "")
    return Fail(f"{message}{where} {plan.way_back}".strip())


def _take_out(ctx: StepContext, node: Node, plan: ServerRestart,
              balancer: api_balancer.ApiBalancer) -> Outcome:
    """Leave the load balancer, but only while another server is healthy behind it."""
    members = balancer.members()
    others = _other_servers(node)
    if node.ecs_instance_id in members:
        health = balancer.health()
        serving = [ip for i, ip in others.items() if i in members and health.get(i)]
        if not others:
            ctx.memo["kept_in_slb"] = True
            ctx.say(f"{node.private_ip} is the only server: the API through the "
                    f"{balancer.what} is down while it restarts.", "stderr")
        elif not serving:
            return _fail(ctx, node, plan, f"No other server is healthy behind the "
                         f"{balancer.what}, so taking {node.private_ip} out would stop the "
                         "API; nothing was changed. Fix the other servers first (see Health).",
                         out_of_slb=False)
        else:
            ctx.memo["jobs"] = balancer.remove({node.ecs_instance_id: node.private_ip})
            ctx.say(f"{node.private_ip}: removed from {balancer.what} {balancer.ident}; "
                    f"{', '.join(serving)} keep serving the API")
    ctx.memo["phase"] = "drained"
    # A drain period, not a poll: its length is the point (never grown).
    return Wait(balancer.drain_seconds(),
                f"Letting connections to {node.private_ip} drain", grow=False)


def _restart(ctx: StepContext, node: Node, plan: ServerRestart,
             balancer: api_balancer.ApiBalancer) -> Outcome:
    settling = balancer.pending(ctx.memo.get("jobs", []))
    if settling:  # an NLB's removal job ends once the server's connections drained
        return Wait(cloud.poll_seconds(), f"{node.private_ip}: draining ({settling})")
    ctx.memo["since"] = host_time(ctx, node)
    try:
        plan.restart(ctx, node)
    except ssh.HostBusy as exc:  # an earlier attempt's install still runs: stay drained
        return busy_wait(ctx, node, exc)
    except PermanentError as exc:  # e.g. the install script failed: say where that leaves us
        return _fail(ctx, node, plan, str(exc), out_of_slb=not ctx.memo.get("kept_in_slb"),
                     error=exc)
    ctx.memo.update(phase="restarted", deadline=time.time() + READY_TIMEOUT_SECONDS)
    return Wait(settings.PANEL_HOST_POLL_SECONDS,
                f"Waiting for K3s on {node.private_ip} after the {plan.what}")


def _await_ready(ctx: StepContext, node: Node, plan: ServerRestart) -> Outcome | None:
    """None once the server is ready (its changes recorded); else Wait or Fail."""
    memo = ctx.memo
    awaiting = plan.ready(ctx, node)
    if not awaiting:
        plan.on_ready(ctx, node)
        memo["phase"] = "ready"
        return None
    out = not memo.get("kept_in_slb")
    problem = _journal_problem(ctx, node, "k3s", memo.get("since", ""))
    if problem:
        return _fail(ctx, node, plan, f"K3s on {node.private_ip} failed after the {plan.what}: "
                     f"{problem}", out_of_slb=out)
    if time.time() > memo["deadline"]:
        return _fail(ctx, node, plan, f"K3s on {node.private_ip} was not ready within "
                     f"{READY_TIMEOUT_SECONDS} s after the {plan.what} ({awaiting}); read "
                     "`journalctl -u k3s` on the host.", out_of_slb=out)
    return Wait(settings.PANEL_HOST_POLL_SECONDS, f"{node.private_ip}: waiting for {awaiting}")


def _put_back(ctx: StepContext, node: Node, balancer: api_balancer.ApiBalancer) -> None:
    if not ctx.memo.get("kept_in_slb") and node.ecs_instance_id not in balancer.members():
        ctx.memo["jobs"] = balancer.add({node.ecs_instance_id: node.private_ip})
        ctx.say(f"{node.private_ip}: added back to {balancer.what} {balancer.ident}")
    ctx.memo.update(phase="rejoining", healthy_deadline=time.time() + HEALTHY_TIMEOUT_SECONDS)


def _await_healthy(ctx: StepContext, node: Node, plan: ServerRestart,
                   balancer: api_balancer.ApiBalancer) -> Outcome:
    settling = balancer.pending(ctx.memo.get("jobs", []))
    healthy = None if settling else balancer.health().get(node.ecs_instance_id)
    if not healthy:
        status = settling or ("unhealthy" if healthy is False else "missing")
        if time.time() > ctx.memo["healthy_deadline"]:
            return _fail(ctx, node, plan, f"The {balancer.what} health check of "
                         f"{node.private_ip} is still {status} after {HEALTHY_TIMEOUT_SECONDS}"
                         " s.", out_of_slb=False)
        return Wait(settings.PANEL_HOST_POLL_SECONDS,
                    f"Waiting for the {balancer.what} to see {node.private_ip} as healthy")
    Node.objects.filter(pk=node.pk).update(status=NodeStatus.READY)
    ctx.say(f"{node.private_ip}: healthy behind the {balancer.what} again")
    return Done({"node": node.private_ip, "phase": "done"})


def roll_server(ctx: StepContext, node: Node, plan: ServerRestart) -> Outcome:
    """Out of the load balancer (drained), restart, ready, back in, healthy: one phase per
    visit."""
    balancer = api_balancer.for_cluster(ctx.cluster)
    if not balancer.ident:
        raise PermanentError(f"The {balancer.what} has not been created yet.")
    phase = ctx.memo.get("phase", "start")
    if phase == "start":
        return _take_out(ctx, node, plan, balancer)
    if phase == "drained":
        return _restart(ctx, node, plan, balancer)
    if phase == "restarted":
        waiting = _await_ready(ctx, node, plan)
        if waiting is not None:
            return waiting
    if ctx.memo["phase"] == "ready":
        _put_back(ctx, node, balancer)
    return _await_healthy(ctx, node, plan, balancer)
