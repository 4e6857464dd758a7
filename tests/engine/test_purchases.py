"""A purchase whose answer was lost is adopted by tag, never bought twice; a refused one gets a
new ClientToken (clusters/adapters/purchase.py, used by rds.create and slb.create).

The engine runs in this process (tests/support/engine_specs.py) and the steps talk to a real
emulator through the SDK. The emulator can carry a create out and then lose its answer
(fault `lose_answer`), and can forget every ClientToken it saw: Alibaba Cloud documents no
lifetime for one, so a retry must not depend on the token being remembered.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from clusters.adapters import cloud
from clusters.adapters.aliyun import SlbSpec
from clusters.adapters.aliyun.errors import create_refused
from clusters.core.errors import PermanentError, StepError, TransientError
from clusters.engine import pipeline
from clusters.engine.pipeline import StepSpec, create_run
from clusters.models import Cluster, LogLine, Run, RunKind, StepStatus
from sandbox.aliyun.testing import Emulator
from tests.support.engine_specs import InProcessEngine, time_passes
from tests.support.factories import make_cluster
from tests.support.runs import step

pytestmark = pytest.mark.django_db


@pytest.fixture
def cluster(emu: Emulator, settings: Any) -> Cluster:
    settings.ALIYUN_ENDPOINT_OVERRIDE = emu.endpoint
    emu.control.clear_faults()
    emu.control.clear_calls()
    return make_cluster(region=emu.region_id, zone=emu.vswitch["zone_id"],
                        vpc_id=emu.vpc["vpc_id"], vswitch_id=emu.vswitch["vswitch_id"])


def start(engine: InProcessEngine, cluster: Cluster, handler: str) -> Run:
    run = engine.act(create_run, cluster, RunKind.TEST, [StepSpec("buy", "Buy", handler)])
    engine.deliver(engine.take()[0])  # advance: the step is claimed and sent
    return run


def attempt(engine: InProcessEngine) -> None:
    """Deliver the one message the step is waiting for (its first run or its retry)."""
    (message,) = engine.take()
    if message.countdown > 0:
        time_passes(message.countdown)
    engine.deliver(message)


def tagged(emu: Emulator, cluster: Cluster, kind: str) -> list[str]:
    """What the emulator holds of `kind` with this cluster's tag (its inventory, not the API)."""
    tag = {"Key": cloud.TAG_KEY, "Value": str(cluster.code)}
    return sorted(r["id"] for r in emu.control.resources()
                  if r["type"] == kind and tag in r["tags"])


def log_of(run: Run) -> list[str]:
    return list(LogLine.objects.filter(step__run=run).order_by("step", "seq")
                .values_list("text", flat=True))


def create_tokens(emu: Emulator, action: str) -> list[tuple[int, str]]:
    return [(c["status"], c["params"].get("ClientToken", "")) for c in emu.control.calls()
            if c["action"] == action]


@override_settings(PANEL_RETRY_BASE_SECONDS=0.1)
def test_a_lost_create_answer_is_adopted_by_tag_even_when_the_token_is_forgotten(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    emu.control.add_fault(action="CreateLoadBalancer", lose_answer=True, count=1)
    run = start(engine, cluster, "slb.create")
    attempt(engine)  # the cloud bought the SLB; the panel heard nothing
    assert step(run, "buy").status == StepStatus.WAITING  # a transient failure: retried
    (bought,) = tagged(emu, cluster, "slb_load_balancer")
    assert not cluster.resources.get().provider_id
    emu.control.forget_client_tokens()
    engine.deliver_all()
    assert step(run, "buy").status == StepStatus.SUCCEEDED
    assert tagged(emu, cluster, "slb_load_balancer") == [bought]  # bought once, not twice
    row = cluster.resources.get()
    assert (row.provider_id, row.token_generation, row.attributes["address"]) == (
        bought, 0, step(run, "buy").result["address"])
    assert [status for status, _ in create_tokens(emu, "CreateLoadBalancer")] == [0]
    lines = log_of(run)
    assert any(line.startswith("CreateLoadBalancer got no definite answer (code SDK.HttpError)")
               for line in lines)
    assert any(line.startswith(f"Adopted {bought} found by tag {cloud.TAG_KEY}={cluster.code}")
               for line in lines)


@override_settings(PANEL_RETRY_BASE_SECONDS=0.1)
def test_a_lost_rds_create_is_adopted_and_awaited_not_bought_again(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    emu.control.add_fault(action="CreateDBInstance", lose_answer=True, count=1)
    run = start(engine, cluster, "rds.create")
    attempt(engine)
    (bought,) = tagged(emu, cluster, "rds_instance")
    emu.control.forget_client_tokens()
    attempt(engine)  # the retry: looks by tag, adopts, waits for Running
    buy = step(run, "buy")
    assert buy.status == StepStatus.WAITING and bought in buy.wait_reason
    assert cluster.resources.get().provider_id == bought
    assert tagged(emu, cluster, "rds_instance") == [bought]
    assert [status for status, _ in create_tokens(emu, "CreateDBInstance")] == [0]
    assert any(line.startswith(f"Adopted {bought} found by tag") for line in log_of(run))


def test_a_refused_create_moves_to_a_new_token_generation(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    emu.control.add_fault(action="CreateLoadBalancer", code="OperationDenied.NoStock",
                          http_status=400, count=1)
    run = start(engine, cluster, "slb.create")
    attempt(engine)
    buy = step(run, "buy")
    assert buy.status == StepStatus.FAILED and "OperationDenied.NoStock" in buy.error
    row = cluster.resources.get()
    first = cloud.client_token(cluster, "slb")
    assert (row.token_generation, row.client_token, row.provider_id) == (1, first + "-g1", "")
    refused = "CreateLoadBalancer was refused (code OperationDenied.NoStock, RequestId "
    moved_on = f"so the next attempt uses a new one, {first}-g1 (generation 1)"
    assert any(line.startswith(refused) and line.endswith(moved_on) for line in log_of(run))
    engine.act(pipeline.retry, run)
    engine.deliver_all()
    assert step(run, "buy").status == StepStatus.SUCCEEDED
    assert create_tokens(emu, "CreateLoadBalancer") == [(400, first), (200, first + "-g1")]
    assert len(tagged(emu, cluster, "slb_load_balancer")) == 1


@override_settings(PANEL_RETRY_BASE_SECONDS=0.1)
def test_a_create_without_a_definite_answer_keeps_its_token(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """A 5xx may come after the cloud bought: the same ClientToken is sent again."""
    emu.control.add_fault(action="CreateLoadBalancer", code="ServiceUnavailable", count=1)
    run = start(engine, cluster, "slb.create")
    engine.deliver_all()
    assert step(run, "buy").status == StepStatus.SUCCEEDED
    token = cloud.client_token(cluster, "slb")
    assert create_tokens(emu, "CreateLoadBalancer") == [(503, token), (200, token)]
    assert cluster.resources.get().token_generation == 0
    assert any("re-sends ClientToken" in line for line in log_of(run))
    assert any(line.startswith("No SLB carries tag") and "was sent 1 time(s)" in line
               for line in log_of(run))


def test_two_tagged_candidates_fail_the_step_and_name_both(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    api = cloud.cloud_for(cluster)
    spec = SlbSpec("k3s-by-hand", cluster.vswitch_id, cluster.vpc_id)
    found = sorted(api.create_slb(spec, client_token=f"by-hand-{n}-{cluster.code.hex[:8]}",
                                  tags=cloud.tags(cluster)).load_balancer_id for n in (1, 2))
    emu.control.clear_calls()
    run = start(engine, cluster, "slb.create")
    attempt(engine)
    buy = step(run, "buy")
    assert buy.status == StepStatus.FAILED
    assert buy.error.startswith(
        f"2 SLBs carry this cluster's tag {cloud.TAG_KEY}={cluster.code} and the ledger records "
        f"none of them: {found[0]}, {found[1]}. The panel does not pick one")
    assert create_tokens(emu, "CreateLoadBalancer") == []
    assert cluster.resources.get().provider_id == ""


def test_the_token_of_a_later_generation_fits_alibabas_64_characters() -> None:
    cluster = make_cluster()
    long_kind = "k" * 32
    first, tenth = (cloud.client_token(cluster, long_kind, n) for n in (0, 10))
    assert len(first) == len(tenth) == 64 and tenth.endswith("-g10")
    assert cloud.client_token(cluster, "slb") == f"k3s-{cluster.code.hex}-slb"


@pytest.mark.parametrize(("error", "refused"), [
    (PermanentError("quota", code="QuotaExceeded.Slb", http_status=400), True),
    (TransientError("throttled", code="Throttling.User", http_status=400), True),
    (TransientError("busy", code="ServiceUnavailable", http_status=503), False),
    (TransientError("no answer", code="SDK.HttpError"), False),
    (PermanentError("token seen", code="LX_REQUEST_TOKEN_CONFLICT", http_status=400), False),
    (TransientError("in flight", code="OperationFailed.TokenIsProcessing", http_status=400),
     False),
])
def test_only_a_4xx_answer_about_the_request_frees_the_token(error: StepError,
                                                             refused: bool) -> None:
    assert create_refused(error) is refused
