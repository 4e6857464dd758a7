"""Benchmark: 500 live clusters under health checks at the default interval, on the health
queue's own workers, while a create runs on the steps' queue.

What is real and what is only rows:

* real: PostgreSQL, Redis, the Celery worker processes (one consuming only the health
  queue, one consuming only the steps' queue, as docker-compose.yml runs them), the
  offline Alibaba Cloud emulator answering every signed SDK call, and in it, for the CLB
  clusters (400 of 500 by default), a CLB each with a TCP 6443 listener (stopped:
  DescribeHealthStatus answers its backend "unavailable") and one ECS backend; for the NLB
  clusters (--nlb, 100 by default) an NLB server group each with one ECS server. The first
  of each is made through the API, the rest copies of its records in the emulator's state
  file (`build_fleet` says why). The NLB clusters have no listener (one needs an NLB with
  an L4 proxy per listener, too many for 2 cores), so their GetListenerHealthStatus, one
  call per cluster with or without batching, is not in the counts;
* emulator records with no server behind them: 500 RDS MySQL instances (control route
  `rds/api-only-instances`: Running, listed and described like any other, their
  DescribeResourceUsage "no data", -1); no mariadbd for 500 on 2 cores;
* only rows: the 500 clusters, their nodes and ledgers; their kubeconfigs name a closed
  loopback port (no K3s: the API check fails at once with "connection refused"), and no
  node has a pinned SSH key (the datastore measurement is "not measured" without a tunnel).

So a cycle's cost here is the cloud calls and the panel's own work per cluster, not K3s or
SSH timeouts. The create is the engine's trivial-step create: the step graph of
clusters/operations/create.py for 2 servers + 1 agent on RDS, each step `test.work`
sleeping --step-seconds (the e2e world's create is too heavy to run beside 500 clusters
on 2 shared cores and would measure the world, not the queues).

Phases, each printed side by side: the create alone; the create during one per-cluster
cycle (one task per cluster, each asking RDS for its instance and the NLB for its group:
the round before batching); the create during batched cycles (the beat's
`clusters.refresh_all_health`, sent at PANEL_HEALTH_INTERVAL_SECONDS as beat does):
"first" with no storage figure kept (the per-cluster cycle's are wiped first, so it is a
real first round: one DescribeDBInstanceAttribute per instance), `--cycles` rounds with
the figures kept, and "hourly re-read" with every kept figure aged past
STORAGE_REREAD_SECONDS (what one round an hour costs). Cloud calls come from the
emulator's call log; CPU from /proc of the health worker's process tree.

    .venv/bin/python benchmarks/health_scale.py [--clusters 500] [--nlb 100] [--cycles 1]
        [--health-concurrency 6]
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import os
import secrets
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATABASE_URL = "postgres://root@127.0.0.1:5432/panel_healthbench"
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings_test")
os.environ["DATABASE_URL"] = os.environ.get("HEALTH_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
os.environ.setdefault("PANEL_SWEEP_INTERVAL_SECONDS", "60")


def _fresh_database(url: str) -> None:
    import psycopg  # noqa: PLC0415

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


_fresh_database(os.environ["DATABASE_URL"])

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db.models import Q  # noqa: E402

from clusters.adapters.aliyun import AliyunCloud, SlbSpec  # noqa: E402
from clusters.adapters.api_balancer import NLB_GROUP_KIND  # noqa: E402
from clusters.adapters.health import STORAGE_REREAD_SECONDS, STORAGE_SEEN  # noqa: E402
from clusters.engine.pipeline import StepSpec, create_run  # noqa: E402
from clusters.models import (  # noqa: E402
    RUN_ACTIVE,
    CloudResource,
    Cluster,
    ClusterStatus,
    DatastoreKind,
    LoadBalancerKind,
    NodeRole,
    NodeStatus,
    ResourceState,
    Run,
    RunKind,
    Step,
)
from clusters.operations import health  # noqa: E402
from clusters.operations.create import create_plan  # noqa: E402
from panel.celery import health_queue  # noqa: E402
from sandbox.aliyun.testing import Emulator  # noqa: E402
from tests.support.factories import (  # noqa: E402
    TEST_ACCESS_KEY_ID,
    TEST_ACCESS_KEY_SECRET,
    make_cluster,
)
from tests.support.kube_api import admin_kubeconfig  # noqa: E402
from tests.support.services import find_redis, route_tasks_to  # noqa: E402
from tests.support.worker import WorkerProcess  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
REGION = "cn-hangzhou"


def seed() -> dict[str, Any]:
    """A VPC with two /20 vSwitches: 500 CLB addresses in one, 500 ECS hosts in the other."""
    second = 64 + secrets.randbelow(190)
    zones = [f"{REGION}-h", f"{REGION}-i"]
    return {
        "regions": [{"region_id": REGION, "local_name": "China (Hangzhou)", "zones": zones}],
        "vpcs": [{
            "vpc_id": "vpc-" + secrets.token_hex(10)[:21], "region_id": REGION,
            "cidr": f"127.{second}.0.0/16", "name": "bench-vpc",
            "vswitches": [
                {"vswitch_id": "vsw-" + secrets.token_hex(10)[:21], "zone_id": zones[0],
                 "cidr": f"127.{second}.0.0/20", "name": "bench-lb"},
                {"vswitch_id": "vsw-" + secrets.token_hex(10)[:21], "zone_id": zones[1],
                 "cidr": f"127.{second}.16.0/20", "name": "bench-hosts"},
            ],
        }],
        "public_cidr": f"127.{second}.32.0/24",
    }


def cpu_seconds(root_pid: int) -> float:
    """utime+stime of a process and its live children (the prefork pool), plus what its
    children that already exited left in cutime/cstime."""
    def stat(pid: int) -> list[str]:
        text = Path(f"/proc/{pid}/stat").read_text()
        return text[text.rindex(")") + 2:].split()

    total = 0.0
    pids = [root_pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(stat(int(entry.name))[1]) == root_pid:
                    pids.append(int(entry.name))
            except (OSError, ValueError):
                continue
    for pid in pids:
        try:
            fields = stat(pid)
        except OSError:
            continue
        total += sum(int(fields[i]) for i in (11, 12)) / TICK
        if pid == root_pid:
            total += sum(int(fields[i]) for i in (13, 14)) / TICK
    return total


def _new_id(prefix: str, length: int) -> str:
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(length))


def _wait_job(api: AliyunCloud, job: str) -> None:
    deadline = time.monotonic() + 60
    while api.job_status(job) != "Succeeded":
        if time.monotonic() > deadline:
            raise RuntimeError(f"NLB job {job} did not finish")
        time.sleep(0.5)


def _template_group(emu: Emulator, api: AliyunCloud, ip: str) -> str:
    """One NLB server group with one ECS server on 6443, made through the API."""
    vpc = emu.seed_document["vpcs"][0]
    host_vsw = vpc["vswitches"][1]
    group_ecs = emu.register_instance("fleet-nlb", ip, vswitch_id=host_vsw["vswitch_id"],
                                      zone_id=host_vsw["zone_id"])
    group, job = api.create_server_group(name="fleet-group", vpc_id=vpc["vpc_id"], port=6443,
                                         client_token=uuid.uuid4().hex,
                                         preserve_client_ip=True)
    _wait_job(api, job)
    for job in api.add_servers(group, {group_ecs: ip}, 6443, client_token=uuid.uuid4().hex):
        _wait_job(api, job)
    return group


def build_fleet(emu: Emulator, count: int, nlb: int) -> list[int]:
    """`count` live clusters in one account and region, each with an RDS instance and an
    ECS host; the last `nlb` of them on an NLB server group (one server: the host), the
    others on a CLB (TCP 6443 listener, the host as backend), in the emulator and ledger
    rows naming them.

    One CLB, its listener and backend, and one server group with its server are made
    through the API (CreateLoadBalancer, CreateLoadBalancerTCPListener, AddBackendServers,
    CreateServerGroup, AddServersToServerGroup) and the ECS host through the control API;
    the others are copies of those records with their own ids, written into the emulator's
    state file while it is stopped and loaded when it starts again (the path a restarted
    emulator takes): through the API each create rewrites the whole state file, which at
    500 load balancers takes longer than the run itself."""
    vpc = emu.seed_document["vpcs"][0]
    lb_vsw, host_vsw = vpc["vswitches"]
    api = AliyunCloud(TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET, REGION, emu.endpoint)
    rds_ids = emu.control.add_api_only_rds(count, lb_vsw["vswitch_id"])
    prefix = ".".join(host_vsw["cidr"].split(".")[:2])
    base = int(host_vsw["cidr"].split(".")[2])
    ips = [f"{prefix}.{base + 1 + i // 250}.{1 + i % 250}" for i in range(count)]
    template_ecs = emu.register_instance("fleet-0", ips[0], vswitch_id=host_vsw["vswitch_id"],
                                         zone_id=host_vsw["zone_id"])
    template = api.create_slb(SlbSpec("fleet-0", lb_vsw["vswitch_id"], vpc["vpc_id"]),
                              client_token=uuid.uuid4().hex)
    api.create_tcp_listener(template.load_balancer_id)
    api.add_backend_servers(template.load_balancer_id, [template_ecs])
    first_nlb = count - nlb
    template_group = _template_group(emu, api, ips[first_nlb]) if nlb else ""
    emu.stop()
    state_file = emu.state_dir / "state.json"
    state = json.loads(state_file.read_text())
    balancers = state["slb"]["load_balancers"]
    groups = state.get("nlb", {}).get("server_groups", {})
    hosts = state["ecs"]["instances"]
    lb_ids, ecs_ids = [template.load_balancer_id], [template_ecs]
    lb_prefix = ".".join(lb_vsw["cidr"].split(".")[:2])
    for index in range(1, count):
        if index == first_nlb:
            lb_ids.append(template_group)
            ecs_ids.append(groups[template_group]["servers"][0]["server_id"])
            continue
        ecs_id = _new_id("i-", 20)
        host = copy.deepcopy(hosts[template_ecs])
        host.update(instance_id=ecs_id, hostname=f"fleet-{index}",
                    instance_name=f"fleet-{index}", private_ip=ips[index],
                    eni_id=_new_id("eni-", 20))
        hosts[ecs_id] = host
        if index > first_nlb:
            group_id = _new_id("sgp-", 20)
            group = copy.deepcopy(groups[template_group])
            group.update(group_id=group_id, name=f"fleet-group-{index}")
            group["servers"][0].update(server_id=ecs_id, server_ip=ips[index])
            groups[group_id] = group
            lb_ids.append(group_id)
        else:
            lb_id = _new_id("lb-", 22)
            balancer = copy.deepcopy(balancers[template.load_balancer_id])
            balancer.update(lb_id=lb_id, name=f"fleet-{index}",
                            address=f"{lb_prefix}.{8 + index // 250}.{1 + index % 250}")
            balancer["backends"][0]["server_id"] = ecs_id
            balancers[lb_id] = balancer
            lb_ids.append(lb_id)
        ecs_ids.append(ecs_id)
    state_file.write_text(json.dumps(state, sort_keys=True, indent=1))
    emu.start(port=int(emu.endpoint.rsplit(":", 1)[1]))
    return _fleet_rows(vpc, ips, ecs_ids, lb_ids, rds_ids=rds_ids, first_nlb=first_nlb)


def _fleet_rows(vpc: dict[str, Any], ips: list[str], ecs_ids: list[str], lb_ids: list[str],
                *, rds_ids: list[str], first_nlb: int) -> list[int]:
    """The clusters, nodes and ledger rows naming the fleet's records."""
    count = len(ips)
    lb_vsw = vpc["vswitches"][0]
    kubeconfig = admin_kubeconfig("https://127.0.0.1:1")
    first = make_cluster(status=ClusterStatus.READY, datastore_kind=DatastoreKind.RDS,
                         kubeconfig=kubeconfig, region=REGION)
    account = first.cloud_account
    ids = []
    for index in range(count):
        on_nlb = index >= first_nlb
        cluster = first if index == 0 else Cluster.objects.create(
            owner=first.owner, cloud_account=account, name=f"fleet{index}", region=REGION,
            zone=lb_vsw["zone_id"], vpc_id=vpc["vpc_id"], vswitch_id=lb_vsw["vswitch_id"],
            k3s_token=first.k3s_token, status=ClusterStatus.READY,
            datastore_kind=DatastoreKind.RDS, kubeconfig=kubeconfig,
            load_balancer_kind=LoadBalancerKind.NLB if on_nlb else LoadBalancerKind.CLB)
        cluster.nodes.create(role=NodeRole.SERVER, private_ip=ips[index], ssh_user="root",
                             name=f"fleet-{index}", ecs_instance_id=ecs_ids[index],
                             status=NodeStatus.READY)
        balancer_kind = NLB_GROUP_KIND if on_nlb else "slb"
        for kind, provider_id in (("rds_instance", rds_ids[index]),
                                  (balancer_kind, lb_ids[index])):
            CloudResource.objects.create(cluster=cluster, kind=kind, provider_id=provider_id,
                                         client_token=uuid.uuid4().hex, region=REGION,
                                         state=ResourceState.PRESENT)
        ids.append(cluster.pk)
    return ids


def trivial_create(step_seconds: float) -> Run:
    """The create run's step graph (2 servers + 1 agent, RDS), every step `test.work`."""
    cluster = make_cluster(status=ClusterStatus.PROVISIONING, nodes=0, region=REGION,
                           datastore_kind=DatastoreKind.RDS)
    for index, role in enumerate((NodeRole.SERVER, NodeRole.SERVER, NodeRole.AGENT)):
        cluster.nodes.create(role=role, private_ip=f"10.9.0.{index + 1}", ssh_user="root")
    specs = [StepSpec(s.key, s.title, "test.work", s.depends_on, {"seconds": step_seconds})
             for s in create_plan(cluster)]
    return create_run(cluster, RunKind.TEST, specs)


def critical_path(run: Run) -> float:
    steps = {s.key: s for s in Step.objects.filter(run=run)}
    memo: dict[str, float] = {}

    def chain(key: str) -> float:
        if key not in memo:
            step = steps[key]
            memo[key] = (step.finished_at - step.started_at).total_seconds() + max(
                (chain(d) for d in step.depends_on), default=0.0)
        return memo[key]

    return max(chain(key) for key in steps)


def ratio(run: Run) -> tuple[float, float, float]:
    run.refresh_from_db()
    wall = (run.finished_at - run.created_at).total_seconds()
    path = critical_path(run)
    return wall, path, wall / path


def wait_run(run: Run, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while Run.objects.filter(pk=run.pk, status__in=RUN_ACTIVE).exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run.pk} did not finish")
        time.sleep(0.2)
    if Run.objects.get(pk=run.pk).status != "succeeded":
        raise RuntimeError(f"run {run.pk} failed")


def wait_checked(ids: list[int], since: Any, limit: float) -> tuple[float, int]:
    """(seconds until the last verdict of the cycle, clusters checked): the cycle ends when
    every cluster has a verdict newer than `since`, or after `limit` seconds (a check still
    queued then has expired with the interval: the next round takes its cluster)."""
    began = time.monotonic()
    stale = Cluster.objects.filter(pk__in=ids).filter(
        Q(health_checked_at__isnull=True) | Q(health_checked_at__lt=since))
    while stale.exists() and time.monotonic() - began < limit:
        time.sleep(0.2)
    checked = Cluster.objects.filter(pk__in=ids, health_checked_at__gte=since)
    last = checked.order_by("-health_checked_at").values_list("health_checked_at", flat=True)
    seconds = (last[0] - since).total_seconds() if last else 0.0
    return seconds, checked.count()


class Cycle:
    def __init__(self, label: str, calls: collections.Counter[str], done: tuple[float, int],
                 cpu: float, create: tuple[float, float, float]) -> None:
        self.label, self.calls, self.cpu, self.create = label, calls, cpu, create
        self.seconds, self.checked = done


def measure(label: str, emu: Emulator, worker: WorkerProcess, ids: list[int], *,
            start_cycle: Any, step_seconds: float, timeout: float) -> Cycle:
    from django.utils import timezone  # noqa: PLC0415

    emu.control.clear_calls()
    cpu_before = cpu_seconds(worker.process.pid)
    since = timezone.now()
    start_cycle()
    run = trivial_create(step_seconds)
    done = wait_checked(ids, since, timeout)
    cpu = cpu_seconds(worker.process.pid) - cpu_before
    wait_run(run)
    calls = collections.Counter(c["action"] for c in emu.control.calls())
    return Cycle(label, calls, done, cpu, ratio(run))


def forget_storage(ids: list[int]) -> int:
    """Drop every kept storage figure: the next round is a real first round."""
    rows = list(CloudResource.objects.filter(cluster_id__in=ids, kind="rds_instance"))
    for row in rows:
        row.attributes.pop(STORAGE_SEEN, None)
        CloudResource.objects.filter(pk=row.pk).update(attributes=row.attributes)
    return len(rows)


def age_storage(ids: list[int]) -> int:
    """Age every kept storage figure past STORAGE_REREAD_SECONDS (the hourly re-read)."""
    aged = 0
    for row in CloudResource.objects.filter(cluster_id__in=ids, kind="rds_instance"):
        seen = row.attributes.get(STORAGE_SEEN)
        if isinstance(seen, dict):
            seen["at"] = float(seen.get("at") or 0) - STORAGE_REREAD_SECONDS - 1
            CloudResource.objects.filter(pk=row.pk).update(attributes=row.attributes)
            aged += 1
    return aged


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clusters", type=int, default=500)
    parser.add_argument("--nlb", type=int, default=100, help="of them on an NLB")
    parser.add_argument("--cycles", type=int, default=1,
                        help="batched cycles with the storage figures kept")
    parser.add_argument("--step-seconds", type=float, default=1.5)
    parser.add_argument("--health-concurrency", type=int, default=6)
    args = parser.parse_args()
    if not 0 <= args.nlb < args.clusters:
        parser.error("--nlb must be 0 to --clusters - 1")
    interval = settings.PANEL_HEALTH_INTERVAL_SECONDS

    broker_url, embedded = find_redis()
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    route_tasks_to(broker_url, queue)
    call_command("migrate", verbosity=0)
    state = Path(tempfile.mkdtemp(prefix="health-bench-"))
    with Emulator(state, seed=seed()) as emu:
        emu.control.add_account(TEST_ACCESS_KEY_ID, TEST_ACCESS_KEY_SECRET, root=True)
        began = time.monotonic()
        ids = build_fleet(emu, args.clusters, args.nlb)
        print(f"fleet: {len(ids)} clusters, {len(ids)} RDS records, "
              f"{len(ids) - args.nlb} CLBs, {args.nlb} NLB server groups "
              f"in {time.monotonic() - began:.0f}s")
        env = {"ALIYUN_ENDPOINT_OVERRIDE": emu.endpoint}
        steps = WorkerProcess(broker_url, queue, concurrency=4, env=env,
                              queues=[queue]).wait_ready()
        checks = WorkerProcess(broker_url, queue, concurrency=args.health_concurrency,
                               env=env, queues=[health_queue(queue)]).wait_ready()
        try:
            alone = trivial_create(args.step_seconds)
            wait_run(alone)
            create_alone = ratio(alone)

            def per_cluster() -> None:  # the round before batching: one task per cluster
                for pk in ids:
                    health._queue_one(health.refresh_health, pk, interval)

            cycles = [measure("per-cluster", emu, checks, ids, start_cycle=per_cluster,
                              step_seconds=args.step_seconds, timeout=interval + 15)]
            forget_storage(ids)  # the per-cluster cycle's figures: not the batched rounds'
            labels = ["batched, first", *(f"batched #{n + 2}" for n in range(args.cycles)),
                      "hourly re-read"]
            for number, label in enumerate(labels):
                due = time.monotonic() + interval
                if label == "hourly re-read":
                    age_storage(ids)
                cycles.append(measure(label, emu, checks, ids,
                                      start_cycle=health.refresh_all_health.delay,
                                      step_seconds=args.step_seconds, timeout=interval + 15))
                if number + 1 < len(labels):  # the beat's interval, from round to round
                    time.sleep(max(0.0, due - time.monotonic()))
        finally:
            checks.stop()
            steps.stop()
            if embedded:
                embedded.stop()
    report(len(ids), interval, create_alone, cycles, args)


def report(count: int, interval: float, alone: tuple[float, float, float],
           cycles: list[Cycle], args: argparse.Namespace) -> None:
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(f"clusters={count} (nlb={args.nlb}) interval={interval:.0f}s database={engine} "
          f"health worker: 1 process x{args.health_concurrency}, step worker: 1 process x4, "
          f"create: trivial steps of {args.step_seconds}s")
    print(f"load average (1/5/15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    actions = sorted({a for c in cycles for a in c.calls})
    header = ["", *(c.label for c in cycles)]
    rows = [["cloud calls per cycle", *(str(sum(c.calls.values())) for c in cycles)]]
    rows += [[f"  {a}", *(str(c.calls.get(a, 0)) for c in cycles)] for a in actions]
    rows += [["clusters checked in the cycle", *(f"{c.checked}/{count}" for c in cycles)],
             ["cycle duration (s, to the last verdict)", *(f"{c.seconds:.1f}" for c in cycles)],
             ["health worker CPU per cycle (s)", *(f"{c.cpu:.1f}" for c in cycles)],
             ["create wall / critical path (s)",
              *(f"{c.create[0]:.1f} / {c.create[1]:.1f}" for c in cycles)],
             ["create critical-path ratio", *(f"{c.create[2]:.3f}" for c in cycles)]]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    print(f"create alone (no health checks): wall {alone[0]:.1f}s / critical path "
          f"{alone[1]:.1f}s = ratio {alone[2]:.3f}")


if __name__ == "__main__":
    main()
