"""A host whose commands print NUL, ANSI escapes and bells during the K3s install: the step's
log keeps every line, ANSI sequences stripped and other control bytes shown as
\\xNN. On PostgreSQL (CI's database, through
DATABASE_URL) a NUL in a log line used to raise DataError and lose the batch."""

from __future__ import annotations

import pytest

from clusters import operations
from clusters.models import LogLine, RunStatus, StepStatus
from tests.support import runs
from tests.support.world_clusters import make_world_cluster, world_env

pytestmark = [pytest.mark.slow, pytest.mark.lab, pytest.mark.django_db(transaction=True)]

# Every curl the install runs first says this on stderr (/usr/local/sbin comes first on
# root's PATH, as on Debian and the lab hosts); what it downloads is untouched.
HOSTILE_CURL = r"""#!/bin/sh
printf 'hostile\000output \033[31mred\033[0m bell\007 tab\tend\n' >&2
exec /usr/bin/curl "$@"
"""


def test_an_install_whose_host_prints_control_bytes_succeeds_with_them_escaped(
        world, start_worker):
    start_worker(concurrency=2, **world_env(world))
    cluster = make_world_cluster(world, servers=1, agents=0)
    host = world.lab.host(cluster.nodes.get().private_ip)
    world.lab.run(host, "cat > /usr/local/sbin/curl && chmod 755 /usr/local/sbin/curl",
                  input=HOSTILE_CURL, check=True)

    run = runs.wait_finished(operations.start_create(cluster), timeout=300)
    assert run.status == RunStatus.SUCCEEDED, [
        (s.key, s.error) for s in run.steps.exclude(status=StepStatus.SUCCEEDED)]
    lines = list(LogLine.objects.filter(step__run=run, text__contains="hostile")
                 .values_list("text", flat=True))
    assert lines, "the install's curl calls were logged"
    assert all(text.endswith("hostile\\x00output red bell\\x07 tab\tend")
               for text in lines), lines
