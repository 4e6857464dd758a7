"""Create a cluster: the rules to start it, and its step graph (which steps, what each waits for).

Why separate: the engine knows nothing of K3s; the steps know nothing of ordering. This module
is the one place that says "the SLB comes before K3s, so its address is in the certificate".
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from clusters.adapters.credentials import generate_k3s_token
from clusters.adapters.datastore_engines import engine_for
from clusters.adapters.instance_order import node_slots
from clusters.core.titles import title
from clusters.engine import pipeline
from clusters.engine.pipeline import StepSpec
from clusters.models import (
    Cluster,
    ClusterStatus,
    DatastoreKind,
    LoadBalancerKind,
    NodeRole,
    Run,
    RunKind,
)
from clusters.operations.runs import OperationRefused, active_run


def balancer_create_step(cluster: Cluster, after: list[str]) -> StepSpec:
    """The API load balancer's purchase, before K3s: a CLB (slb.create) or an NLB in two
    zones (nlb.create, waited for until Active)."""
    if cluster.load_balancer_kind == LoadBalancerKind.NLB:
        return StepSpec("slb_create", gettext_noop("Create the NLB in two zones (its DNS name "
                                                   "and addresses go into the certificate)"),
                        "nlb.create", after)
    return StepSpec(
        "slb_create", gettext_noop("Create the SLB (its address goes into the certificate)"),
        "slb.create", after)


def balancer_listener_step(cluster: Cluster, after: list[str]) -> StepSpec:
    """Servers behind the load balancer and TCP 6443 listening: the CLB's listener and
    backends (slb.listener) or the NLB's server group, servers and listener (nlb.listener)."""
    if cluster.load_balancer_kind == LoadBalancerKind.NLB:
        return StepSpec("slb_listener", gettext_noop("Create the NLB server group, add the "
                                                     "servers and start TCP 6443"),
                        "nlb.listener", after)
    return StepSpec("slb_listener", gettext_noop("Add servers to the SLB and start TCP 6443"),
                    "slb.listener", after)


Host = tuple[str, str, dict[str, Any]]  # (step key, where it runs for the title, step args)


def _hosts(cluster: Cluster) -> tuple[list[Host], list[Host]]:
    """The servers and agents the install steps name: the cluster's nodes, or (instances the
    run buys) the order's slots, whose nodes exist only once RunInstances answered."""
    if cluster.instance_order:
        slots = node_slots(cluster.instance_order)
        return ([(f"server_{slot}", slot, {"slot": slot}) for slot, role in slots
                 if role == NodeRole.SERVER],
                [(f"agent_{slot}", slot, {"slot": slot}) for slot, role in slots
                 if role == NodeRole.AGENT])
    return ([(f"server_{n.pk}", n.private_ip, {"node_id": n.pk}) for n in
             cluster.nodes.filter(role=NodeRole.SERVER).order_by("pk")],
            [(f"agent_{n.pk}", n.private_ip, {"node_id": n.pk}) for n in
             cluster.nodes.filter(role=NodeRole.AGENT).order_by("pk")])


def _buy_steps(cluster: Cluster) -> list[StepSpec]:
    """Instances the panel buys (steps/ecs.py), before anything else: the key pair, the
    nodes' security group, a DryRun of the whole order (a sold-out type or a short quota
    fails here, before anything is billed), then one RunInstances per node."""
    if not cluster.instance_order:
        return []
    network = _network_steps(cluster)
    return [
        *network,
        StepSpec("ecs_keypair", gettext_noop("Prepare the SSH key pair of the new instances"),
                 "ecs.keypair", [network[-1].key] if network else []),
        StepSpec("ecs_group", gettext_noop("Create the nodes' security group (K3s's ports "
                                           "only)"), "ecs.security_group", ["ecs_keypair"]),
        StepSpec("ecs_check", gettext_noop("Check that the zone sells the whole order "
                                           "(DryRun)"), "ecs.check_order", ["ecs_group"]),
        StepSpec("ecs_buy", gettext_noop("Buy the ECS instances and wait until they run"),
                 "ecs.run_instances", ["ecs_check"]),
    ]


def _network_steps(cluster: Cluster) -> list[StepSpec]:
    """The VPC and vSwitch the panel creates (steps/network.py), before the security group
    (CreateSecurityGroup names the VPC) and the instances (RunInstances names the vSwitch);
    for an NLB also its second vSwitch in a second zone, long before the NLB."""
    if not cluster.network_order:
        return []
    specs = [
        StepSpec("vpc_create", gettext_noop("Create the cluster's VPC and wait until it is "
                                            "Available"), "vpc.create"),
        StepSpec("vswitch_create", gettext_noop("Create the cluster's vSwitch and wait until "
                                                "it is Available"), "vswitch.create",
                 ["vpc_create"]),
    ]
    if cluster.network_order.get("zone2"):
        # An NLB needs a vSwitch in a second zone (steps/network.py create_second_vswitch).
        specs.append(StepSpec("vswitch2_create", gettext_noop(
            "Create the NLB's second vSwitch in another zone and wait until it is Available"),
            "vswitch.create_second", ["vswitch_create"]))
    return specs


def _joins(cluster: Cluster) -> bool:
    return cluster.join_security_group and not cluster.instance_order


def _join_steps(cluster: Cluster) -> list[StepSpec]:
    """The owner's own instances into the nodes' security group, when they chose it: the
    group made (K3s's ports only), then each instance the preflight found joins it."""
    if not _joins(cluster):
        return []
    return [
        StepSpec("ecs_group", gettext_noop("Create the nodes' security group (K3s's ports "
                                           "only)"), "ecs.security_group", ["preflight_cloud"]),
        StepSpec("ecs_join", gettext_noop("Add your instances to the nodes' security group"),
                 "ecs.join_group", ["ecs_group"]),
    ]


def balancer_backends_step(cluster: Cluster, key: str, after: list[str],
                           servers: list[Host]) -> StepSpec:
    """The listener step again, to put more servers behind the load balancer (only
    `servers`)."""
    spec = balancer_listener_step(cluster, after)
    return StepSpec(key, gettext_noop("Put the joined servers behind the load balancer"),
                    spec.handler, after, _backend_args(servers))


def _backend_args(hosts: list[Host]) -> dict[str, Any]:
    """The listener step's args naming only `hosts`: node ids, or the order's slots when the
    run buys the instances (their nodes exist only once RunInstances answered)."""
    if all("node_id" in args for _, _, args in hosts):
        return {"node_ids": [args["node_id"] for _, _, args in hosts]}
    return {"slots": [args["slot"] for _, _, args in hosts]}


def etcd_server_steps(cluster: Cluster, servers: list[Host], start: list[str],
                      guard: list[str]) -> tuple[list[StepSpec], list[str]]:
    """Embedded etcd (docs.k3s.io/datastore/ha-embedded): the first server founds the
    cluster (`cluster-init`); the load balancer's listener then sends 6443 to it, because
    every other server joins through that address (`server: https://<LB>:6443`). The others
    join ONE AT A TIME, each step done only once its etcd member is healthy and its node Ready
    (k3s.install_server waits for both): a second member joining before the first is voting
    could take a 2-member cluster below quorum. Last, the joined servers go behind the load
    balancer. Returns the steps and what the next step waits for."""
    first, joining = servers[0], servers[1:]
    key, where, args = first
    specs = [StepSpec(key, title(gettext_noop("Install K3s server %(n)s (%(ip)s), founding "
                                              "etcd (cluster-init)"), n=1, ip=where),
                      "k3s.install_server", start, args),
             replace(balancer_listener_step(cluster, [key, *guard]),
                     args=_backend_args([first]))]
    previous = ["slb_listener"]
    for index, (key, where, args) in enumerate(joining):
        specs.append(StepSpec(key, title(gettext_noop(
            "Join K3s server %(n)s (%(ip)s) to etcd through the load balancer"),
            n=index + 2, ip=where), "k3s.install_server", previous, args))
        previous = [key]
    if joining:
        specs.append(balancer_backends_step(cluster, "slb_backends", previous, servers))
        previous = ["slb_backends"]
    return specs, previous


def _opening_steps(cluster: Cluster) -> list[StepSpec]:
    """What every create starts with: the instances it buys (if any), then the preflight of
    the cloud account and of every host."""
    return [
        *_buy_steps(cluster),
        StepSpec(
            "preflight_cloud", gettext_noop("Check credentials, region, zone, VPC and vSwitch"),
            "preflight.cloud", ["ecs_buy"] if cluster.instance_order else []),
        *_join_steps(cluster),
        StepSpec("preflight_hosts", gettext_noop("Check every host over SSH"), "preflight.hosts",
                 ["ecs_join" if _joins(cluster) else "preflight_cloud"]),
    ]


def _closing_steps(after: list[str], agents: list[Host]) -> list[StepSpec]:
    """What every create ends with once the API answers through the load balancer: the
    kubeconfig, kubectl's view verified, the agents, the first health check."""
    specs = [
        StepSpec("kubeconfig", gettext_noop("Fetch the kubeconfig and point it at the SLB"),
                 "k3s.kubeconfig", after),
        StepSpec(
            "verify", gettext_noop("Verify the API through the SLB as kubectl will"),
            "verify.cluster", ["kubeconfig"]),
    ]
    agent_keys = []
    for key, where, args in agents:
        agent_keys.append(key)
        name = title(gettext_noop("Install K3s agent (%(ip)s)"), ip=where)
        specs.append(StepSpec(key, name, "k3s.install_agent", ["verify"], args))
    specs.append(StepSpec("health", gettext_noop("First health check"), "health.check",
                          ["verify", *agent_keys]))
    return specs


def create_plan(cluster: Cluster) -> list[StepSpec]:
    """Preflight, then RDS and SLB in parallel, then servers one at a time, then the rest."""
    if cluster.datastore_kind == DatastoreKind.ETCD:
        return etcd_create_plan(cluster)
    servers, agents = _hosts(cluster)
    specs = [
        *_opening_steps(cluster),
    ]
    if cluster.datastore_kind == DatastoreKind.RDS:
        specs += [
            StepSpec("rds_create", engine_for(cluster).create_title, "rds.create",
                     ["preflight_hosts"]),
            StepSpec(
                "rds_configure",
                gettext_noop("Whitelist servers, create account and database, fix parameters"),
                "rds.configure", ["rds_create"]),
        ]
        datastore_ready = "rds_configure"
    else:
        datastore_ready = "preflight_hosts"
    specs += [
        StepSpec("datastore_check", gettext_noop("Prove the datastore accepts K3s's schema"),
                 "datastore.check", [datastore_ready]),
        # Bought only once the datastore is proven: a bad DSN of the user's buys nothing.
        balancer_create_step(cluster, ["datastore_check"]),
    ]
    guarded = bool(cluster.api_allowed_cidrs)
    specs += allowlist_steps(cluster)
    previous = ["slb_create"]
    for index, (key, where, args) in enumerate(servers):
        name = title(gettext_noop("Install K3s server %(n)s (%(ip)s)"), n=index + 1, ip=where)
        specs.append(StepSpec(key, name, "k3s.install_server", previous, args))
        previous = [key]
    specs.append(balancer_listener_step(
        cluster, [*previous, *(["slb_acl"] if guarded else [])]))
    return specs + _closing_steps(["slb_listener"], agents)


def allowlist_steps(cluster: Cluster) -> list[StepSpec]:
    """The API allow-list's step (before the listener it guards), or none. An NLB's security
    group is joined before the listener exists (a new NLB listener forwards at once); a
    CLB's listener is born behind its whitelist: never open to everyone."""
    if not cluster.api_allowed_cidrs:
        return []
    if cluster.load_balancer_kind == LoadBalancerKind.NLB:
        return [StepSpec("slb_acl", gettext_noop("Create the API's allow-list (a security "
                                                 "group joined to the NLB)"),
                         "nlb.allowlist", ["slb_create"])]
    return [StepSpec("slb_acl", gettext_noop("Create the API's allow-list (SLB access "
                                             "control)"), "slb.acl", ["slb_create"])]


def etcd_create_plan(cluster: Cluster) -> list[StepSpec]:
    """Embedded etcd: no RDS and no datastore proof (there is no database to buy or prove);
    the load balancer first (its address is in every certificate and is what joining servers
    dial), then the servers as etcd_server_steps orders them, then as with any datastore."""
    servers, agents = _hosts(cluster)
    specs = [
        *_opening_steps(cluster),
        balancer_create_step(cluster, ["preflight_hosts"]),
        *allowlist_steps(cluster),
    ]
    guard = ["slb_acl"] if cluster.api_allowed_cidrs else []
    server_specs, previous = etcd_server_steps(cluster, servers, ["slb_create"], guard)
    specs += server_specs
    return specs + _closing_steps(previous, agents)


def retry_problem(cluster: Cluster, run: Run) -> str:
    """Why Retry may not resume this create ('' when it may): only a cluster whose create
    failed or was cancelled (status failed) is still being created."""
    if cluster.status != ClusterStatus.FAILED:
        return _("Only a failed cluster's creation can be retried; this one is %(status)s.") % {
            "status": cluster.get_status_display()}
    return ""


def start_create(cluster: Cluster, user: Any = None) -> Run:
    """Start provisioning a cluster whose choices and nodes are saved."""
    with transaction.atomic():
        locked = Cluster.objects.select_for_update().get(pk=cluster.pk)
        if active_run(locked):
            raise OperationRefused("this cluster already has a run in progress")
        if locked.status not in (ClusterStatus.DRAFT, ClusterStatus.FAILED):
            raise OperationRefused(f"a {locked.get_status_display()} cluster cannot be created")
        if not locked.k3s_token:
            # One token for every server, generated before any of them exists.
            locked.k3s_token = generate_k3s_token()
            locked.save(update_fields=["k3s_token"])
        if not locked.k3s_agent_token and locked.status == ClusterStatus.DRAFT:
            # Only before any server ran: every server must start with the same agent token
            # (a failed create's servers may already run without one).
            locked.k3s_agent_token = generate_k3s_token()
            locked.save(update_fields=["k3s_agent_token"])
        Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.PROVISIONING)
        return pipeline.create_run(locked, RunKind.CREATE, create_plan(locked),
                                   created_by=user)
