"""Two worker "machines" (network namespaces of their own) share the runs, none twice."""

from __future__ import annotations

import pytest

from clusters.engine.pipeline import StepSpec
from tests.support import runs
from tests.support.factories import make_cluster
from tests.support.machines import Machines
from tests.support.tools import require
from tests.support.worker import WorkerProcess, database_url_for_workers

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_two_workers_on_two_machines_share_the_runs_without_running_a_step_twice(
        broker_url: str, task_queue: str) -> None:
    require("ip")
    with Machines(2) as machines:
        database = database_url_for_workers()
        if database.startswith("postgres"):  # SQLite: the same file, seen from both
            database = machines.relay_url(database)
        broker = machines.relay_url(broker_url)
        workers = [WorkerProcess(broker, task_queue, netns=netns, env={"DATABASE_URL": database})
                   for netns in machines.netns]
        try:
            for worker in workers:
                worker.wait_ready()
            cluster = make_cluster()
            args = {"seconds": 0.1}
            plan = [StepSpec("root", "Root", "test.work", args=args),
                    *(StepSpec(f"m{i}", f"Middle {i}", "test.work", ["root"], args=args)
                      for i in range(8)),
                    StepSpec("join", "Join", "test.work", [f"m{i}" for i in range(8)],
                             args=args)]
            started = [runs.start(cluster, plan) for _ in range(6)]
            for run in started:
                assert runs.wait_finished(run, timeout=180).status == "succeeded"
        finally:
            for worker in workers:
                worker.kill_hard()
        run_ids = [run.pk for run in started]
        assert runs.no_step_ran_twice(run_ids) == []
        shares = runs.steps_per_namespace(run_ids)
        machine_inodes = {machines.namespace_inode(netns) for netns in machines.netns}
        assert set(shares) == machine_inodes, "each machine ran steps, and nothing else did"
        assert sum(shares.values()) == 60
