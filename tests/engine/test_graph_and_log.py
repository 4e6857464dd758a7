"""Run graphs are validated before they are stored; step logs are ordered and batched."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clusters.core.redaction import Redactor
from clusters.engine.pipeline import GraphError, StepSpec, create_run
from clusters.engine.steplog import StepLog
from clusters.models import LogLine, Run, RunKind
from tests.support.factories import make_cluster

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([StepSpec("a", "A", "test.work", ["b"]), StepSpec("b", "B", "test.work", ["a"])],
         "cycle"),
        ([StepSpec("a", "A", "test.work", ["missing"])], "unknown"),
        ([StepSpec("a", "A", "test.work"), StepSpec("a", "A", "test.work")], "share a key"),
    ],
)
def test_bad_graphs_are_refused_and_nothing_is_stored(specs, message):
    cluster = make_cluster()
    with pytest.raises(GraphError, match=message):
        create_run(cluster, RunKind.TEST, specs, start=False)
    assert not Run.objects.exists()


def test_chatty_output_is_batched_in_order_and_redacted():
    cluster = make_cluster()
    run = create_run(cluster, RunKind.TEST, [StepSpec("a", "A", "test.work")], start=False)
    step = run.steps.get()
    log = StepLog(step.pk, Redactor(["s3cr3t-value"]), batch_size=100, max_delay=60)
    with CaptureQueriesContext(connection) as queries:
        for index in range(1000):
            log.write(f"line {index} password=s3cr3t-value")
        log.flush()
    # one executemany per batch (Django records it as "100 times: INSERT ...")
    inserts = [q for q in queries.captured_queries if q["sql"].startswith("100 times: INSERT")]
    assert len(inserts) == 10
    texts = list(LogLine.objects.filter(step=step).order_by("seq").values_list("text", flat=True))
    assert texts[0] == "line 0 password=***" and texts[-1] == "line 999 password=***"
    assert len(texts) == 1000

    # A later attempt continues the numbering instead of clashing with it.
    again = StepLog(step.pk, Redactor([]))
    again.write("attempt 2\nsecond line")
    again.flush()
    assert list(LogLine.objects.filter(step=step).order_by("-seq")
                .values_list("seq", flat=True)[:2]) == [1002, 1001]


def test_redactor_masks_url_quoted_and_multiline_secrets():
    key = "-----BEGIN KEY-----\nMIIEowIBAAKCAQEAtotallysecretmaterial\n-----END KEY-----"
    redact = Redactor(["p@ss:w/rd", key])
    assert redact("mysql://u:p%40ss%3Aw%2Frd@tcp(h:3306)/k3s") == "mysql://u:***@tcp(h:3306)/k3s"
    assert "totallysecret" not in redact("got MIIEowIBAAKCAQEAtotallysecretmaterial here")


def test_control_bytes_in_host_output_are_stored_escaped_and_the_batch_survives():
    """A host that prints NUL (PostgreSQL refuses it: DataError, the batch lost) or ANSI
    escapes: every line is stored, tabs kept, ANSI sequences stripped (the page shows plain
    text), other control bytes shown as \\xNN."""
    cluster = make_cluster()
    run = create_run(cluster, RunKind.TEST, [StepSpec("a", "A", "test.work")], start=False)
    step = run.steps.get()
    log = StepLog(step.pk, Redactor(["s3cr3t-value"]), batch_size=100, max_delay=60)
    log.write("before")
    log.write("core\x00dump\tcol2 \x1b[31mred\x1b[0m bell\x07 del\x7f s3cr3t-value")
    log.write("bad utf-8: \udcff")
    log.write("after")
    log.flush()
    texts = list(LogLine.objects.filter(step=step).order_by("seq").values_list("text", flat=True))
    assert texts == [
        "before",
        "core\\x00dump\tcol2 red bell\\x07 del\\x7f ***",
        "bad utf-8: \ufffd",
        "after",
    ]
