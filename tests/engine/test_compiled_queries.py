"""The engine's queries compiled once per process (clusters/engine/compiled.py) are still what
the ORM makes of them, and give what the ORM's querysets give.

Why a guard: the cache keeps SQL the ORM wrote at the first call. If a Django upgrade made that
SQL depend on the ids (or moved the parameters), the engine would run stale SQL with ids in the
wrong places; this fails first.
"""

from __future__ import annotations

import pytest

from clusters.engine import compiled, pipeline, steplog
from clusters.engine.pipeline import StepSpec, create_run
from clusters.engine.steplog import StepLog
from clusters.models import LOG_OMITTED, LogLine, RunKind, Step
from tests.support.factories import make_cluster

pytestmark = pytest.mark.django_db


def test_every_compiled_query_is_the_sql_the_orm_makes_now() -> None:
    names = {query.name for query in compiled.REGISTRY}
    assert {pipeline._RUN_STEPS.name, pipeline._CLAIM_CONTEXT.name, pipeline._NODE_SECRETS.name,
            steplog._STORED.name} <= names
    for query in compiled.REGISTRY:
        for ids in ((1,), (2,), (987_654_321,)):
            query.check(*ids)


def test_a_compiled_query_gives_the_rows_its_queryset_gives() -> None:
    cluster = make_cluster(nodes=2)
    run = create_run(cluster, RunKind.TEST, [
        StepSpec("a", "A", "test.work"), StepSpec("b", "B", "test.work", ["a"])], start=False)
    first = Step.objects.get(run=run, key="a")
    LogLine.objects.create(step=first, seq=1, time=first.updated_at, text="one")
    LogLine.objects.create(step=first, seq=7, time=first.updated_at, text="", stream=LOG_OMITTED)
    LogLine.objects.create(step=first, seq=9, time=first.updated_at, text="nine")
    for query, ids in ((pipeline._RUN_STEPS, run.pk), (pipeline._CLAIM_CONTEXT, first.pk),
                       (pipeline._NODE_SECRETS, cluster.pk),
                       (steplog._STORED, first.pk), (steplog._STORED, 0)):
        expected = list(query.build(ids))
        assert sorted(query.rows(ids), key=repr) == sorted(expected, key=repr), query.name
    # What the step log makes of it: the next line number and the head fixed by the marker.
    log = StepLog(first.pk, str)
    assert (log._next_seq, log._head) == (10, 6)
    # Decrypted, JSON decoded: the secrets a claim hands to the handler are plaintext.
    assert cluster.k3s_token and cluster.k3s_token in pipeline._CLAIM_CONTEXT.rows(first.pk)[0]
    assert sorted(row[3] for row in pipeline._RUN_STEPS.rows(run.pk)) == [[], ["a"]]
    assert pipeline._secrets_of(cluster) == cluster.secret_values()
    assert len(pipeline._NODE_SECRETS.rows(cluster.pk)) == 2


def test_a_query_whose_sql_depends_on_its_argument_cannot_be_cached() -> None:
    unsafe = compiled.CompiledQuery(
        "a test query that names its argument twice",
        lambda step_id: Step.objects.filter(pk=step_id, run_id=step_id).values_list("id"), 1)
    try:
        with pytest.raises(AssertionError, match="found 2 times"):
            unsafe.rows(1)
    finally:
        compiled.REGISTRY.remove(unsafe)
