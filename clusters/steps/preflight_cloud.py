"""Preflight of the cloud side: credentials, region, zone, VPC, vSwitch and the hosts' ECS."""

from __future__ import annotations

from clusters import cloud
from clusters.errors import PermanentError
from clusters.models import Node
from clusters.outcomes import Done, Outcome
from clusters.stepcontext import StepContext
from clusters.steps import step_handler


@step_handler("preflight.cloud")
def check_cloud(ctx: StepContext) -> Outcome:
    """Cheap Describe calls only: nothing is bought, every mismatch is named."""
    cluster = ctx.cluster
    api = cloud.cloud_for(cluster)
    regions = {region.region_id for region in api.describe_regions()}
    ctx.say(f"AccessKey {cluster.cloud_account.access_key_id} works ({len(regions)} regions)")
    if cluster.region not in regions:
        raise PermanentError(f"Region {cluster.region} is not available to this account.")
    zones = {zone.zone_id for zone in api.describe_zones()}
    if cluster.zone not in zones:
        raise PermanentError(f"Zone {cluster.zone} is not in region {cluster.region}.")
    vpcs = {vpc.vpc_id: vpc for vpc in api.describe_vpcs()}
    if cluster.vpc_id not in vpcs:
        raise PermanentError(f"VPC {cluster.vpc_id} does not exist in {cluster.region}.")
    vswitches = {vsw.vswitch_id: vsw for vsw in api.describe_vswitches(cluster.vpc_id)}
    vswitch = vswitches.get(cluster.vswitch_id)
    if vswitch is None:
        raise PermanentError(f"vSwitch {cluster.vswitch_id} is not in VPC {cluster.vpc_id}.")
    if vswitch.zone_id != cluster.zone:
        raise PermanentError(f"vSwitch {cluster.vswitch_id} is in zone {vswitch.zone_id}, "
                             f"not {cluster.zone}.")
    ctx.say(f"{cluster.region}/{cluster.zone}, VPC {cluster.vpc_id} ({vpcs[cluster.vpc_id].cidr}),"
            f" vSwitch {cluster.vswitch_id} ({vswitch.cidr})")

    members = list(cluster.nodes.exclude(status="removed"))
    by_ip = {}
    for instance in api.describe_instances_by_private_ips([n.private_ip for n in members]):
        for ip in instance.private_ips:
            by_ip[ip] = instance
    problems = []
    for node in members:
        instance = by_ip.get(node.private_ip)
        if instance is None:
            problems.append(f"{node.private_ip} is not the private IP of any ECS instance in "
                            f"{cluster.region}")
        elif instance.vpc_id != cluster.vpc_id:
            problems.append(f"{node.private_ip} ({instance.instance_id}) is in VPC "
                            f"{instance.vpc_id}, not {cluster.vpc_id}; the SLB cannot reach it")
        else:
            Node.objects.filter(pk=node.pk).update(ecs_instance_id=instance.instance_id)
            ctx.say(f"{node.private_ip} is ECS instance {instance.instance_id} "
                    f"({instance.status})")
    if problems:
        raise PermanentError("; ".join(problems) + ".")
    return Done({"instances": {ip: inst.instance_id for ip, inst in by_ip.items()}})
