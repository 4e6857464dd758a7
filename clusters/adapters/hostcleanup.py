"""Remove this cluster's K3s from its hosts (destroy, node removal), host by host.

Why a module: destroy and remove-node must judge ownership and report unreachable hosts the
same way. A host is cleaned only when its K3s is this cluster's: the node says our install
step put it there (`Node.k3s_installed`, stored, so it survives a user's Retry, which empties
the step's memo), or its config.yaml carries this cluster's token (then that proof is stored
on the node too, before anything is removed: a cleanup interrupted after config.yaml went
still knows whose K3s is left). One unreachable host does not stop the others being cleaned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from clusters.adapters import nodes
from clusters.core.errors import PermanentError, StepError, TransientError
from clusters.k3s.uninstall import CLEANUP_SCRIPT, LOOK_SCRIPT, belongs_to
from clusters.models import Node, Step

if TYPE_CHECKING:
    # A type only: adapters never import the engine (.importlinter); the step
    # context is handed in by the step that calls them.
    from clusters.engine.stepcontext import StepContext

TRACES_MARK = "panel-k3s-traces="
CLEANED = "cleaned_hosts"


@dataclass(frozen=True)
class HostReport:
    node: Node
    verdict: str = ""  # removed | clean | foreign
    error: StepError | None = None


def _look(ctx: StepContext, node: Node) -> tuple[str, bool]:
    """(config.yaml text or '', whether any K3s file is on the host)."""
    with nodes.session(ctx, node) as connection:
        result = connection.run("sh -s", sudo=True, stdin=LOOK_SCRIPT, timeout=60)
    if not result.ok:
        raise PermanentError(f"Looking for K3s on {node.private_ip} failed "
                             f"(exit {result.exit_status}): {result.tail(ctx.redact, 3)}")
    text, _, mark = result.stdout.rpartition(TRACES_MARK)
    return text, mark.strip() == "yes"


def _cleanup(ctx: StepContext, node: Node) -> None:
    with nodes.session(ctx, node) as connection:
        label = node.private_ip
        result = connection.run(
            "sh -s", sudo=True, stdin=CLEANUP_SCRIPT, timeout=300, redact=ctx.redact,
            on_line=lambda stream, text, cut=0: ctx.say(
                f"[{label}] {text}", "stderr" if stream == "stderr" else "stdout", cut=cut))
    if not result.ok:
        raise PermanentError(f"Removing K3s from {node.private_ip} failed "
                             f"(exit {result.exit_status}): {result.tail(ctx.redact, 5)}")


def _save_memo(ctx: StepContext) -> None:
    """Persist the memo now: a crash mid-cleanup need not look at finished hosts again."""
    Step.objects.filter(pk=ctx.step.pk).update(result=ctx.memo)


def _mark_installed(node: Node, installed: bool) -> None:
    Node.objects.filter(pk=node.pk).update(k3s_installed=installed)
    node.k3s_installed = installed


def _judge(ctx: StepContext, node: Node) -> HostReport:
    try:
        config, traces = _look(ctx, node)
    except StepError as exc:
        if not node.host_key:
            # Never logged in (no pinned key): the panel cannot have installed anything
            # there, so a host with wrong credentials does not block destroy forever.
            ctx.say(f"{node.private_ip}: never reached by the panel ({exc}); nothing of this "
                    "cluster can be on it", "stderr")
            return HostReport(node, "clean")
        return HostReport(node, error=exc)
    if not traces:
        return HostReport(node, "clean")
    if node.k3s_installed:
        return HostReport(node, "ours")
    if belongs_to(config, (ctx.cluster.k3s_token, ctx.cluster.k3s_agent_token)):
        _mark_installed(node, True)
        return HostReport(node, "ours")
    return HostReport(node, "foreign")


def remove_k3s(ctx: StepContext, members: list[Node]) -> list[HostReport]:
    """Judge every host, then clean the ones holding this cluster's K3s; raise when a host
    could not be reached or cleaned (after the others were done), so Retry finishes it."""
    ctx.register_secret(ctx.cluster.k3s_token)
    ctx.register_secret(ctx.cluster.k3s_agent_token)
    cleaned = set(ctx.memo.get(CLEANED, []))
    todo = [node for node in members if node.private_ip not in cleaned]
    judged = nodes.for_each_node(todo, lambda node: _judge(ctx, node))

    def clean(report: HostReport) -> HostReport:
        if report.verdict != "ours":
            return report
        try:
            _cleanup(ctx, report.node)
        except StepError as exc:
            return HostReport(report.node, error=exc)
        return HostReport(report.node, "removed")

    reports = nodes.for_each_node(judged, clean) if judged else []
    for report in reports:
        ip = report.node.private_ip
        if report.verdict == "removed":
            ctx.say(f"{ip}: K3s removed")
        elif report.verdict == "clean":
            ctx.say(f"{ip}: no K3s here, nothing to remove")
        elif report.verdict == "foreign":
            ctx.say(f"{ip}: the K3s on this host was not installed for this cluster (its "
                    "config has another token); left alone", "stderr")
        if report.error is None:
            cleaned.add(ip)
            if report.verdict in ("removed", "clean"):
                _mark_installed(report.node, False)  # nothing of ours is left there
    ctx.memo[CLEANED] = sorted(cleaned)
    _save_memo(ctx)
    failed = [report for report in reports if report.error is not None]
    if failed:
        summary = "; ".join(f"{r.node.private_ip}: {r.error}" for r in failed)
        message = (f"Could not remove K3s from {len(failed)} host(s) ({summary}). "
                   f"{len(cleaned)} of {len(members)} host(s) are done. Make the host "
                   "reachable and press Retry.")
        if all(isinstance(r.error, TransientError) for r in failed):
            raise TransientError(message)
        raise PermanentError(message)
    return reports
