"""Reaching a cluster's hosts over SSH with the host key pinned on first contact.

Why: every step that touches a host must log in the same way and refuse a host whose key
changed; keeping it here means no step can forget the pin.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, TypeVar

from django import db

from clusters.adapters import ssh
from clusters.adapters.host_addresses import address_refusal
from clusters.core.errors import PermanentError, TransientError
from clusters.k3s.diagnosis import diagnose
from clusters.models import Node

if TYPE_CHECKING:
    # A type only: adapters never import the engine (.importlinter); the step
    # context is handed in by the step that calls them.
    from clusters.engine.stepcontext import StepContext

T = TypeVar("T")
Item = TypeVar("Item")

JOURNAL_LINES = 200
OUTPUT_TAIL_LINES = 40


class CommandFailed(PermanentError):
    """A logged command exited non-zero; `output` is the redacted tail of what it printed
    (stdout, then stderr), which the diagnostics of a failed install show again."""

    def __init__(self, message: str, *, output: str = "") -> None:
        super().__init__(message)
        self.output = output


def target_for(node: Node) -> ssh.SSHTarget:
    """How to log in to a node; refused when its address is one the panel must never reach
    (clusters.adapters.host_addresses: a row written before the rule, or by hand)."""
    address = node.ssh_address
    refusal = address_refusal(address)
    if refusal:
        raise PermanentError(str(refusal))
    return ssh.SSHTarget(
        host=address,
        username=node.ssh_user,
        port=node.ssh_port,
        password=node.ssh_password or None,
        private_key=node.ssh_private_key or None,
        passphrase=node.ssh_key_passphrase or None,
    )


@contextlib.contextmanager
def session(ctx: StepContext, node: Node) -> Iterator[ssh.SSHSession]:
    """An SSH session to `node`; the first contact pins its host key, later ones enforce it."""
    pinned = node.host_key or None
    with ssh.connect(target_for(node), pinned_fingerprint=pinned) as connection:
        if not pinned:
            Node.objects.filter(pk=node.pk, host_key="").update(
                host_key=connection.host_key_fingerprint)
            node.host_key = connection.host_key_fingerprint
            ctx.say(f"{node.private_ip}: host key {connection.host_key_fingerprint} recorded "
                    "(it is checked on every later connection)")
        yield connection


def run_logged(ctx: StepContext, connection: ssh.SSHSession, command: str | list[str], *,
               what: str, sudo: bool = True, timeout: float = 600, check: bool = True,
               env_file: str | None = None, lock: str | None = None) -> ssh.CommandResult:
    """Run a command on a host with its output streamed, redacted, into the step log.
    `lock`: see ssh.SSHSession.run (raises ssh.HostBusy while another holder runs)."""
    label = connection.target.host
    result = connection.run(
        command, sudo=sudo, timeout=timeout, redact=ctx.redact, env_file=env_file, lock=lock,
        on_line=lambda stream, text, cut=0: ctx.say(
            f"[{label}] {text}", "stderr" if stream == "stderr" else "stdout", cut=cut),
    )
    if check and not result.ok:
        printed = result.stdout.splitlines()[-OUTPUT_TAIL_LINES:] + \
            result.stderr.splitlines()[-OUTPUT_TAIL_LINES:]
        raise CommandFailed(f"{what} failed on {label} (exit {result.exit_status}): "
                            f"{result.tail(ctx.redact, 5)}",
                            output=ctx.redact("\n".join(printed)))
    return result


def local_api_ready(ctx: StepContext, node: Node) -> bool:
    """The server's own API (127.0.0.1, its own k3s.yaml) says /readyz ok; a host that cannot
    be reached right now is simply not ready yet."""
    try:
        with session(ctx, node) as connection:
            result = connection.run(["k3s", "kubectl", "get", "--raw=/readyz"], sudo=True,
                                    timeout=30)
    except TransientError:
        return False
    return result.ok and result.stdout.strip() == "ok"


def journal_problem(ctx: StepContext, connection: ssh.SSHSession, node: Node, unit: str,
                    since: str = "") -> str:
    """A plain explanation of the known failures K3s logged (clusters.k3s.diagnosis; only
    those waiting cannot heal), or ''; the first such journal line goes to the step log."""
    command = ["journalctl", "-u", unit, "-n", str(JOURNAL_LINES), "--no-pager"]
    if since:
        command += ["--since", since]
    journal = connection.run(command, sudo=True, timeout=30)
    findings = [d for d in diagnose(journal.stdout.splitlines()) if not d.transient]
    if findings:
        ctx.say(f"{node.private_ip}: journal says: {ctx.redact(findings[0].line)}", "stderr")
    return " ".join(d.explanation for d in findings)


def for_each_node(nodes: Sequence[Item], work: Callable[[Item], T], limit: int = 8) -> list[T]:
    """Run `work` for every node (or a report naming one) in parallel threads, each with its
    own DB connection.

    The first exception is re-raised after all finished, so one bad host does not hide
    what the others said.
    """
    def guarded(node: Item) -> T:
        try:
            return work(node)
        finally:
            db.connection.close()

    with ThreadPoolExecutor(max_workers=max(1, min(limit, len(nodes)))) as pool:
        futures = [pool.submit(guarded, node) for node in nodes]
        wait(futures)
    return [future.result() for future in futures]
