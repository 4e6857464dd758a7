"""The create run's last step: the first health verdict, shown on the cluster page."""

from __future__ import annotations

from clusters.adapters import health
from clusters.engine.outcomes import Done, Outcome
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.models import Cluster


@step_handler("health.check")
def first_check(ctx: StepContext) -> Outcome:
    assessment = health.refresh(Cluster.objects.select_related("cloud_account")
                                .get(pk=ctx.cluster.pk))
    for fact in assessment.facts:
        ctx.say(fact)
    for reason in assessment.reasons:
        ctx.say(health.reason_message(reason), "stderr")
    return Done({"health": assessment.health, "reasons": assessment.reasons})
