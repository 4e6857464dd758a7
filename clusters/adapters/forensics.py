"""Collect what an engineer looks at next on a host where K3s failed, into a step's log.

Why here: this is the SSH side of clusters.k3s.forensics (which holds the commands and the
report's format). Every probe runs with its own timeout and its own error handling: a host
without `free`, a journal that times out or a config file that is missing is one line in
the report, never a reason to lose the other sections or to fail the caller. Nothing raises
from here (but LeaseLost, which is not an Exception: the step must stop).

Every probe only reads; the host is left exactly as the failure left it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from clusters.adapters import nodes, ssh
from clusters.core.errors import StepError
from clusters.k3s.forensics import ProbeResult, probes, report
from clusters.models import Node, NodeRole

if TYPE_CHECKING:
    # A type only: adapters never import the engine (.importlinter); the step
    # context is handed in by the step (or the diagnostics task) that calls them.
    from clusters.engine.stepcontext import StepContext


def unit_of(node: Node) -> str:
    return "k3s" if node.role == NodeRole.SERVER else "k3s-agent"


def _probe_all(connection: ssh.SSHSession, unit: str) -> list[ProbeResult]:
    results = []
    for probe in probes(unit):
        try:
            # sudo: journalctl and the 0600 config file need root for a non-root login.
            found = connection.run(list(probe.argv), sudo=True, timeout=probe.timeout)
        except ssh.CommandTimeout:
            results.append(ProbeResult(probe, error=f"no answer within {probe.timeout:.0f} s"))
            continue
        except StepError as exc:
            results.append(ProbeResult(probe, error=str(exc)))
            continue
        results.append(ProbeResult(probe, found.exit_status, found.stdout, found.stderr))
    return results


def host_report(ctx: StepContext, node: Node, why: str, *, install_output: str = "") -> list[str]:
    """The redacted report lines of one host (read over one SSH session)."""
    try:
        with nodes.session(ctx, node) as connection:
            results = _probe_all(connection, unit_of(node))
    except StepError as exc:
        return report(node.private_ip, why, [], ctx.redact, unreachable=str(exc))
    return report(node.private_ip, why, results, ctx.redact, install_output=install_output)


def collect(ctx: StepContext, members: Sequence[Node], why: str, *,
            install_output: str = "") -> None:
    """Read every host in parallel, then write each host's report whole, in order, to the
    step's log (through its redactor), so two hosts' sections never interleave."""
    reports = nodes.for_each_node(
        list(members), lambda node: host_report(ctx, node, why, install_output=install_output))
    for lines in reports:
        for line in lines:
            ctx.say(line)
    ctx.log.flush()


AFTER_FAILURE = "the step failed; collected before anything else touched the host"


def after_failure(ctx: StepContext, node: Node, error: Exception | None = None) -> None:
    """The diagnostics of the node a failed step was about, at the end of its log; when
    `error` is a failed logged command (the install script), its output's tail leads them."""
    output = error.output if isinstance(error, nodes.CommandFailed) else ""
    collect(ctx, [node], AFTER_FAILURE, install_output=output)
