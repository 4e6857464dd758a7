"""The security group the panel makes for a cluster's nodes (steps/ecs.py): bought once through
the ledger with a ClientToken recorded first, holding exactly K3s's rules
(clusters/k3s/firewall.py, docs.k3s.io/installation/requirements#networking), told apart from
the NLB's allow-list group, and deleted at destroy once nothing is in it.

The engine runs in this process; the steps talk to a real emulator through the SDK, and what
the group holds is read back from the emulator with a plain SDK call.
"""

from __future__ import annotations

from typing import Any

import pytest
from aliyunsdkecs.request.v20140526.DescribeSecurityGroupAttributeRequest import (
    DescribeSecurityGroupAttributeRequest,
)
from aliyunsdkecs.request.v20140526.DescribeSecurityGroupsRequest import (
    DescribeSecurityGroupsRequest,
)
from django.test import override_settings

from clusters.adapters import cloud
from clusters.engine.pipeline import StepSpec, create_run
from clusters.models import Cluster, LogLine, ResourceState, Run, RunKind, StepStatus
from clusters.steps.ecs import ECS_SECURITY_GROUP_KIND, RULES_TOKEN, security_group_name
from sandbox.aliyun.testing import Emulator
from tests.support.engine_specs import InProcessEngine, time_passes
from tests.support.factories import (
    TEST_ACCESS_KEY_ID,
    TEST_ACCESS_KEY_SECRET,
    make_cluster,
)
from tests.support.runs import step

pytestmark = pytest.mark.django_db

PANEL_SSH = "203.0.113.9/32"


@pytest.fixture
def cluster(emu: Emulator, settings: Any) -> Cluster:
    settings.ALIYUN_ENDPOINT_OVERRIDE = emu.endpoint
    settings.PANEL_SSH_SOURCE_CIDRS = [PANEL_SSH]
    emu.control.clear_faults()
    emu.control.clear_calls()
    return make_cluster(region=emu.region_id, zone=emu.vswitch["zone_id"],
                        vpc_id=emu.vpc["vpc_id"], vswitch_id=emu.vswitch["vswitch_id"])


def start(engine: InProcessEngine, cluster: Cluster, handler: str) -> Run:
    run = engine.act(create_run, cluster, RunKind.TEST, [StepSpec("sg", "Group", handler)])
    engine.deliver(engine.take()[0])
    return run


def attempt(engine: InProcessEngine) -> None:
    (message,) = engine.take()
    if message.countdown > 0:
        time_passes(message.countdown)
    engine.deliver(message)


def held_rules(emu: Emulator, group_id: str) -> set[tuple[str, str, str]]:
    """The group's inbound rules as ECS answers them: (protocol, ports, source)."""
    request = DescribeSecurityGroupAttributeRequest()
    request.set_SecurityGroupId(group_id)
    request.set_Direction("ingress")
    body = emu.call(request, sdk_client(emu))
    return {(p["IpProtocol"].upper(), p["PortRange"],
             f"group {p['SourceGroupId']}" if p.get("SourceGroupId") else p["SourceCidrIp"])
            for p in body["Permissions"]["Permission"]}


def groups_of(emu: Emulator, cluster: Cluster) -> list[str]:
    """The groups carrying the cluster's tag, as ECS lists them (DescribeSecurityGroups)."""
    request = DescribeSecurityGroupsRequest()
    request.set_Tags([{"Key": cloud.TAG_KEY, "Value": str(cluster.code)}])
    request.set_PageSize(50)
    body = emu.call(request, sdk_client(emu))
    return sorted(g["SecurityGroupId"] for g in body["SecurityGroups"]["SecurityGroup"])


def sdk_client(emu: Emulator) -> Any:
    return emu.client(access_key_id=TEST_ACCESS_KEY_ID, access_key_secret=TEST_ACCESS_KEY_SECRET)


def calls(emu: Emulator, action: str) -> list[dict[str, Any]]:
    return [c for c in emu.control.calls() if c["action"] == action]


def log_of(run: Run) -> list[str]:
    return list(LogLine.objects.filter(step__run=run).order_by("step", "seq")
                .values_list("text", flat=True))


def test_the_group_holds_exactly_what_k3s_needs_bought_with_the_recorded_token(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    run = start(engine, cluster, "ecs.security_group")
    engine.deliver_all()
    assert step(run, "sg").status == StepStatus.SUCCEEDED, step(run, "sg").error
    row = cluster.resources.get(kind=ECS_SECURITY_GROUP_KIND)
    group = row.provider_id
    assert groups_of(emu, cluster) == [group]
    assert held_rules(emu, group) == {
        ("TCP", "22/22", PANEL_SSH),
        ("TCP", "6443/6443", emu.vpc["cidr"]),
        ("UDP", "8472/8472", f"group {group}"),
        ("TCP", "10250/10250", f"group {group}"),
    }
    (create,) = calls(emu, "CreateSecurityGroup")
    assert create["params"]["ClientToken"] == row.client_token
    assert create["params"]["SecurityGroupName"] == security_group_name(cluster)
    (authorize,) = calls(emu, "AuthorizeSecurityGroup")
    assert authorize["params"]["ClientToken"] == row.attributes[RULES_TOKEN]
    assert row.state == ResourceState.PRESENT
    assert any("every other inbound source is refused" in line for line in log_of(run))


def test_an_internet_clb_opens_6443_to_its_allow_list_and_never_ssh_to_the_world(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    cluster.slb_address_type = "internet"
    cluster.api_allowed_cidrs = ["198.51.100.0/24", "0.0.0.0/0"]
    cluster.save()
    run = start(engine, cluster, "ecs.security_group")
    engine.deliver_all()
    group = cluster.resources.get(kind=ECS_SECURITY_GROUP_KIND).provider_id
    rules = held_rules(emu, group)
    assert {r for r in rules if r[2] in ("198.51.100.0/24", "0.0.0.0/0")} == {
        ("TCP", "6443/6443", "198.51.100.0/24"), ("TCP", "6443/6443", "0.0.0.0/0")}
    assert step(run, "sg").status == StepStatus.SUCCEEDED


@override_settings(PANEL_RETRY_BASE_SECONDS=0.1)
def test_a_lost_create_is_adopted_by_tag_and_name_never_bought_twice(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    # The NLB's allow-list group of the same cluster (same tag, another name) is not it.
    api = cloud.cloud_for(cluster)
    nlb_group = api.create_security_group(
        name=f"k3s-{cluster.name}-api-{str(cluster.code)[:8]}", vpc_id=cluster.vpc_id,
        description="allow-list", client_token=f"nlb-{cluster.code.hex}",
        tags=cloud.tags(cluster))
    emu.control.add_fault(action="CreateSecurityGroup", lose_answer=True, count=1)
    run = start(engine, cluster, "ecs.security_group")
    attempt(engine)  # bought; the answer lost
    emu.control.forget_client_tokens()
    engine.deliver_all()
    assert step(run, "sg").status == StepStatus.SUCCEEDED, step(run, "sg").error
    groups = groups_of(emu, cluster)
    assert len(groups) == 2 and nlb_group in groups  # the NLB's, and one for the nodes
    (nodes,) = [g for g in groups if g != nlb_group]
    row = cluster.resources.get(kind=ECS_SECURITY_GROUP_KIND)
    assert row.provider_id == nodes
    assert [c["params"]["ClientToken"] for c in calls(emu, "CreateSecurityGroup")] == [
        f"nlb-{cluster.code.hex}", row.client_token]  # the test's own, then the step's once
    assert any(line.startswith(f"Adopted {nodes} found by tag") for line in log_of(run))
    assert held_rules(emu, nlb_group) == set()  # nothing written into the NLB's group


def test_running_again_sends_no_rule_twice(engine: InProcessEngine, emu: Emulator,
                                           cluster: Cluster) -> None:
    first = start(engine, cluster, "ecs.security_group")
    engine.deliver_all()
    assert step(first, "sg").status == StepStatus.SUCCEEDED
    emu.control.clear_calls()
    again = start(engine, cluster, "ecs.security_group")
    engine.deliver_all()
    assert step(again, "sg").status == StepStatus.SUCCEEDED
    assert calls(emu, "CreateSecurityGroup") == calls(emu, "AuthorizeSecurityGroup") == []


def test_without_a_known_panel_address_nothing_is_bought(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster, settings: Any) -> None:
    """SSH never falls back to 0.0.0.0/0: the step fails before CreateSecurityGroup."""
    settings.PANEL_SSH_SOURCE_CIDRS = []
    run = start(engine, cluster, "ecs.security_group")
    engine.deliver_all()
    failed = step(run, "sg")
    assert failed.status == StepStatus.FAILED
    assert "The panel's own address is unknown" in failed.error
    assert "Set PANEL_SSH_SOURCE_CIDRS" in failed.error
    assert "docs.k3s.io/installation/requirements#networking" in failed.error
    assert calls(emu, "CreateSecurityGroup") == []
    assert groups_of(emu, cluster) == []


def test_destroy_waits_for_the_instances_to_leave_then_deletes_only_the_nodes_group(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    api = cloud.cloud_for(cluster)
    nlb_group = api.create_security_group(
        name="someone-elses", vpc_id=cluster.vpc_id, description="not the panel's nodes",
        client_token=f"other-{cluster.code.hex}", tags=cloud.tags(cluster))
    start(engine, cluster, "ecs.security_group")
    engine.deliver_all()
    group = cluster.resources.get(kind=ECS_SECURITY_GROUP_KIND).provider_id
    base = emu.vswitch["cidr"].rsplit(".", 1)[0]
    member = emu.register_instance("member", f"{base}.77", security_group_id=group)
    run = start(engine, cluster, "ecs.delete_security_group")
    attempt(engine)
    waiting = step(run, "sg")
    assert waiting.status == StepStatus.WAITING and "still has members" in waiting.wait_reason
    emu.register_instance("member", f"{base}.77", instance_id=member,
                          security_group_id=nlb_group)  # the instance moved away
    attempt(engine)
    assert step(run, "sg").status == StepStatus.SUCCEEDED
    assert groups_of(emu, cluster) == [nlb_group]
    row = cluster.resources.get(kind=ECS_SECURITY_GROUP_KIND)
    assert row.state == ResourceState.DELETED
    assert step(run, "sg").result["deleted"] == [group]


def test_an_embedded_etcd_cluster_s_group_lets_its_servers_peer_on_2379_2380(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """K3s networking requirements: embedded etcd's 2379-2380/tcp between the servers;
    without it, InnerAccessPolicy Drop keeps etcd from forming a cluster."""
    Cluster.objects.filter(pk=cluster.pk).update(datastore_kind="etcd")
    cluster.refresh_from_db()
    run = start(engine, cluster, "ecs.security_group")
    engine.deliver_all()
    assert step(run, "sg").status == StepStatus.SUCCEEDED, step(run, "sg").error
    group = cluster.resources.get(kind=ECS_SECURITY_GROUP_KIND).provider_id
    assert ("TCP", "2379/2380", f"group {group}") in held_rules(emu, group)


def _groups_of_instance(emu: Emulator, instance_id: str) -> list[str]:
    from aliyunsdkecs.request.v20140526.DescribeInstancesRequest import (  # noqa: PLC0415
        DescribeInstancesRequest,
    )

    request = DescribeInstancesRequest()
    request.set_InstanceIds(f'["{instance_id}"]')
    (found,) = emu.call(request, sdk_client(emu))["Instances"]["Instance"]
    return list(found["SecurityGroupIds"]["SecurityGroupId"])


_NEXT_HOST = iter(range(140, 250))  # the module's emulator is shared: fresh addresses


def _owned_hosts(emu: Emulator, cluster: Cluster, count: int, **extra: Any) -> list[str]:
    from clusters.models import Node  # noqa: PLC0415

    base = emu.vswitch["cidr"].rsplit(".", 1)[0]
    made = []
    for _ in range(count):
        number = next(_NEXT_HOST)
        address = f"{base}.{number}"
        instance = emu.register_instance(f"own-{number}", address, **extra)
        Node.objects.create(cluster=cluster, role="server", private_ip=address,
                            ecs_instance_id=instance, ssh_password="pw")
        made.append(instance)
    return made


def test_the_owners_instances_join_the_group_when_chosen_and_leave_it_at_destroy(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    Cluster.objects.filter(pk=cluster.pk).update(join_security_group=True)
    cluster.refresh_from_db()
    own = _owned_hosts(emu, cluster, 2)
    before = {i: _groups_of_instance(emu, i) for i in own}
    plan = [StepSpec("sg", "Group", "ecs.security_group"),
            StepSpec("join", "Join", "ecs.join_group", ["sg"])]
    run = engine.act(create_run, cluster, RunKind.TEST, plan)
    engine.deliver_all()
    assert step(run, "join").status == StepStatus.SUCCEEDED, step(run, "join").error
    group = cluster.resources.get(kind=ECS_SECURITY_GROUP_KIND).provider_id
    assert all(_groups_of_instance(emu, i) == [*before[i], group] for i in own)
    assert len(calls(emu, "JoinSecurityGroup")) == 2
    emu.control.clear_calls()
    again = engine.act(create_run, cluster, RunKind.TEST, plan)
    engine.deliver_all()
    assert step(again, "join").status == StepStatus.SUCCEEDED
    assert calls(emu, "JoinSecurityGroup") == []  # members already: nothing sent twice
    # A crash after JoinSecurityGroup, before its row said so: the row, INTENDED, makes the
    # membership the panel's, so it is still left at destroy.
    cluster.resources.filter(kind__startswith="ecs_join_").update(state=ResourceState.INTENDED)
    crashed = engine.act(create_run, cluster, RunKind.TEST, plan)
    engine.deliver_all()
    assert step(crashed, "join").status == StepStatus.SUCCEEDED
    assert calls(emu, "JoinSecurityGroup") == []
    assert set(cluster.resources.filter(kind__startswith="ecs_join_")
               .values_list("state", flat=True)) == {ResourceState.PRESENT}
    gone = engine.act(create_run, cluster, RunKind.TEST, [
        StepSpec("leave", "Leave", "ecs.leave_group"),
        StepSpec("delete", "Delete", "ecs.delete_security_group", ["leave"])])
    engine.deliver_all()
    assert step(gone, "delete").status == StepStatus.SUCCEEDED, step(gone, "delete").error
    assert all(_groups_of_instance(emu, i) == before[i] for i in own)  # theirs, kept
    assert group not in groups_of(emu, cluster)


def test_an_advanced_group_member_cannot_join_and_alibabas_error_is_shown(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    from aliyunsdkecs.request.v20140526.CreateSecurityGroupRequest import (  # noqa: PLC0415
        CreateSecurityGroupRequest,
    )

    request = CreateSecurityGroupRequest()
    request.set_VpcId(emu.vpc["vpc_id"])
    request.set_SecurityGroupType("enterprise")
    advanced = emu.call(request, sdk_client(emu))["SecurityGroupId"]
    Cluster.objects.filter(pk=cluster.pk).update(join_security_group=True)
    cluster.refresh_from_db()
    (own,) = _owned_hosts(emu, cluster, 1, security_group_id=advanced)
    run = engine.act(create_run, cluster, RunKind.TEST, [
        StepSpec("sg", "Group", "ecs.security_group"),
        StepSpec("join", "Join", "ecs.join_group", ["sg"])])
    engine.deliver_all()
    joined = step(run, "join")
    assert joined.status == StepStatus.FAILED
    assert f"{own} (" in joined.error and "InvalidOperation.MultiGroupType" in joined.error
    assert "RequestId" in joined.error and "all basic or all advanced" in joined.error
    assert _groups_of_instance(emu, own) == [advanced]


def test_a_host_that_left_already_is_done_and_one_whose_last_group_it_is_is_said(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """LeaveSecurityGroup since July 8, 2024: a host not in the group answers 400
    InvalidSecurityGroupAssociation.NotFound (it left already: done), its last group 403
    InstanceLastSecurityGroup (the owner must give it another; LeaveSecurityGroup's page)."""
    Cluster.objects.filter(pk=cluster.pk).update(join_security_group=True)
    cluster.refresh_from_db()
    first, second = _owned_hosts(emu, cluster, 2)
    (own_group,) = _groups_of_instance(emu, second)
    run = engine.act(create_run, cluster, RunKind.TEST, [
        StepSpec("sg", "Group", "ecs.security_group"),
        StepSpec("join", "Join", "ecs.join_group", ["sg"])])
    engine.deliver_all()
    assert step(run, "join").status == StepStatus.SUCCEEDED, step(run, "join").error
    group = cluster.resources.get(kind=ECS_SECURITY_GROUP_KIND).provider_id
    api = cloud.cloud_for(cluster)
    api.leave_security_group(first, group)      # the owner took it out in the console
    api.leave_security_group(second, own_group)  # and left this one only in the panel's
    leave = [StepSpec("leave", "Leave", "ecs.leave_group")]
    failed = engine.act(create_run, cluster, RunKind.TEST, leave)
    engine.deliver_all()
    said = step(failed, "leave")
    assert said.status == StepStatus.FAILED
    assert second in said.error and "InstanceLastSecurityGroup" in said.error
    assert "RequestId" in said.error and "add it to one of yours" in said.error
    codes = [c["code"] for c in calls(emu, "LeaveSecurityGroup")]
    assert "InvalidSecurityGroupAssociation.NotFound" in codes, codes
    api.join_security_group(second, own_group)  # what the message asks for
    again = engine.act(create_run, cluster, RunKind.TEST, leave)
    engine.deliver_all()
    assert step(again, "leave").status == StepStatus.SUCCEEDED, step(again, "leave").error
    assert _groups_of_instance(emu, first) == _groups_of_instance(emu, second) == [own_group]


def test_a_host_of_another_vpc_is_said_to_be_elsewhere_not_of_the_other_type(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """JoinSecurityGroup: a group of another VPC is 400 InvalidInstanceId.Mismatch (its
    error table), which is not the basic/advanced mix (InvalidOperation.MultiGroupType)."""
    from aliyunsdkvpc.request.v20160428.CreateVpcRequest import CreateVpcRequest  # noqa: PLC0415

    request = CreateVpcRequest()
    request.set_CidrBlock("192.168.0.0/16")
    other_vpc = emu.call(request, sdk_client(emu))["VpcId"]
    Cluster.objects.filter(pk=cluster.pk).update(join_security_group=True, vpc_id=other_vpc)
    cluster.refresh_from_db()
    (own,) = _owned_hosts(emu, cluster, 1)
    run = engine.act(create_run, cluster, RunKind.TEST, [
        StepSpec("sg", "Group", "ecs.security_group"),
        StepSpec("join", "Join", "ecs.join_group", ["sg"])])
    engine.deliver_all()
    joined = step(run, "join")
    assert joined.status == StepStatus.FAILED
    assert "InvalidInstanceId.Mismatch" in joined.error and "not in the cluster's VPC" in \
        joined.error
    assert "basic or all advanced" not in joined.error and f"{own} (" in joined.error


def test_a_host_added_by_address_joins_the_bought_group_and_its_removal_leaves_it(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """A cluster whose nodes sit in the group the panel bought (it bought their instances):
    a host added by address (operations.nodes.add_nodes_plan) joins the group between the
    cloud preflight (which finds its instance by private IP) and K3s, only the new host;
    its removal (remove_node_plan) takes it out again once it has left the cluster, its
    own groups kept. Without a group of the panel's, the plan joins nothing."""
    import dataclasses  # noqa: PLC0415

    from clusters.operations.nodes import add_nodes_plan, remove_node_plan  # noqa: PLC0415

    on_own_hosts = add_nodes_plan(cluster, [])
    assert "ecs_join" not in [spec.key for spec in on_own_hosts]
    Cluster.objects.filter(pk=cluster.pk).update(instance_order={
        "servers": 1, "agents": 0, "instance_type": "ecs.g7.large",
        "image_id": "ubuntu_24_04_x64_20G_alibase_20250722.vhd"})
    cluster.refresh_from_db()
    engine.act(create_run, cluster, RunKind.TEST, [StepSpec("sg", "Group",
                                                            "ecs.security_group")])
    engine.deliver_all()
    group = cluster.resources.get(kind=ECS_SECURITY_GROUP_KIND).provider_id
    older, new = _owned_hosts(emu, cluster, 2)
    node = cluster.nodes.get(ecs_instance_id=new)
    before = {i: _groups_of_instance(emu, i) for i in (older, new)}
    plan = add_nodes_plan(cluster, [node])
    keys = [spec.key for spec in plan]
    assert keys.index("preflight_cloud") < keys.index("ecs_join") < keys.index(
        "preflight_hosts") < keys.index(f"server_{node.pk}")
    emu.control.clear_calls()
    joined = engine.act(create_run, cluster, RunKind.TEST, [
        dataclasses.replace(spec, depends_on=[]) for spec in plan if spec.key == "ecs_join"])
    engine.deliver_all()
    assert step(joined, "ecs_join").status == StepStatus.SUCCEEDED, step(joined, "ecs_join").error
    assert _groups_of_instance(emu, new) == [*before[new], group]
    assert _groups_of_instance(emu, older) == before[older]  # not a new host: untouched
    assert len(calls(emu, "JoinSecurityGroup")) == 1

    removal = [spec.key for spec in remove_node_plan(cluster, node)]
    assert removal.index("forget") < removal.index("ecs_group_leave") < removal.index(
        "health")
    left = engine.act(create_run, cluster, RunKind.TEST, [
        dataclasses.replace(spec, depends_on=[]) for spec in remove_node_plan(cluster, node)
        if spec.key == "ecs_group_leave"])
    engine.deliver_all()
    assert step(left, "ecs_group_leave").status == StepStatus.SUCCEEDED
    assert _groups_of_instance(emu, new) == before[new]
    assert not cluster.resources.filter(kind__startswith="ecs_join_",
                                        deleted_at__isnull=True).exists()

# --- the API's allow-list outside the VPC (a CLB keeps the client's address) ----------------

def test_an_intranet_clb_s_allow_list_outside_the_vpc_reaches_6443_and_nothing_else(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """A source in a peered VPC or behind a VPN (outside the VPC's block) passes an intranet
    CLB's whitelist with its own address: the nodes' group must admit it on 6443, and only
    there; a source inside the VPC's block is the VPC's rule already (clusters/k3s/
    firewall.py)."""
    inside = emu.vswitch["cidr"]  # a part of the VPC's block
    cluster.api_allowed_cidrs = ["10.99.0.0/16", inside, "192.0.2.7/32"]
    cluster.save()
    run = start(engine, cluster, "ecs.security_group")
    engine.deliver_all()
    assert step(run, "sg").status == StepStatus.SUCCEEDED, step(run, "sg").error
    group = cluster.resources.get(kind=ECS_SECURITY_GROUP_KIND).provider_id
    assert held_rules(emu, group) == {
        ("TCP", "22/22", PANEL_SSH),
        ("TCP", "6443/6443", emu.vpc["cidr"]),
        ("TCP", "6443/6443", "10.99.0.0/16"),
        ("TCP", "6443/6443", "192.0.2.7/32"),
        ("UDP", "8472/8472", f"group {group}"),
        ("TCP", "10250/10250", f"group {group}"),
    }


def test_an_nlb_cluster_s_group_opens_nothing_for_its_allow_list(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """An NLB reaches the nodes from its own addresses in the VPC (client IP preservation is
    off, steps/nlb.py); its allow-list is its own security group."""
    cluster.api_allowed_cidrs = ["10.99.0.0/16"]
    cluster.load_balancer_kind = "nlb"
    cluster.save()
    run = start(engine, cluster, "ecs.security_group")
    engine.deliver_all()
    assert step(run, "sg").status == StepStatus.SUCCEEDED, step(run, "sg").error
    group = cluster.resources.get(kind=ECS_SECURITY_GROUP_KIND).provider_id
    assert not any(r[2] == "10.99.0.0/16" for r in held_rules(emu, group))


def test_an_allow_list_change_moves_the_group_s_6443_rules_and_leaves_the_owner_s_own(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """The change's run (operations/allowlist.py) puts the nodes' group step before the
    ACL's: the new source is admitted before the ACL lets it through, the old one the panel
    wrote is revoked, and a 6443 rule the owner added by hand stays."""
    from clusters.models import ClusterStatus  # noqa: PLC0415
    from clusters.operations.allowlist import allowlist_plan, start_allowlist_change  # noqa: PLC0415

    cluster.api_allowed_cidrs = ["10.99.0.0/16"]
    cluster.save()
    first = engine.act(create_run, cluster, RunKind.TEST, [
        StepSpec("sg", "Group", "ecs.security_group"),
        StepSpec("acl", "ACL", "slb.acl", ["sg"])])
    engine.deliver_all()
    assert step(first, "acl").status == StepStatus.SUCCEEDED, step(first, "acl").error
    group = cluster.resources.get(kind=ECS_SECURITY_GROUP_KIND).provider_id
    api = cloud.cloud_for(cluster)
    from clusters.adapters.aliyun import IngressRule  # noqa: PLC0415
    api.authorize_ingress(group, [IngressRule("192.0.2.0/24", "6443/6443")], "the owner's")
    Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.READY)
    cluster.refresh_from_db()
    assert [(s.key, s.handler, list(s.depends_on)) for s in allowlist_plan(cluster)] == [
        ("ecs_group", "ecs.security_group", []), ("acl", "slb.acl", ["ecs_group"])]
    emu.control.clear_calls()
    change = engine.act(start_allowlist_change, cluster, "10.98.0.0/16")
    engine.deliver_all()
    assert step(change, "acl").status == StepStatus.SUCCEEDED, step(change, "acl").error
    assert step(change, "ecs_group").status == StepStatus.SUCCEEDED
    on_6443 = {r[2] for r in held_rules(emu, group) if r[1] == "6443/6443"}
    assert on_6443 == {emu.vpc["cidr"], "10.98.0.0/16", "192.0.2.0/24"}
    actions = [c["action"] for c in emu.control.calls()]
    assert actions.index("AuthorizeSecurityGroup") < actions.index("RevokeSecurityGroup")
    assert any("Revoked from" in line and "10.99.0.0/16" in line
               for line in log_of(change))


def test_a_group_made_before_the_ledger_loses_a_removed_source_s_old_6443_rule(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """A cluster made before the row recorded its allow-list sources holds the old code's
    6443 rules (described "… (Internet CLB)", or in the list being replaced): a source taken
    off the list loses TCP 6443, while a 6443 rule the owner added by hand stays."""
    from clusters.adapters.aliyun import IngressRule  # noqa: PLC0415
    from clusters.k3s.firewall import OLD_ALLOWLIST_WHY  # noqa: PLC0415
    from clusters.models import ClusterStatus  # noqa: PLC0415
    from clusters.operations.allowlist import start_allowlist_change  # noqa: PLC0415
    from clusters.steps.ecs import ALLOWLIST_SOURCES  # noqa: PLC0415

    cluster.slb_address_type = "internet"
    cluster.api_allowed_cidrs = ["198.51.100.0/24", "192.0.2.0/24"]
    cluster.save()
    first = engine.act(create_run, cluster, RunKind.TEST, [
        StepSpec("sg", "Group", "ecs.security_group"),
        StepSpec("acl", "ACL", "slb.acl", ["sg"])])
    engine.deliver_all()
    assert step(first, "acl").status == StepStatus.SUCCEEDED, step(first, "acl").error
    row = cluster.resources.get(kind=ECS_SECURITY_GROUP_KIND)
    group = row.provider_id
    api = cloud.cloud_for(cluster)
    # As the old code left it: its rules described the old way (one with no description at
    # all), no ledger attribute, and the owner's own 6443 rule beside them.
    old_rules = [IngressRule("198.51.100.0/24", "6443/6443"),
                 IngressRule("192.0.2.0/24", "6443/6443")]
    api.revoke_ingress(group, old_rules)
    api.authorize_ingress(group, old_rules[:1], OLD_ALLOWLIST_WHY)
    api.authorize_ingress(group, old_rules[1:])
    api.authorize_ingress(group, [IngressRule("203.0.113.0/24", "6443/6443")], "the owner's")
    row.attributes.pop(ALLOWLIST_SOURCES)
    row.save(update_fields=["attributes"])
    Cluster.objects.filter(pk=cluster.pk).update(status=ClusterStatus.READY)
    cluster.refresh_from_db()
    change = engine.act(start_allowlist_change, cluster, "198.18.0.0/15")
    engine.deliver_all()
    assert step(change, "acl").status == StepStatus.SUCCEEDED, step(change, "acl").error
    on_6443 = {r[2] for r in held_rules(emu, group) if r[1] == "6443/6443"}
    assert on_6443 == {emu.vpc["cidr"], "198.18.0.0/15", "203.0.113.0/24"}
    row.refresh_from_db()
    assert row.attributes[ALLOWLIST_SOURCES] == ["198.18.0.0/15"]


def test_allow_list_sources_the_group_will_not_admit_are_each_said(
        engine: InProcessEngine, emu: Emulator, cluster: Cluster) -> None:
    """An Internet CLB's clients come with public addresses: a private block of its
    allow-list never matches, so 6443 is not opened to that range (it would admit it from a
    peered VPC, past the CLB); an intranet API's public block is not opened either. Each
    skipped source is said in the step's log."""
    cluster.slb_address_type = "internet"
    cluster.api_allowed_cidrs = ["8.8.8.0/24", "10.99.0.0/16"]
    cluster.save()
    run = start(engine, cluster, "ecs.security_group")
    engine.deliver_all()
    group = cluster.resources.get(kind=ECS_SECURITY_GROUP_KIND).provider_id
    on_6443 = {r[2] for r in held_rules(emu, group) if r[1] == "6443/6443"}
    assert on_6443 == {emu.vpc["cidr"], "8.8.8.0/24"}
    assert any("10.99.0.0/16" in line and "never comes through an Internet-facing CLB" in line
               for line in log_of(run))

    cluster.slb_address_type = "intranet"
    cluster.save()
    again = start(engine, cluster, "ecs.security_group")
    engine.deliver_all()
    assert any("8.8.8.0/24" in line and "cannot reach an intranet API" in line
               for line in log_of(again))
