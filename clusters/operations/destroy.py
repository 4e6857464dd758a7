"""Destroy a cluster: the rule to start it, and its step graph (everything it bought goes,
K3s leaves its hosts, the history stays)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from clusters.engine import pipeline
from clusters.engine.pipeline import StepSpec
from clusters.models import Cluster, ClusterStatus, DatastoreKind, LoadBalancerKind, Run, RunKind
from clusters.operations.runs import OperationRefused


def balancer_delete_step(cluster: Cluster) -> StepSpec:
    """The API load balancer's delete: the CLB (destroy.slb) or the NLB (destroy.nlb)."""
    if cluster.load_balancer_kind == LoadBalancerKind.NLB:
        return StepSpec("slb_delete", gettext_noop("Delete the NLB (listener, server group, "
                                                   "load balancer)"), "destroy.nlb")
    return StepSpec("slb_delete", gettext_noop("Delete the SLB"), "destroy.slb")


def destroy_plan(cluster: Cluster, *, keep_database: bool = False,
                 keep_instances: bool = False) -> list[StepSpec]:
    """Hosts, SLB and RDS in parallel (a dead host must not keep the bill running), then close.

    K3s comes off the hosts while the datastore may still exist; nothing depends on order
    between the three, and each is idempotent, so Retry after any failure finishes the job.
    """
    specs = [
        StepSpec(
            "uninstall", gettext_noop("Remove K3s from every host"), "destroy.hosts",
            retry_budget=3),
        balancer_delete_step(cluster),
    ]
    finished = ["uninstall", "slb_delete"]
    if cluster.datastore_kind == DatastoreKind.RDS and not keep_database:
        specs.append(StepSpec(
            "rds_delete", gettext_noop("Delete the RDS instance and wait until it is gone"),
            "destroy.rds"))
        finished.append("rds_delete")
    if (cluster.instance_order or cluster.join_security_group
            or cluster.resources.filter(kind__startswith="ecs_").exists()):
        # What the panel bought for the hosts (steps/ecs.py): the instances once K3s is off
        # them (or kept, as the owner chose), then the group nothing is in any more and the
        # key pair. Only the ledger's and the cluster's tagged ones, never another. The
        # owner's own instances added to the group leave it first, and stay.
        joined = cluster.join_security_group or cluster.resources.filter(
            kind__startswith="ecs_join_").exists()
        if joined:
            specs.append(StepSpec(
                "ecs_group_leave",
                gettext_noop("Take your instances out of the nodes' security group"),
                "ecs.leave_group", ["uninstall"]))
        specs += [
            StepSpec("ecs_instances_delete",
                     gettext_noop("Release the ECS instances the panel bought"),
                     "ecs.delete_instances", ["uninstall"],
                     {"keep_instances": keep_instances}),
            StepSpec("ecs_group_delete",
                     gettext_noop("Delete the nodes' security group"),
                     "ecs.delete_security_group", ["ecs_instances_delete", "slb_delete",
                                                   *(["ecs_group_leave"] if joined else [])],
                     {"keep_instances": keep_instances}),
            StepSpec("ecs_keypair_delete", gettext_noop("Delete the key pair the panel made"),
                     "ecs.delete_keypair", ["ecs_instances_delete"],
                     {"keep_instances": keep_instances}),
        ]
        finished += ["ecs_group_delete", "ecs_keypair_delete"]
    if cluster.network_order or cluster.resources.filter(kind__in=("vpc", "vswitch")).exists():
        # The VPC and vSwitch the panel created (steps/network.py), last: the vSwitch once
        # nothing holds an address in it (instances, load balancer, RDS), the VPC once its
        # vSwitch and the nodes' security group are gone. Never a VPC the owner chose, and
        # not while a kept RDS instance or kept instances still hold addresses in it.
        # An instance kept when its node was removed (remove_node_plan) holds an address in
        # the vSwitch too: the network stays with it, as with "keep the instances".
        kept_one = cluster.resources.filter(kind__startswith="ecs_instance_",
                                            attributes__kept=True).exists()
        network_args = {"keep_instances": keep_instances or kept_one,
                        "keep_database": keep_database
                        and cluster.datastore_kind == DatastoreKind.RDS}
        specs += [
            StepSpec("vswitch_delete", gettext_noop("Delete the vSwitch the panel created"),
                     "vpc.delete_vswitch",
                     [*finished, *(["ecs_instances_delete"] if "ecs_group_delete" in finished
                                   else [])], network_args),
            StepSpec("vpc_delete", gettext_noop("Delete the VPC the panel created"),
                     "vpc.delete", ["vswitch_delete"], network_args),
        ]
        finished.append("vpc_delete")
    specs.append(StepSpec("finish", gettext_noop("Close the ledger and mark the cluster destroyed"),
                          "destroy.finish", finished, {"keep_database": keep_database}))
    return specs


def confirm_problem(cluster: Cluster, typed: str) -> str:
    """'' when `typed` is the cluster's name (the confirmation Destroy asks for), else what
    to do: the page, the API and start_destroy ask here, so the rule is said once."""
    if (typed or "").strip() != cluster.name:
        return _("Type the cluster's name to confirm that it may be destroyed.")
    return ""


def start_destroy(cluster: Cluster, user: Any = None, *, confirm_name: str,
                  keep_database: bool = False, keep_instances: bool = False) -> Run:
    """Delete everything the cluster bought and take K3s off its hosts; history stays.

    Works whatever state create left behind (failed or cancelled at any step). A destroyed
    cluster refuses a second destroy: there is nothing left to delete.
    """
    with transaction.atomic():
        locked = Cluster.objects.select_for_update().get(pk=cluster.pk)
        problem = confirm_problem(locked, confirm_name)
        if problem:
            raise OperationRefused(problem)
        if locked.status == ClusterStatus.DESTROYED:
            raise OperationRefused(_("This cluster is already destroyed: nothing is left to "
                                     "delete."))
        if not locked.is_idle:
            raise OperationRefused(_("This cluster has a run in progress: cancel it first, "
                                     "then destroy."))
        Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.DESTROYING)
        return pipeline.create_run(
            locked, RunKind.DESTROY, destroy_plan(locked, keep_database=keep_database,
                                                  keep_instances=keep_instances),
            params={"keep_database": keep_database,
                    **({"keep_instances": True} if keep_instances else {})},
            created_by=user)
