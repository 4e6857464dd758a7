"""The NLB steps (nlb.create, nlb.listener, slb.detach, destroy.nlb) against a real emulator.

The engine runs in this process (tests/support/engine_specs.py); the steps call the emulator's
NLB through the SDK. Every NLB write is an asynchronous job there as at Alibaba, so each step
returns Wait until the job and the resource say it is done. The "API servers" are plain TCP
listeners on the servers' loopback addresses: the NLB's TCP health check on 6443 sees them.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from clusters.adapters import api_balancer, cloud
from clusters.core import allowlist
from clusters.engine.pipeline import StepSpec, create_run
from clusters.models import (
    Cluster,
    LoadBalancerKind,
    LogLine,
    Node,
    NodeRole,
    NodeStatus,
    ResourceState,
    Run,
    RunKind,
    StepStatus,
)
from clusters.operations.allowlist import allowlist_plan, has_allowlist
from clusters.operations.create import create_plan
from sandbox.aliyun.testing import Emulator
from tests.support.engine_specs import InProcessEngine, time_passes
from tests.support.factories import make_cluster
from tests.support.runs import step

pytestmark = pytest.mark.django_db
_HOSTS = itertools.count(10)  # host addresses stay unique across the module's emulator


@contextlib.contextmanager
def api_servers(ips: list[str]) -> Iterator[None]:
    """A TCP listener on ip:6443 for each server (what the NLB's health check connects to)."""
    sockets, stop = [], threading.Event()
    for ip in ips:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ip, 6443))
        sock.listen(16)
        sock.settimeout(0.2)
        sockets.append(sock)

    def serve(sock: socket.socket) -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                connection, _ = sock.accept()
                with contextlib.suppress(OSError):
                    connection.sendall(b"k3s")  # what a client let through reads
                connection.close()

    threads = [threading.Thread(target=serve, args=(s,), daemon=True) for s in sockets]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(2)
        for sock in sockets:
            sock.close()


def nlb_cluster(emu: Emulator, settings: Any, servers: int = 2) -> Cluster:
    settings.ALIYUN_ENDPOINT_OVERRIDE = emu.endpoint
    emu.control.clear_faults()
    first, second = emu.vpc["vswitches"][0], emu.vpc["vswitches"][1]
    cluster = make_cluster(
        region=emu.region_id, zone=first["zone_id"], vpc_id=emu.vpc["vpc_id"],
        vswitch_id=first["vswitch_id"], load_balancer_kind=LoadBalancerKind.NLB,
        nlb_zones=[{"zone": first["zone_id"], "vswitch_id": first["vswitch_id"]},
                   {"zone": second["zone_id"], "vswitch_id": second["vswitch_id"]}])
    base = first["cidr"].rsplit(".", 1)[0]
    for index in range(servers):
        ip = f"{base}.{next(_HOSTS)}"
        instance = emu.register_instance(f"{cluster.name}-s{index}", ip)
        Node.objects.create(cluster=cluster, role=NodeRole.SERVER, name=f"server-{index}",
                            private_ip=ip, ecs_instance_id=instance, status=NodeStatus.READY)
    return cluster


def run_steps(engine: InProcessEngine, cluster: Cluster, *handlers: str,
              args: dict[str, Any] | None = None) -> Run:
    """Run the handlers one after the other; a Wait lets a little real time pass (the
    emulator's jobs complete on its own clock)."""
    specs, previous = [], []
    for index, handler in enumerate(handlers):
        specs.append(StepSpec(f"s{index}", handler, handler, previous, dict(args or {})))
        previous = [f"s{index}"]
    run = engine.act(create_run, cluster, RunKind.TEST, specs)
    for _ in range(600):
        messages = engine.take()
        if not messages:
            break
        for message in messages:
            if message.countdown > 0:
                time.sleep(min(message.countdown, 0.05))
                time_passes(message.countdown)
            engine.deliver(message)
    return run


def log_of(run: Run) -> list[str]:
    return list(LogLine.objects.filter(step__run=run).order_by("step", "seq")
                .values_list("text", flat=True))


def inventory(emu: Emulator, cluster: Cluster) -> dict[str, list[dict[str, Any]]]:
    """The emulator's NLB resources carrying this cluster's tag (listeners: of its NLBs)."""
    tag = {"Key": cloud.TAG_KEY, "Value": str(cluster.code)}
    found: dict[str, list[dict[str, Any]]] = {"nlb_load_balancer": [], "nlb_server_group": [],
                                               "nlb_listener": []}
    resources = emu.control.resources()
    mine = {r["id"] for r in resources if r["type"] == "nlb_load_balancer"
            and tag in r["tags"] and r["state"] != "Deleted"}
    for resource in resources:
        kind = resource["type"]
        listener = kind == "nlb_listener" and resource["load_balancer_id"] in mine
        tagged = kind in ("nlb_load_balancer", "nlb_server_group") \
            and tag in resource["tags"] and resource["state"] != "Deleted"
        if listener or tagged:
            found[kind].append(resource)
    return found


@override_settings(PANEL_RETRY_BASE_SECONDS=0.1, PANEL_CLOUD_POLL_SECONDS=0.2)
def test_an_nlb_in_two_zones_serves_both_servers_and_destroy_leaves_nothing(
        engine: InProcessEngine, emu: Emulator, settings: Any) -> None:
    cluster = nlb_cluster(emu, settings)
    ips = list(cluster.nodes.values_list("private_ip", flat=True))
    with api_servers(ips):
        run = run_steps(engine, cluster, "nlb.create", "nlb.listener")
        assert step(run, "s1").status == StepStatus.SUCCEEDED, log_of(run)
        cluster.refresh_from_db()
        found = inventory(emu, cluster)
        (nlb,) = found["nlb_load_balancer"]
        (group,) = found["nlb_server_group"]
        (listener,) = found["nlb_listener"]
        # Two zones, the DNS name and both zone addresses recorded for tls-san and kubectl.
        assert len(nlb["zones"]) == 2 and len({z["zone_id"] for z in nlb["zones"]}) == 2
        assert cluster.api_dns_name == nlb["dns_name"] and cluster.api_host == nlb["dns_name"]
        assert sorted(cluster.api_addresses) == sorted(z["address"] for z in nlb["zones"])
        assert cluster.api_tls_sans[0] == nlb["dns_name"]
        # Both servers Available and healthy behind a Running TCP 6443 listener.
        assert sorted(s["ip"] for s in group["servers"]) == sorted(ips)
        assert {s["status"] for s in group["servers"]} == {"Available"}
        assert listener["state"] == "Running" and listener["ports"] == [6443]
        assert listener["server_group_id"] == group["id"]
        balancer = api_balancer.for_cluster(cluster)
        assert balancer.health() == dict.fromkeys(
            cluster.nodes.values_list("ecs_instance_id", flat=True), True)
        # The server group does not preserve client IPs (hairpin from a backend works).
        assert cluster.resources.get(kind="nlb_server_group").attributes[
            "preserve_client_ip"] is False
        lines = log_of(run)
        assert any(f"NLB {nlb['id']} is Active" in line for line in lines)
        # Every job was waited for with GetJobStatus (no sleep), the NLB until Active.
        actions = [c["action"] for c in emu.control.calls()]
        assert actions.count("GetLoadBalancerAttribute") >= 2
        assert actions.index("CreateServerGroup") < actions.index("GetJobStatus")
        between = actions[actions.index("AddServersToServerGroup"):
                          actions.index("CreateListener")]
        assert "GetJobStatus" in between  # the servers' job, before the listener is made

        # A server leaves: taken out of the group, and the step waits until it drained.
        leaving = cluster.nodes.order_by("pk").first()
        assert leaving is not None
        emu.control.clear_calls()
        detached = run_steps(engine, cluster, "slb.detach", args={"node_id": leaving.pk})
        assert step(detached, "s0").status == StepStatus.SUCCEEDED, log_of(detached)
        left = inventory(emu, cluster)["nlb_server_group"][0]["servers"]
        assert [s["ip"] for s in left] == [ip for ip in ips if ip != leaving.private_ip]
        actions = [c["action"] for c in emu.control.calls()]
        removed = actions.index("RemoveServersFromServerGroup")
        assert "GetJobStatus" in actions[removed:]  # the drain (the removal job) waited for

    destroyed = run_steps(engine, cluster, "destroy.nlb")
    assert step(destroyed, "s0").status == StepStatus.SUCCEEDED, log_of(destroyed)
    assert inventory(emu, cluster) == {"nlb_load_balancer": [], "nlb_server_group": [],
                                       "nlb_listener": []}
    assert set(cluster.resources.values_list("state", flat=True)) == {ResourceState.DELETED}
    lines = log_of(destroyed)
    assert lines.index(f"Deleting NLB listener {listener['id']}") < lines.index(
        f"Deleting NLB server group {group['id']}") < lines.index(f"Deleting NLB {nlb['id']}")


@override_settings(PANEL_RETRY_BASE_SECONDS=0.1, PANEL_CLOUD_POLL_SECONDS=0.2)
def test_lost_create_answers_are_adopted_by_tag_and_nothing_is_bought_twice(
        engine: InProcessEngine, emu: Emulator, settings: Any) -> None:
    cluster = nlb_cluster(emu, settings)
    for action in ("CreateLoadBalancer", "CreateServerGroup", "CreateListener"):
        emu.control.add_fault(action=action, lose_answer=True, count=1)
    with api_servers(list(cluster.nodes.values_list("private_ip", flat=True))):
        run = run_steps(engine, cluster, "nlb.create", "nlb.listener")
    assert step(run, "s1").status == StepStatus.SUCCEEDED, log_of(run)
    found = inventory(emu, cluster)
    assert [len(found[k]) for k in ("nlb_load_balancer", "nlb_server_group", "nlb_listener")
            ] == [1, 1, 1]
    adopted = [line for line in log_of(run) if line.startswith("Adopted ")]
    assert len(adopted) == 3, adopted
    destroyed = run_steps(engine, cluster, "destroy.nlb")
    assert step(destroyed, "s0").status == StepStatus.SUCCEEDED, log_of(destroyed)
    assert inventory(emu, cluster)["nlb_load_balancer"] == []


def test_an_internet_nlb_without_an_allow_list_is_refused_before_anything_is_bought(
        engine: InProcessEngine, emu: Emulator, settings: Any) -> None:
    cluster = nlb_cluster(emu, settings, servers=0)
    Cluster.objects.filter(pk=cluster.pk).update(slb_address_type="internet")
    run = run_steps(engine, Cluster.objects.get(pk=cluster.pk), "nlb.create")
    failed = step(run, "s0")
    assert failed.status == StepStatus.FAILED and "Internet-facing" in failed.error
    assert "allowed source CIDR" in failed.error
    assert inventory(emu, cluster)["nlb_load_balancer"] == []


def answer_from(source: str, address: str) -> bytes:
    """What a client at `source` reads from address:6443 (b"" when refused)."""
    try:
        with socket.create_connection((address, 6443), timeout=3,
                                      source_address=(source, 0)) as sock:
            return sock.recv(16)
    except OSError:
        return b""


@override_settings(PANEL_RETRY_BASE_SECONDS=0.1, PANEL_CLOUD_POLL_SECONDS=0.2)
def test_an_internet_nlb_admits_only_the_allow_list_through_its_security_group(
        engine: InProcessEngine, emu: Emulator, settings: Any) -> None:
    allowed, other = "127.77.0.5", "127.78.0.5"
    cluster = nlb_cluster(emu, settings)
    Cluster.objects.filter(pk=cluster.pk).update(slb_address_type="internet",
                                                 api_allowed_cidrs=["127.77.0.0/24"])
    cluster = Cluster.objects.get(pk=cluster.pk)
    assert [s.handler for s in create_plan(cluster) if s.key == "slb_acl"] == ["nlb.allowlist"]
    assert "slb_acl" in next(s for s in create_plan(cluster) if s.key == "slb_listener").depends_on
    api = cloud.cloud_for(cluster)
    emu.control.clear_calls()  # the module's emulator: only this test's calls below
    # Lost answers: the group is adopted by its tag, the join's job found by looking again.
    for action in ("CreateSecurityGroup", "LoadBalancerJoinSecurityGroup"):
        emu.control.add_fault(action=action, lose_answer=True, count=1)
    with api_servers(list(cluster.nodes.values_list("private_ip", flat=True))):
        run = run_steps(engine, cluster, "nlb.create", "nlb.allowlist", "nlb.listener")
        assert step(run, "s2").status == StepStatus.SUCCEEDED, log_of(run)
        (nlb,) = inventory(emu, cluster)["nlb_load_balancer"]
        (group,) = api.find_security_groups_by_tag(cloud.TAG_KEY, str(cluster.code))
        assert nlb["security_group_ids"] == [group]
        assert cluster.resources.get(kind="nlb_security_group").provider_id == group
        assert any(line.startswith("Adopted ") and group in line for line in log_of(run))
        assert {(r.source_cidr, r.policy, r.port_range) for r in api.ingress_rules(group) or []
                } == {("127.77.0.0/24", "Accept", "6443/6443"),
                      ("0.0.0.0/0", "Drop", "6443/6443")}
        # Joined (its job waited for) before the listener existed: never open to all.
        actions = [c["action"] for c in emu.control.calls()]
        joined = actions.index("LoadBalancerJoinSecurityGroup")
        assert "GetJobStatus" in actions[joined:actions.index("CreateListener")]
        public = [z["public_address"] for z in nlb["zones"]]
        assert all(public)
        for address in public:
            assert answer_from(allowed, address) == b"k3s"
            assert answer_from(other, address) == b""
        # The allow-list operation's plan is this same step; a change applies at once.
        assert has_allowlist(cluster)
        assert [s.handler for s in allowlist_plan(cluster)] == ["nlb.allowlist"]
        Cluster.objects.filter(pk=cluster.pk).update(api_allowed_cidrs=["127.78.0.0/24"])
        changed = run_steps(engine, Cluster.objects.get(pk=cluster.pk), "nlb.allowlist")
        assert step(changed, "s0").status == StepStatus.SUCCEEDED, log_of(changed)
        assert answer_from(other, public[0]) == b"k3s"
        assert answer_from(allowed, public[0]) == b""
        assert {r.source_cidr for r in api.ingress_rules(group) or []} == {
            "127.78.0.0/24", "0.0.0.0/0"}
        # A whole list at the group's 200-rule quota (199 entries and the Drop rule) swapped
        # for another: the old Accept rules go before the new ones come, so it fits.
        for first_octet in (10, 11):
            full = ["127.78.0.0/24", *[f"{first_octet}.{n // 256}.{n % 256}.0/24"
                                       for n in range(198)]]
            Cluster.objects.filter(pk=cluster.pk).update(api_allowed_cidrs=full)
            swapped = run_steps(engine, Cluster.objects.get(pk=cluster.pk), "nlb.allowlist")
            assert step(swapped, "s0").status == StepStatus.SUCCEEDED, log_of(swapped)
            assert {r.source_cidr for r in api.ingress_rules(group) or []} == {
                *full, "0.0.0.0/0"}
        assert answer_from(other, public[0]) == b"k3s"
        with pytest.raises(allowlist.TooManyEntries) as too_many:
            allowlist.parse([*full, "12.0.0.0/24"], limit=allowlist.max_entries("nlb"))
        assert "takes at most 199" in too_many.value.explain()
    destroyed = run_steps(engine, cluster, "destroy.nlb")
    assert step(destroyed, "s0").status == StepStatus.SUCCEEDED, log_of(destroyed)
    assert api.find_security_groups_by_tag(cloud.TAG_KEY, str(cluster.code)) == []
    assert inventory(emu, cluster)["nlb_load_balancer"] == []
    lines = log_of(destroyed)
    assert any(f"leaving security group(s) {group}" in line for line in lines)
    assert f"Deleted security group {group} (the API's allow-list)" in lines


@override_settings(PANEL_RETRY_BASE_SECONDS=0.1, PANEL_CLOUD_POLL_SECONDS=0.2)
def test_no_listener_is_created_on_an_nlb_that_should_filter_but_has_no_group(
        engine: InProcessEngine, emu: Emulator, settings: Any) -> None:
    """A run planned without the allow-list step (before it existed), or a group removed in
    the console: the listener step refuses, since a new listener would admit every source."""
    cluster = nlb_cluster(emu, settings)
    Cluster.objects.filter(pk=cluster.pk).update(slb_address_type="internet",
                                                 api_allowed_cidrs=["127.77.0.0/24"])
    cluster = Cluster.objects.get(pk=cluster.pk)
    run = run_steps(engine, cluster, "nlb.create", "nlb.listener")
    refused = step(run, "s1")
    assert refused.status == StepStatus.FAILED, log_of(run)
    assert "would admit every source" in refused.error and "not joined" in refused.error
    assert inventory(emu, cluster)["nlb_listener"] == []
    destroyed = run_steps(engine, cluster, "destroy.nlb")
    assert step(destroyed, "s0").status == StepStatus.SUCCEEDED, log_of(destroyed)
