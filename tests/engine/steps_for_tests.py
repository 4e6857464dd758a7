"""Step handlers that exercise the engine; loaded by the test settings in workers too.

They are real handlers written to the engine's contract, not mocks: each behaves like a
class of provisioning step (slow work, waiting on a resource, buying a resource, flaky
APIs, leaking output).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import time
from pathlib import Path

from clusters.adapters import nodes, ssh
from clusters.core.errors import PermanentError, TransientError
from clusters.engine.outcomes import Done, Fail, Outcome, Skip, Wait
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.models import CloudResource, Node, ResourceState
from clusters.steps.k3s import collects_diagnostics


@step_handler("test.work")
def work(ctx: StepContext) -> Outcome:
    """Busy for a while (like an SSH command), recording when it ran and where: the process
    and its network namespace (two workers on two "machines", benchmarks/two_machines.py)."""
    started = time.time()
    ctx.say(f"working for {ctx.args.get('seconds', 0)}s")
    time.sleep(float(ctx.args.get("seconds", 0)))
    return Done({"started": started, "finished": time.time(), "pid": os.getpid(),
                 "netns": os.readlink("/proc/self/ns/net")})


@step_handler("test.secrets_and_logs")
def secrets_and_logs(ctx: StepContext) -> Outcome:
    """What a realistic step does to the worker's memory without a cloud: learns a secret of
    its own (like the kubeconfig the K3s step fetches), prints lines holding the cluster's
    secrets and its own, and logs through Python logging (the redacting filter)."""
    learnt = f"kubeconfig-{ctx.run.pk}-{ctx.step.key}-" + "Q" * 40
    ctx.register_secret(learnt)
    for index in range(int(ctx.args.get("lines", 20))):
        ctx.say(f"line {index} token={ctx.cluster.k3s_token} key={learnt}")
    logging.getLogger("clusters.steps").info("step %s learnt %s", ctx.step.key, learnt)
    return Done({"pid": os.getpid()})


@step_handler("test.wait_then_done")
def wait_then_done(ctx: StepContext) -> Outcome:
    """Like waiting for RDS to be Running: asks to be called again N times."""
    seen = ctx.memo.get("polls", 0) + 1
    ctx.memo["polls"] = seen
    if seen <= int(ctx.args.get("waits", 3)):
        return Wait(float(ctx.args.get("seconds", 1.0)), f"not ready yet ({seen})")
    return Done({"polls": seen})


@step_handler("test.wait_same")
def wait_same(ctx: StepContext) -> Outcome:
    """Like waiting for an RDS instance to be created: the same answer `waits` times, asking
    for `seconds` each time (`grow`: false to opt out of growing intervals). `news`: the looks
    at which the answer changes, as when one of three instances turns Running;
    `throttled_at`: the looks the cloud answers Throttling."""
    seen = ctx.memo.get("looks", 0) + 1
    ctx.memo["looks"] = seen
    if seen in ctx.args.get("throttled_at", []):
        raise TransientError("Throttling.User: Request was denied due to user flow control")
    if seen > int(ctx.args.get("waits", 3)):
        return Done({"looks": seen})
    running = sum(1 for look in ctx.args.get("news", []) if look <= seen)
    return Wait(float(ctx.args.get("seconds", 10.0)), f"{running} of 3 instances Running",
                grow=bool(ctx.args.get("grow", True)))


class TokenShop:
    """A file standing in for a cloud API with ClientToken idempotency (the real emulator is
    used by provisioning tests; the engine tests only need a place that counts purchases)."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def buy(self, client_token: str) -> str:
        with open(self.path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            bought = [json.loads(line) for line in handle if line.strip()]
            for item in bought:
                if item["token"] == client_token:
                    return item["id"]
            resource_id = f"res-{len(bought) + 1}"
            handle.write(json.dumps({"token": client_token, "id": resource_id}) + "\n")
            return resource_id


@step_handler("test.buy_once")
def buy_once(ctx: StepContext) -> Outcome:
    """Records intent in the ledger, buys with its ClientToken, then works slowly."""
    token = f"run{ctx.run.pk}-{ctx.step.key}"
    resource, _ = CloudResource.objects.get_or_create(
        client_token=token,
        defaults={"cluster": ctx.cluster, "run": ctx.run, "kind": "test", "region": "test"},
    )
    resource_id = TokenShop(ctx.args["cloud_file"]).buy(token)
    ctx.say(f"bought {resource_id}; finishing slowly")
    time.sleep(float(ctx.args.get("seconds", 0)))
    CloudResource.objects.filter(pk=resource.pk).update(
        provider_id=resource_id, state=ResourceState.PRESENT
    )
    return Done({"resource": resource_id})


@step_handler("test.flaky")
def flaky(ctx: StepContext) -> Outcome:
    """Throttled on its first N tries, like a busy API (it records no progress meanwhile)."""
    failures = int(ctx.args.get("failures", 2))
    if ctx.step.tries <= failures:
        raise TransientError("Request was denied due to request throttling.", code="Throttling",
                             request_id=f"REQ-{ctx.step.tries - 1}")
    return Done({"after_failures": ctx.step.tries - 1})


@step_handler("test.quota")
def quota(ctx: StepContext) -> Outcome:
    raise PermanentError("The quota of RDS instances is exceeded.", code="QuotaExceeded",
                         request_id="REQ-QUOTA")


@step_handler("test.fail_first")
def fail_first(ctx: StepContext) -> Outcome:
    """Fails until the user fixes the world (a marker file), like a missing whitelist entry."""
    if not Path(ctx.args["fixed_marker"]).exists():
        return Fail("The host is not in the RDS whitelist; add it and press Retry.")
    return Done({"fixed": True})


@step_handler("test.skip")
def skip(ctx: StepContext) -> Outcome:
    """Nothing to do here, like an RDS step when the user brought the datastore."""
    return Skip(str(ctx.args.get("reason", "nothing to do")))


@step_handler("test.returns_junk")
def returns_junk(ctx: StepContext) -> Outcome:
    """A handler with a bug: it returns something that is not an outcome."""
    return "done"  # type: ignore[return-value]


@step_handler("test.progress_then_throttled")
def progress_then_throttled(ctx: StepContext) -> Outcome:
    """Gets one page further each call and is throttled after it, until the last page: like a
    paged listing on a busy API (each call makes progress, recorded in the memo)."""
    page = ctx.memo.get("page", 0) + 1
    ctx.memo["page"] = page
    if page < int(ctx.args.get("pages", 3)):
        raise TransientError("Request was denied due to request throttling.", code="Throttling")
    return Done({"pages": page})


@step_handler("test.cancels_its_run")
def cancels_its_run(ctx: StepContext) -> Outcome:
    """The user presses Cancel while this step runs (the view's call, made from inside)."""
    from clusters.engine import pipeline  # noqa: PLC0415 - the engine loads this module

    pipeline.cancel(ctx.run)
    return Done({"finished_anyway": True})


@step_handler("test.crash")
def crash(ctx: StepContext) -> Outcome:
    raise RuntimeError("unexpected None")


@step_handler("test.leak")
def leak(ctx: StepContext) -> Outcome:
    """Prints and raises the cluster's secrets, as a failing install command might."""
    token = ctx.cluster.k3s_token
    secret = ctx.cluster.cloud_account.access_key_secret
    ctx.say(f"K3S_TOKEN={token}")
    ctx.say(f"aliyun configure --secret {secret}", stream="stderr")
    for index in range(int(ctx.args.get("lines", 0))):
        ctx.say(f"chatty line {index}")
    if ctx.args.get("mode") == "raise":
        raise PermanentError(f"install failed: token {token} rejected")
    if ctx.args.get("mode") == "crash":
        raise ValueError(f"cannot parse {secret}")
    return Fail(f"server said: bad token {token}")


@step_handler("test.chatty")
def chatty(ctx: StepContext) -> Outcome:
    """A long install that prints a numbered line every 0.1 s (like apt or the K3s script)."""
    lines = int(ctx.args.get("lines", 100))
    for number in range(lines):
        ctx.say(f"line {number}")
        time.sleep(0.1)
    return Done({"lines": lines, "pid": os.getpid()})


@step_handler("test.install_that_fails")
@collects_diagnostics
def install_that_fails(ctx: StepContext) -> Outcome:
    """Like an install script that dies on its host: prints, then exits non-zero (or, with
    `done`, succeeds), under the same failure forensics as the K3s install steps."""
    node = Node.objects.get(pk=ctx.args["node_id"])
    script = "echo '[INFO]  Downloading k3s'; echo '[ERROR] Download failed' >&2; exit 3"
    with nodes.session(ctx, node) as connection:
        nodes.run_logged(ctx, connection, "true" if ctx.args.get("done") else script,
                         what="The K3s install script", sudo=False, timeout=30)
    return Done({})


@step_handler("test.stuck")
def stuck(ctx: StepContext) -> Outcome:
    """Blocked in a call without a timeout and without a word (a read from a host whose disk
    hangs): only the engine's time limit or a cancel can end the step meanwhile."""
    time.sleep(float(ctx.args.get("seconds", 5)))
    return Done({"returned": True})


@step_handler("test.upload")
def upload(ctx: StepContext) -> Outcome:
    """Writes a file to a host over SFTP, as the install steps write config.yaml."""
    target = ssh.SSHTarget(ctx.args["host"], ctx.args["user"], int(ctx.args["port"]),
                           password=ctx.args["password"])
    with ssh.connect(target, io_timeout=float(ctx.args.get("io_timeout", 30))) as session:
        session.put_file("/etc/rancher/k3s/config.yaml", "token: x\n" * 50_000)
    return Done({"uploaded": True})
