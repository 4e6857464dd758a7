"""ECS steps for the hosts the panel buys: the cluster's own security group (ecs.security_group)
and its removal at destroy (ecs.delete_security_group).

The group is a ledger row bought through `purchase.ensure_bought` (CreateSecurityGroup with
the row's ClientToken, recorded before the call; adopted by the cluster's tag and the group's
name after a lost answer), and its rules are exactly `clusters.k3s.firewall.node_rules` of the
cluster (K3s's networking requirements: see that module). AuthorizeSecurityGroup carries a
ClientToken too, recorded in the row first and derived from the rules it sends, so a re-sent
call with the same rules is the same request, and a changed rule set is a new one.

The NLB's allow-list group (steps/nlb.py) carries the same cluster tag: the two are told
apart by name, and neither step adopts or deletes the other's.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import time
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings

from clusters.adapters import cloud, host_addresses, purchase, ssh
from clusters.adapters.aliyun import AliyunCloud, IngressRule, InstanceOrder
from clusters.adapters.instance_order import (
    ECS_SECURITY_GROUP_KIND,
    INSTANCE_KIND,
    KEY_PAIR_KIND,
    run_slots,
)
from clusters.core.errors import PermanentError, StepError, TransientError
from clusters.engine.outcomes import Done, Fail, Outcome, Skip, Wait
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.k3s.firewall import REQUIREMENTS_URL, FirewallError, FirewallSpec, node_rules
from clusters.models import (
    Cluster,
    DatastoreKind,
    LoadBalancerKind,
    Node,
    ResourceState,
    SlbAddressType,
)

# The row's attribute holding the ClientToken of the rules last sent (a key, not a secret).
RULES_TOKEN = "rules_token"  # noqa: S105
DELETE_TIMEOUT_SECONDS = 15 * 60


def security_group_name(cluster: Cluster) -> str:
    return f"k3s-{cluster.name}-nodes-{str(cluster.code)[:8]}"[:128]


def is_node_group(cluster: Cluster, name: str) -> bool:
    """Whether a tagged group of this cluster is its nodes' group (not the NLB's)."""
    return name == security_group_name(cluster)


def panel_ssh_sources(vpc_cidr: str) -> tuple[str, ...]:
    """Where the hosts see the panel's SSH come from: PANEL_SSH_SOURCE_CIDRS, or else the
    panel's own IPv4 addresses inside the VPC (a panel running in it), each a /32."""
    configured = tuple(getattr(settings, "PANEL_SSH_SOURCE_CIDRS", []) or ())
    if configured:
        return configured
    network = ipaddress.IPv4Network(vpc_cidr, strict=False)
    return tuple(sorted(f"{a}/32" for a in host_addresses.panel_addresses()
                        if isinstance(a, ipaddress.IPv4Address) and a in network))


def firewall_spec(cluster: Cluster, vpc_cidr: str) -> FirewallSpec:
    return FirewallSpec(
        vpc_cidr=vpc_cidr, panel_cidrs=panel_ssh_sources(vpc_cidr),
        internet_api=cluster.slb_address_type == SlbAddressType.INTERNET,
        api_allowed_cidrs=tuple(cluster.api_allowed_cidrs or ()),
        clb=cluster.load_balancer_kind != LoadBalancerKind.NLB,
        # Embedded etcd's peers talk on 2379-2380 between the servers (K3s networking
        # requirements): without the rule, InnerAccessPolicy Drop keeps etcd from forming.
        embedded_etcd=cluster.datastore_kind == DatastoreKind.ETCD)


def wanted_rules(cluster: Cluster, vpc_cidr: str, group_id: str) -> dict[IngressRule, str]:
    """The group's rules as the adapter writes them, each with its description."""
    try:
        rules = node_rules(firewall_spec(cluster, vpc_cidr))
    except FirewallError as exc:
        raise PermanentError(
            f"{exc}. Set PANEL_SSH_SOURCE_CIDRS to the address the hosts see the panel's SSH "
            "come from (for a panel outside the VPC: its public address, /32), then press "
            f"Retry. The rules follow K3s's networking requirements ({REQUIREMENTS_URL})."
        ) from None
    return {IngressRule(rule.source_cidr if not rule.from_group else "", rule.port_range,
                        "Accept", 1, rule.protocol, group_id if rule.from_group else ""):
            rule.why for rule in rules}


def _vpc_cidr(api: AliyunCloud, cluster: Cluster) -> str:
    vpc = next((v for v in api.describe_vpcs() if v.vpc_id == cluster.vpc_id), None)
    if vpc is None or not vpc.cidr:
        raise PermanentError(f"VPC {cluster.vpc_id} is not in region {cluster.region} any "
                             "more (DescribeVpcs); check the VPC console.")
    return vpc.cidr


def group_purchase(api: AliyunCloud, cluster: Cluster) -> purchase.Purchase:
    """Found by the cluster's tag and the group's name, or CreateSecurityGroup in its VPC."""
    def find(key: str, value: str) -> list[str]:
        return [g.security_group_id for g in api.security_groups_by_tag(key, value)
                if is_node_group(cluster, g.name)]

    def create(token: str) -> purchase.Bought:
        name = security_group_name(cluster)
        return purchase.Bought(api.create_security_group(
            name=name, vpc_id=cluster.vpc_id, client_token=token, tags=cloud.tags(cluster),
            description=f"Nodes of k3s cluster {cluster.name}: what K3s needs "
                        f"({REQUIREMENTS_URL})"[:256]), {"name": name})

    return purchase.Purchase("security group", "CreateSecurityGroup", find, create)


def _rules_token(client_token: str, rules: list[IngressRule]) -> str:
    digest = hashlib.sha256(repr(sorted(map(repr, rules))).encode()).hexdigest()[:20]
    return f"{client_token[:40]}-r{digest}"


def _describe(rule: IngressRule) -> str:
    """"UDP 8472 from group sg-…", "TCP 2379-2380 from 10.0.0.0/8"."""
    low, _, high = rule.port_range.partition("/")
    ports = low if low == high else f"{low}-{high}"
    source = f"group {rule.source_group_id}" if rule.source_group_id else rule.source_cidr
    return f"{rule.protocol} {ports} from {source}"


@step_handler("ecs.security_group")
def security_group(ctx: StepContext) -> Outcome:
    """The nodes' security group, with exactly K3s's rules (clusters/k3s/firewall.py)."""
    cluster = ctx.cluster
    api = cloud.cloud_for(cluster)
    vpc_cidr = _vpc_cidr(api, cluster)
    wanted_rules(cluster, vpc_cidr, "sg-check")  # refuse before buying anything
    resource = cloud.intend(ctx, ECS_SECURITY_GROUP_KIND)
    if purchase.ensure_bought(ctx, resource, group_purchase(api, cluster),
                              state=ResourceState.PRESENT) is purchase.Acquired.CREATED:
        ctx.say(f"Created security group {resource.provider_id} "
                f"({security_group_name(cluster)}) in {cluster.vpc_id}")
    group = resource.provider_id
    if not resource.attributes.get("inner_access_dropped"):
        # A basic group lets its members reach each other on every port by default: drop
        # that, so the rules below are the only way in, between nodes too.
        api.drop_inner_access(group, client_token=f"{resource.client_token[:56]}-inner")
        cloud.record(resource, inner_access_dropped=True)
        ctx.say(f"{group}: members reach each other only through its rules "
                "(InnerAccessPolicy Drop)")
    wanted = wanted_rules(cluster, vpc_cidr, group)
    current = api.ingress_rules(group)
    if current is None:
        raise PermanentError(f"Security group {group} disappeared; check the ECS console "
                             "(Security Groups), then press Retry.")
    missing = [rule for rule in wanted if rule not in current]
    if missing:
        token = _rules_token(resource.client_token, missing)
        cloud.record(resource, **{RULES_TOKEN: token})  # intent first, then the call
        api.authorize_ingress(group, missing, client_token=token, descriptions=wanted)
        for rule in missing:
            ctx.say(f"Allowed into {group}: {_describe(rule)} ({wanted[rule]})")
    extra = [rule for rule in current if rule not in wanted]
    for rule in extra:
        ctx.say(f"Note: {group} also holds a rule the panel did not write: "
                f"{rule.policy} {_describe(rule)}; it is left as it is")
    ctx.say(f"Security group {group}: {len(wanted)} rules, as K3s needs "
            f"({REQUIREMENTS_URL}); every other inbound source is refused")
    return Done({"security_group_id": group, "rules": [_describe(r) for r in wanted]})


@step_handler("ecs.delete_security_group")
def delete_security_group(ctx: StepContext) -> Outcome:
    """Delete the nodes' group the panel bought, once no instance is in it any more (ECS
    answers DependencyViolation while one is: the step waits for the instances to go)."""
    cluster = ctx.cluster
    rows = list(cluster.resources.filter(kind=ECS_SECURITY_GROUP_KIND,
                                         deleted_at__isnull=True))
    if not rows:
        return Skip("the panel bought no security group for this cluster's nodes")
    if ctx.args.get("keep_instances"):
        return Skip("kept with the instances: they are still in it")
    api = cloud.cloud_for(cluster)
    ids = {row.provider_id for row in rows if row.provider_id}
    ids |= {g.security_group_id for g in api.security_groups_by_tag(cloud.TAG_KEY,
                                                                     str(cluster.code))
            if is_node_group(cluster, g.name)}
    for group_id in sorted(ids):
        try:
            deleted = api.delete_security_group(group_id)
        except StepError as exc:
            if exc.code != "DependencyViolation":
                raise
            ctx.memo.setdefault("deadline", time.time() + DELETE_TIMEOUT_SECONDS)
            if time.time() > ctx.memo["deadline"]:
                return Fail(f"Security group {group_id} is still in use ({exc.code}, "
                            f"RequestId {exc.request_id}) after "
                            f"{DELETE_TIMEOUT_SECONDS // 60} minutes: remove what still uses "
                            "it in the ECS console, then press Retry.")
            return Wait(cloud.poll_seconds(), f"{group_id} still has members")
        ctx.say(f"Deleted security group {group_id}" if deleted
                else f"Security group {group_id} was already gone")
    for row in rows:
        cloud.record(row, state=ResourceState.DELETED)
    return Done({"deleted": sorted(ids)})


# --- the key pair and the instances the panel buys ----------------------------------------------

NODE_TAG = "k3s-panel-node"      # the slot, on the instance: told apart when adopted by tag
RUNNING_TIMEOUT_SECONDS = 15 * 60


def key_pair_name(cluster: Cluster) -> str:
    """ECS key pair names: 2-128 characters, a letter first, then letters, digits, . _ -"""
    return f"k3s-{cluster.name}-{str(cluster.code)[:8]}"[:128]


def md5_fingerprint(public_key: str) -> str:
    """How ECS fingerprints an imported key: MD5 of the key blob (RFC 4716), colon hex."""
    blob = base64.b64decode(public_key.split()[1])
    return ":".join(f"{b:02x}" for b in hashlib.md5(blob, usedforsecurity=False).digest())


def generate_key_pair(comment: str) -> tuple[str, str]:
    """A new ECDSA P-256 pair: (OpenSSH private key, "ecdsa-sha2-nistp256 AAAA… comment").

    Not Ed25519: ImportKeyPair accepts "rsa, dsa, ssh-rsa, ssh-dss, ecdsa" public keys only
    (Alibaba Cloud, ImportKeyPair, help.aliyun.com/document_detail/51774; the emulator
    refuses an Ed25519 key with InvalidPublicKeyBody.Malformed, as ECS does). P-256 is the
    smallest accepted key that is not RSA, and OpenSSH and paramiko read it."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return private, f"{public} {comment}"


@step_handler("ecs.keypair")
def keypair(ctx: StepContext) -> Outcome:
    """The SSH key pair of the instances: the user's existing one (checked to exist), or one
    the panel generates (ECDSA P-256, see generate_key_pair; the private half stored
    encrypted before anything is sent)
    and imports (ImportKeyPair of the public half). Found again by name: a pair of that name
    with another fingerprint is not ours and is never used."""
    cluster = ctx.cluster
    order = cluster.instance_order or {}
    if not order:
        return Skip("this cluster runs on hosts its owner already has")
    api = cloud.cloud_for(cluster)
    chosen = str(order.get("key_pair") or "")
    if chosen:
        listed = api.key_pair_fingerprint(chosen)
        if listed is None:
            raise PermanentError(f"Key pair {chosen} does not exist in {cluster.region} "
                                 "(DescribeKeyPairs); choose another or let the panel make "
                                 "one, then press Retry.")
        # The pasted private key was checked against the pair in the wizard; a pair
        # replaced since under the same name would lock the panel out of every instance.
        if not cluster.generated_ssh_key:
            raise PermanentError(f"The panel holds no private key for key pair {chosen}: "
                                 "create the cluster again and paste it.")
        held = ssh.md5_fingerprint(ssh.load_private_key(cluster.generated_ssh_key))
        if not ssh.same_fingerprint(held, listed):
            raise PermanentError(
                f"Key pair {chosen} now has fingerprint {listed} (DescribeKeyPairs), not "
                f"{held} of the private key the panel holds: it was replaced. Nothing was "
                "bought; restore the pair in the ECS console (Key Pairs), then press Retry.")
        ctx.say(f"Instances will accept the key of the existing key pair {chosen}")
        return Done({"key_pair": chosen, "generated": False})
    if not cluster.generated_ssh_key:
        private, public = generate_key_pair(f"k3s-panel-{cluster.name}")
        cluster.generated_ssh_key, cluster.generated_ssh_public_key = private, public
        cluster.save(update_fields=["generated_ssh_key", "generated_ssh_public_key"])
        ctx.say("Generated an ECDSA P-256 key pair; its private half is stored encrypted")
    resource = cloud.intend(ctx, KEY_PAIR_KIND)
    name = key_pair_name(cluster)
    wanted = md5_fingerprint(cluster.generated_ssh_public_key)
    found = api.key_pair_fingerprint(name)
    if found is None:
        cloud.record(resource, provider_id=name, fingerprint=wanted)  # intent, then the call
        found = api.import_key_pair(name, cluster.generated_ssh_public_key)
        ctx.say(f"Imported key pair {name} (fingerprint {found})")
    if found != wanted:
        raise PermanentError(
            f"Key pair {name} exists with fingerprint {found}, not this cluster's {wanted}: "
            "it is not the panel's. Delete or rename it in the ECS console (Key Pairs), "
            "then press Retry.")
    cloud.record(resource, provider_id=name, state=ResourceState.PRESENT, fingerprint=found)
    return Done({"key_pair": name, "generated": True, "fingerprint": found})


def _suggestion(api: AliyunCloud, cluster: Cluster, instance_type: str) -> str:
    """What the zone sells now with the same cores and memory (or anything it sells)."""
    offers = api.available_instance_types(cluster.zone)
    chosen = next((o for o in offers if o.instance_type == instance_type), None)
    buyable = [o for o in offers if o.buyable and o.instance_type != instance_type]
    alike = [o for o in buyable if chosen and (o.cores, o.memory_gib) ==
             (chosen.cores, chosen.memory_gib)]
    picks = (alike or buyable)[:5]
    if not picks:
        return f"zone {cluster.zone} sells no instance type now: choose another zone"
    return (f"zone {cluster.zone} sells now (DescribeAvailableResource): "
            + ", ".join(f"{o.instance_type} ({o.cores} vCPU, {o.memory_gib:g} GiB)"
                        for o in picks))


def _order(cluster: Cluster, group_id: str, key_pair: str, slot: str, amount: int
           ) -> InstanceOrder:
    order = cluster.instance_order
    return InstanceOrder(
        image_id=str(order["image_id"]), instance_type=str(order["instance_type"]),
        vswitch_id=cluster.vswitch_id, security_group_id=group_id, amount=amount,
        name=f"k3s-{cluster.name}-{slot}"[:128], key_pair_name=key_pair,
        system_disk_category=str(order.get("system_disk_category") or "cloud_essd"),
        system_disk_gb=int(order.get("system_disk_gb") or 40),
        public_bandwidth_mbps=int(order.get("public_bandwidth_mbps") or 0))


def _refused(api: AliyunCloud, cluster: Cluster, error: StepError, count: int
             ) -> PermanentError:
    said = ", ".join(p for p in (error.code and f"code {error.code}",
                                 error.request_id and f"RequestId {error.request_id}") if p)
    instance_type = str(cluster.instance_order.get("instance_type", ""))
    if error.code in ("OperationDenied.NoStock", "Zone.NotOnSale") or "NoStock" in error.code:
        return PermanentError(
            f"ECS has no stock of {instance_type} in {cluster.zone} ({said}); nothing was "
            f"bought. {_suggestion(api, cluster, instance_type)}. Choose one, then press "
            "Retry.", code=error.code, request_id=error.request_id)
    if error.code.startswith("QuotaExceed"):
        return PermanentError(
            f"The account's ECS quota in {cluster.region} does not allow "
            f"{count} more instances ({said}); nothing was "
            "bought. Raise the quota (Quota Center) or release instances, then press Retry.",
            code=error.code, request_id=error.request_id)
    return PermanentError(f"RunInstances was refused ({said}): {error}", code=error.code,
                          request_id=error.request_id)


def _instance_purchase(api: AliyunCloud, cluster: Cluster, slot: str, group_id: str,
                       key_pair: str) -> purchase.Purchase:
    def find(key: str, value: str) -> list[str]:
        return [i.instance_id for i in api.find_instances_by_tag(key, value)
                if dict(i.tags).get(NODE_TAG) == slot]

    def create(token: str) -> purchase.Bought:
        ids = api.run_instances(_order(cluster, group_id, key_pair, slot, 1),
                                client_token=token, tags={**cloud.tags(cluster), NODE_TAG: slot})
        if len(ids) != 1:
            raise PermanentError(f"RunInstances answered {len(ids)} instances for one: {ids}")
        return purchase.Bought(ids[0], {"slot": slot})

    return purchase.Purchase("ECS instance", "RunInstances", find, create)


@step_handler("ecs.check_order")
def check_order(ctx: StepContext) -> Outcome:
    """A DryRun of the whole order (RunInstances with DryRun: Alibaba checks the request, the
    zone's stock and the account's quota, and buys nothing), first in the plan: a zone sold
    out of the type, or a quota too small, fails here with Alibaba's code and RequestId and
    what the zone sells instead, before anything is bought (the key pair and the security
    group it needs cost nothing)."""
    cluster = ctx.cluster
    order = cluster.instance_order or {}
    if not order:
        return Skip("this cluster runs on hosts its owner already has")
    api = cloud.cloud_for(cluster)
    slots = [slot for slot, _ in run_slots(order, ctx.args)
             if not _recorded(cluster, INSTANCE_KIND + slot)]
    if not slots:
        return Skip("every instance of the order is bought already")
    group, key_pair = _group_and_key_pair(cluster)
    probe = _order(cluster, group, key_pair, "check", len(slots))
    try:
        api.run_instances(probe, client_token=f"dry-{cloud.client_token(cluster, 'ecs')}"[:64],
                          tags=cloud.tags(cluster), dry_run=True)
    except TransientError:
        raise  # a lost answer or throttling: the engine retries the DryRun (it buys nothing)
    except StepError as error:
        if error.code != "DryRunOperation":
            raise _refused(api, cluster, error, len(slots)) from None
    ctx.say(f"DryRun of {len(slots)} x {probe.instance_type} in {cluster.zone}: the "
            "request, the zone's stock and the quota allow the whole order")
    return Done({"instances": len(slots), "instance_type": probe.instance_type})


@step_handler("ecs.run_instances")
def run_instances(ctx: StepContext) -> Outcome:
    """Buy the order's instances, one RunInstances per node (each its own ledger row and
    ClientToken, tagged with its slot: adopted by tag after a lost answer, never bought
    twice); a stock or quota refusal names Alibaba's code, RequestId and what the zone sells
    instead. Then wait for Running and give each instance its Node (root, the generated
    key; the host key pinned on first contact)."""
    cluster = ctx.cluster
    order = cluster.instance_order or {}
    if not order:
        return Skip("this cluster runs on hosts its owner already has")
    api = cloud.cloud_for(cluster)
    slots = run_slots(order, ctx.args)
    group, key_pair = _group_and_key_pair(cluster)
    for slot, _ in slots:
        resource = cloud.intend(ctx, INSTANCE_KIND + slot)
        try:
            acquired = purchase.ensure_bought(
                ctx, resource, _instance_purchase(api, cluster, slot, group, key_pair),
                state=ResourceState.PRESENT)
        except StepError as error:
            if error.code and (error.code.startswith("QuotaExceed") or "NoStock" in error.code):
                raise _refused(api, cluster, error, len(slots)) from None
            raise
        if acquired is purchase.Acquired.CREATED:
            ctx.say(f"Bought ECS instance {resource.provider_id} ({slot}, "
                    f"{order['instance_type']})")
    ids = {slot: _recorded(cluster, INSTANCE_KIND + slot) for slot, _ in slots}
    found = {i.instance_id: i for i in api.describe_instances_by_ids(ids.values())}
    pending = [f"{slot} {iid} ({found[iid].status if iid in found else 'not listed yet'})"
               for slot, iid in ids.items() if iid not in found or found[iid].status !=
               "Running" or not found[iid].private_ip]
    if pending:
        ctx.memo.setdefault("deadline", time.time() + RUNNING_TIMEOUT_SECONDS)
        if time.time() > ctx.memo["deadline"]:
            return Fail(f"Instances not Running after {RUNNING_TIMEOUT_SECONDS // 60} "
                        f"minutes: {', '.join(pending)}; check the ECS console, then Retry.")
        return Wait(cloud.poll_seconds(), "waiting for Running: " + ", ".join(pending))
    nodes = _nodes_for(cluster, slots, ids, found)
    ctx.say("Running: " + ", ".join(f"{slot} {ids[slot]} at {found[ids[slot]].private_ip}"
                                   for slot, _ in slots))
    return Done({"instances": ids, "nodes": nodes})


def _group_and_key_pair(cluster: Cluster) -> tuple[str, str]:
    group = _recorded(cluster, ECS_SECURITY_GROUP_KIND)
    key_pair = str(cluster.instance_order.get("key_pair") or "") or _recorded(cluster,
                                                                              KEY_PAIR_KIND)
    if not group or not key_pair:
        raise PermanentError("The security group and the key pair come first (steps "
                             "ecs.security_group and ecs.keypair); press Retry.")
    return group, key_pair


def _recorded(cluster: Cluster, kind: str) -> str:
    row = cluster.resources.filter(kind=kind, deleted_at__isnull=True).first()
    return row.provider_id if row else ""


def _nodes_for(cluster: Cluster, slots: list[tuple[str, str]], ids: dict[str, str],
               found: dict[str, Any]) -> list[int]:
    """A Node per bought instance (found again by instance id on a re-run): SSH as root with
    the generated key; no host key yet, so the first contact pins it."""
    made = []
    for slot, role in slots:
        instance = found[ids[slot]]
        node = cluster.nodes.filter(ecs_instance_id=instance.instance_id).first()
        if node is None:
            node = Node.objects.create(
                cluster=cluster, role=role, name=instance.hostname or instance.name,
                private_ip=instance.private_ip, ssh_user="root",
                ssh_private_key=cluster.generated_ssh_key, ecs_instance_id=instance.instance_id)
        made.append(node.pk)
    return made


@step_handler("ecs.delete_instances")
def delete_instances(ctx: StepContext) -> Outcome:
    """Release the instances the panel bought (its ledger and its tag), never another; or
    keep them when the owner chose to ("keep the instances")."""
    cluster = ctx.cluster
    rows = list(cluster.resources.filter(kind__startswith=INSTANCE_KIND,
                                         deleted_at__isnull=True))
    if not rows:
        return Skip("the panel bought no instance for this cluster")
    if ctx.args.get("keep_instances") or (cluster.instance_order or {}).get("keep_instances"):
        for row in rows:
            cloud.record(row, state=ResourceState.DELETED, kept=True)
        return Skip("the owner chose to keep the instances: they stay, and stay billed")
    api = cloud.cloud_for(cluster)
    tagged = {i.instance_id for i in api.find_instances_by_tag(cloud.TAG_KEY, str(cluster.code))
              if dict(i.tags).get(NODE_TAG)}
    ids = sorted({row.provider_id for row in rows if row.provider_id} | tagged)
    listed = api.describe_instances_by_ids(ids)
    # ECS releases a Running (Force) or Stopped instance; one still Pending, Starting or
    # Stopping answers IncorrectInstanceStatus, so it is waited for.
    settling = [f"{i.instance_id} ({i.status})" for i in listed
                if i.status not in ("Running", "Stopped")]
    ready = [i.instance_id for i in listed if i.status in ("Running", "Stopped")]
    if ready:
        digest = hashlib.sha256(",".join(sorted(ready)).encode()).hexdigest()[:16]
        api.delete_instances(ready, client_token=f"{cloud.client_token(cluster, 'ecs')[:44]}"
                             f"-del-{digest}")
        ctx.say(f"Releasing {', '.join(ready)}")
    if listed:
        ctx.memo.setdefault("deadline", time.time() + DELETE_TIMEOUT_SECONDS)
        if time.time() > ctx.memo["deadline"]:
            return Fail(f"Instances still not released after {DELETE_TIMEOUT_SECONDS // 60} "
                        f"minutes: {', '.join(settling or ready)}; check the ECS console, "
                        "then press Retry.")
        return Wait(cloud.poll_seconds(), "instances being released: "
                    + ", ".join(settling or ready))
    for row in rows:
        cloud.record(row, state=ResourceState.DELETED)
    ctx.say(f"Released {', '.join(ids)}")
    return Done({"deleted": ids})


@step_handler("ecs.delete_keypair")
def delete_keypair(ctx: StepContext) -> Outcome:
    """Delete the key pair the panel imported (never the user's own)."""
    rows = list(ctx.cluster.resources.filter(kind=KEY_PAIR_KIND, deleted_at__isnull=True))
    if not rows:
        return Skip("the panel imported no key pair for this cluster")
    if ctx.args.get("keep_instances"):
        return Skip("kept with the instances, which hold its public key")
    api = cloud.cloud_for(ctx.cluster)
    names = [row.provider_id for row in rows if row.provider_id]
    if names:
        api.delete_key_pairs(names)
        ctx.say(f"Deleted key pair {', '.join(names)}")
    for row in rows:
        cloud.record(row, state=ResourceState.DELETED)
    return Done({"deleted": names})


# --- the owner's own instances in the nodes' group (an explicit choice) ---------------------

JOIN_KIND = "ecs_join_n"  # + the node's id: one of the owner's instances the panel joined
# JoinSecurityGroup's refusals the owner must act on (its error table,
# help.aliyun.com/zh/ecs/api-joinsecuritygroup), each said in the owner's terms.
JOIN_REFUSALS = {
    "InvalidOperation.MultiGroupType": "Its groups are of the other type (an instance's "
                                       "groups must be all basic or all advanced)",
    "InvalidInstanceId.Mismatch": "It is not in the cluster's VPC (a security group holds "
                                  "instances of its own VPC only)",
    "InstanceSecurityGroupLimitExceeded": "It is in five security groups already, the most "
                                          "an instance may be in",
}


@step_handler("ecs.join_group")
def join_group(ctx: StepContext) -> Outcome:
    """Add the owner's own instances (picked or typed hosts, found by the preflight) to the
    nodes' security group, when the owner chose to: JoinSecurityGroup per instance, a ledger
    row recorded first (the API has no ClientToken: membership is read before the call, so
    a re-run joins nothing twice). An instance whose groups are of the other type (basic
    and advanced do not mix) fails with Alibaba's code and RequestId, and what to do."""
    cluster = ctx.cluster
    if not cluster.join_security_group or cluster.instance_order:
        return Skip("the owner's instances keep only their own security groups")
    group = _recorded(cluster, ECS_SECURITY_GROUP_KIND)
    if not group:
        raise PermanentError("The nodes' security group comes first (step "
                             "ecs.security_group); press Retry.")
    api = cloud.cloud_for(cluster)
    nodes = [n for n in cluster.nodes.present().order_by("pk") if n.ecs_instance_id]
    listed = {i.instance_id: i for i in api.describe_instances_by_ids(
        [n.ecs_instance_id for n in nodes])}
    joined = []
    for node in nodes:
        instance = listed.get(node.ecs_instance_id)
        if instance is None:
            raise PermanentError(f"Instance {node.ecs_instance_id} ({node.private_ip}) is not "
                                 "listed any more (DescribeInstances); check the ECS console.")
        row = cloud.intend(ctx, f"{JOIN_KIND}{node.pk}")
        cloud.record(row, provider_id=node.ecs_instance_id, group=group)  # intent first
        if group not in instance.security_group_ids:
            try:
                api.join_security_group(node.ecs_instance_id, group)
            except StepError as error:
                why = JOIN_REFUSALS.get(error.code or "")
                if why is None:
                    raise
                cloud.record(row, state=ResourceState.DELETED)
                raise PermanentError(
                    f"{node.ecs_instance_id} ({node.private_ip}) cannot join {group} "
                    f"(code {error.code}, RequestId {error.request_id}): {error}. {why}. "
                    "Leave the choice off and open K3s's ports in its own groups "
                    f"({REQUIREMENTS_URL}), then press Retry.",
                    code=error.code, request_id=error.request_id) from None
            joined.append(f"{node.ecs_instance_id} ({node.private_ip})")
        cloud.record(row, state=ResourceState.PRESENT)
    if joined:
        ctx.say(f"Added to {group}: " + ", ".join(joined))
    return Done({"security_group_id": group,
                 "instances": [n.ecs_instance_id for n in nodes]})


@step_handler("ecs.leave_group")
def leave_group(ctx: StepContext) -> Outcome:
    """The owner's instances leave the nodes' group they were added to (before it is
    deleted); the instances themselves are theirs and stay."""
    rows = list(ctx.cluster.resources.filter(kind__startswith=JOIN_KIND,
                                             deleted_at__isnull=True))
    if not rows:
        return Skip("no instance of the owner was added to the nodes' group")
    api = cloud.cloud_for(ctx.cluster)
    left = []
    for row in rows:
        group = str(row.attributes.get("group") or "")
        if row.provider_id and group:
            try:
                api.leave_security_group(row.provider_id, group)
            except StepError as error:
                # The instance's last group cannot be left: it was the only one (the owner
                # removed the others since); say so, the group's deletion will wait for it.
                # (LeaveSecurityGroup's error table: 403 InstanceLastSecurityGroup.)
                if error.code != "InstanceLastSecurityGroup":
                    raise
                raise PermanentError(
                    f"{row.provider_id} is in no other security group than {group} "
                    f"(code {error.code}, RequestId {error.request_id}): add it to one of "
                    "yours in the ECS console, then press Retry.",
                    code=error.code, request_id=error.request_id) from None
            left.append(row.provider_id)
        cloud.record(row, state=ResourceState.DELETED)
    ctx.say(f"Left the nodes' group: {', '.join(left)}" if left else "Nothing to leave")
    return Done({"left": left})
