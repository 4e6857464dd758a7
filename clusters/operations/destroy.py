"""Destroy a cluster: the rule to start it, and its step graph (everything it bought goes,
K3s leaves its hosts, the history stays)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils.timezone import now
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from clusters.adapters import ssh
from clusters.adapters.instance_order import INSTANCE_KIND
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
    if cluster.network_order or cluster.resources.filter(
            kind__in=("vpc", "vswitch", "vswitch_nlb")).exists():
        # The VPC and vSwitch the panel created (steps/network.py), last: the vSwitch once
        # nothing holds an address in it (instances, load balancer, RDS), the VPC once its
        # vSwitch and the nodes' security group are gone. Never a VPC the owner chose, and
        # not while a kept RDS instance or kept instances still hold addresses in it.
        # An instance kept when its node was removed (remove_node_plan) holds an address in
        # the vSwitch too: the network stays with it, as with "keep the instances".
        # Decided when the plan is made, on purpose: a kept row can only appear through a
        # removal, and none starts once the destroy's plan exists (start_remove_node needs a
        # ready cluster; a destroying one, or one whose destroy failed, is not), and a
        # Retry resumes this same plan. It errs on the safe side: a kept instance the owner
        # released by hand since leaves the network in place (the steps Skip, saying why).
        kept_one = cluster.resources.filter(kind__startswith="ecs_instance_",
                                            attributes__kept=True).exists()
        network_args = {"keep_instances": keep_instances or kept_one,
                        "keep_database": keep_database
                        and cluster.datastore_kind == DatastoreKind.RDS}
        specs += [
            StepSpec("vswitch_delete", gettext_noop("Delete the vSwitches the panel created")
                     if cluster.network_order.get("zone2") else
                     gettext_noop("Delete the vSwitch the panel created"),
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


def holds_generated_key(cluster: Cluster) -> bool:
    """Whether the instances the panel bought for the cluster log in only with the key pair
    the panel generated (no pair of the owner's was chosen): nobody else holds its private
    half, so the owner needs it to log in to an instance they keep."""
    order = cluster.instance_order or {}
    return (bool(order) and not order.get("key_pair") and bool(cluster.generated_ssh_key)
            and cluster.resources.filter(kind__startswith=INSTANCE_KIND).filter(
                Q(deleted_at__isnull=True) | Q(attributes__kept=True)).exists())


def generated_key_not_taken(cluster: Cluster) -> bool:
    """The one rule behind keeping an instance the panel bought (destroy's "keep the
    instances", a removed node's "keep the instance"): refused while its instances log in
    only with the key pair the panel generated and its private key was never downloaded."""
    return holds_generated_key(cluster) and cluster.generated_ssh_key_downloaded_at is None


def keep_instances_problem(cluster: Cluster, *, one_node: bool = False) -> str:
    """Why "keep the instances" (or, `one_node`, a removed node's "keep the instance") is
    refused ('' when it is not).

    Why refuse rather than keep silently: a kept instance is still billed, and it logs in
    only with the key pair the panel generated, whose private half nobody but the panel has
    ever seen; once the cluster is destroyed its page offers nothing more to do with them,
    so kept hosts nobody can log in to would be paid for and useless. A careful user keeps
    instances to go on using them, so the panel asks for the key to be downloaded first
    (the destroy form and the API's …/ssh-key/ offer it, owner-only and audited:
    take_generated_key) and refuses
    the keep until it has been. The key stays downloadable, each download audited, while
    the ledger holds instances the panel bought, kept ones included (the destroy deletes
    neither the key from the panel nor, when kept, the key pair from ECS), so a lost
    download can be repeated.
    """
    if not generated_key_not_taken(cluster):
        return ""
    if one_node:
        return _("The kept instance logs in only with the SSH key pair the panel generated, "
                 "which you have not downloaded: download the instances' SSH private key "
                 "first (on the cluster's page in the web panel, section “Destroy the "
                 "cluster”, or with `panelctl clusters ssh-key`), then remove the node "
                 "keeping its instance. Without it nobody could log in to it.")
    return _("The kept instances log in only with the SSH key pair the panel generated, "
             "which you have not downloaded: download the instances' SSH private key first "
             "(on the cluster's page in the web panel, section “Destroy the cluster”, or "
             "with `panelctl clusters ssh-key`), then destroy keeping them. Without it nobody "
             "could log in to them.")


def take_generated_key(cluster: Cluster) -> tuple[str, str]:
    """(the generated private key, its MD5 fingerprint as ECS lists the pair) for its owner
    to download (the caller checked ownership and audits the fingerprint, never the key,
    in the same transaction: a download recorded here always has its audit row); the
    download is recorded on the cluster, which is what lets keep_instances_problem allow
    "keep the instances". Never logged, never in a run."""
    if not holds_generated_key(cluster):
        raise OperationRefused(_("The panel generated no SSH key pair for this cluster's "
                                 "instances: they log in with your own key pair."))
    fingerprint = ssh.md5_fingerprint(ssh.load_private_key(cluster.generated_ssh_key))
    Cluster.objects.filter(pk=cluster.pk).update(generated_ssh_key_downloaded_at=now())
    return cluster.generated_ssh_key, fingerprint


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
        if keep_instances and keep_instances_problem(locked):
            raise OperationRefused(keep_instances_problem(locked))
        Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.DESTROYING)
        return pipeline.create_run(
            locked, RunKind.DESTROY, destroy_plan(locked, keep_database=keep_database,
                                                  keep_instances=keep_instances),
            params={"keep_database": keep_database,
                    **({"keep_instances": True} if keep_instances else {})},
            created_by=user)
