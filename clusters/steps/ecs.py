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
import time
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from clusters.adapters import cloud, host_addresses, purchase, ssh
from clusters.adapters.aliyun import AliyunCloud, IngressRule, InstanceOrder
from clusters.adapters.instance_order import (
    ECS_SECURITY_GROUP_KIND,
    INSTANCE_KIND,
    JOIN_KIND,
    KEY_PAIR_KIND,
    bought_instance_ids,
    listed_node_ids,
    run_slots,
)
from clusters.core.errors import PermanentError, StepError, TransientError
from clusters.engine.outcomes import Done, Fail, Outcome, Skip, Wait
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.k3s.firewall import (
    ALLOWLIST_WHY,
    API_PORT,
    OLD_ALLOWLIST_WHY,
    PUBLIC_ON_INTRANET,
    REQUIREMENTS_URL,
    FirewallError,
    FirewallSpec,
    allowlist_skipped,
    node_rules,
    panel_inside_vpc,
)
from clusters.models import (
    CloudResource,
    Cluster,
    DatastoreKind,
    LoadBalancerKind,
    Node,
    ResourceState,
    SlbAddressType,
)

# The row's attribute holding the ClientToken of the rules last sent (a key, not a secret).
RULES_TOKEN = "rules_token"  # noqa: S105
# The row's attribute listing the allow-list sources whose 6443 rules this step wrote (the
# only rules an allow-list change may revoke).
ALLOWLIST_SOURCES = "allowlist_sources"
DELETE_TIMEOUT_SECONDS = 15 * 60


def security_group_name(cluster: Cluster) -> str:
    return f"k3s-{cluster.name}-nodes-{str(cluster.code)[:8]}"[:128]


def is_node_group(cluster: Cluster, name: str) -> bool:
    """Whether a tagged group of this cluster is its nodes' group (not the NLB's)."""
    return name == security_group_name(cluster)


def panel_ssh_sources(vpc_cidr: str) -> tuple[str, ...]:
    """Where the hosts see the panel's SSH come from (host_addresses.panel_ssh_sources: the
    same rule the wizard asks whether bought instances need a public address by)."""
    return host_addresses.panel_ssh_sources(vpc_cidr)


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


def _allowlist_sources(wanted: dict[IngressRule, str]) -> list[str]:
    """The CIDRs of the wanted rules that come from the API's allow-list (firewall.py)."""
    return [rule.source_cidr for rule, why in wanted.items() if why == ALLOWLIST_WHY]


def _is_api_cidr_rule(rule: IngressRule) -> bool:
    return (rule.port_range == f"{API_PORT}/{API_PORT}" and rule.policy == "Accept"
            and rule.protocol == "TCP" and not rule.source_group_id and bool(rule.source_cidr))


def _allowlist_rules_before_the_ledger(ctx: StepContext, current: list[IngressRule]) -> list[str]:
    """The allow-list sources of a group made before the row recorded ALLOWLIST_SOURCES: the
    TCP 6443 Accept rules from a CIDR described as the panel's allow-list rules (either
    wording), or from a source of the allow-list this change replaces (the run's "from").
    Without them a source removed from the list would keep 6443: its old rule equals a
    wanted one (the description is not part of a rule), so it was never "written" here."""
    before = {str(c) for c in (ctx.run.params or {}).get("from") or []}
    return list(dict.fromkeys(
        rule.source_cidr for rule in current if _is_api_cidr_rule(rule)
        and (rule.description in (ALLOWLIST_WHY, OLD_ALLOWLIST_WHY) or rule.source_cidr in before)))


def _revoke_stale_allowlist(ctx: StepContext, api: AliyunCloud, resource: CloudResource, *,
                            group: str, wanted: dict[IngressRule, str],
                            current: list[IngressRule], ours: list[str]) -> list[IngressRule]:
    """Revoke the 6443 rules this step wrote (`ours`: the row's ALLOWLIST_SOURCES) for
    allow-list sources no longer listed; a rule the owner added by hand, even on 6443, is
    never touched. Called after the new sources are authorized, so a source listed both
    before and after the change is never dropped, even for a moment."""
    stale = [rule for rule in current if rule not in wanted and rule.source_cidr in ours
             and _is_api_cidr_rule(rule)]
    if stale:
        api.revoke_ingress(group, stale)
        ctx.say(f"Revoked from {group}: " + ", ".join(_describe(r) for r in stale)
                + " (no longer in the API's allow-list)")
    allowed = _allowlist_sources(wanted)
    kept = [cidr for cidr in ours if cidr in allowed]
    if ALLOWLIST_SOURCES not in resource.attributes or \
            kept != list(resource.attributes.get(ALLOWLIST_SOURCES) or []):
        cloud.record(resource, allowlist_sources=kept)  # ALLOWLIST_SOURCES
    return stale


@step_handler("ecs.security_group")
def security_group(ctx: StepContext) -> Outcome:
    """The nodes' security group, with exactly K3s's rules (clusters/k3s/firewall.py).

    Also the step of an API allow-list change (operations/allowlist.py): a CLB keeps the
    client's address, so each listed source outside the VPC needs TCP 6443 here too; the
    new ones are authorized first, then the ones this step wrote for sources no longer
    listed are revoked, and nothing else."""
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
    for cidr, why in allowlist_skipped(firewall_spec(cluster, vpc_cidr)):
        ctx.say(f"Allow-list source {cidr}: no TCP {API_PORT} rule in {group}: " + (
            "a public block cannot reach an intranet API (it would reach the nodes past the "
            "CLB)" if why == PUBLIC_ON_INTRANET else
            "a private block never comes through an Internet-facing CLB"))
    current = api.ingress_rules(group)
    if current is None:
        raise PermanentError(f"Security group {group} disappeared; check the ECS console "
                             "(Security Groups), then press Retry.")
    missing = [rule for rule in wanted if rule not in current]
    # The allow-list sources whose rules this step wrote, with the ones it writes now.
    written = resource.attributes.get(ALLOWLIST_SOURCES)
    if written is None:
        written = _allowlist_rules_before_the_ledger(ctx, current)
    ours = list(dict.fromkeys([*written,
                               *(r.source_cidr for r in missing if wanted[r] == ALLOWLIST_WHY)]))
    if missing:
        token = _rules_token(resource.client_token, missing)
        # Intent first, then the call (the rules' token, the sources the group may now hold).
        cloud.record(resource, **{RULES_TOKEN: token}, allowlist_sources=ours)
        api.authorize_ingress(group, missing, client_token=token, descriptions=wanted)
        for rule in missing:
            ctx.say(f"Allowed into {group}: {_describe(rule)} ({wanted[rule]})")
    stale = _revoke_stale_allowlist(ctx, api, resource, group=group, wanted=wanted,
                                    current=current, ours=ours)
    extra = [rule for rule in current if rule not in wanted and rule not in stale]
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
    # An instance the owner kept when its node was removed (delete_instances with
    # keep_instances) is still in the group: it stays with it, as with "keep the instances".
    kept = [row.provider_id for row in cluster.resources.filter(kind__startswith=INSTANCE_KIND)
            if row.attributes.get("kept") and row.provider_id]
    holding = sorted(i.instance_id for i in api.describe_instances_by_ids(kept)
                     if ids & set(i.security_group_ids)) if kept else []
    if holding:
        return Skip(f"kept with instance {', '.join(holding)}, still in it (the owner kept "
                    "it when its node was removed)")
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
    """The name of the pair the panel imports: the cluster's whole code (32 hex digits)
    first, so no other cluster's, nor any person's "k3s-<name>", shares it, and cutting to
    ECS's 128 characters shortens only the cluster's name (ECS key pair names: 2-128
    characters, a letter first, then letters, digits, . _ - :; V2 ImportKeyPairRequest)."""
    return f"k3s-{cluster.code.hex}-{cluster.name}"[:128]


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
    # A pair imported before the name held the whole code keeps its recorded name.
    name = (resource.provider_id if resource.state == ResourceState.PRESENT
            and resource.provider_id else key_pair_name(cluster))
    wanted = md5_fingerprint(cluster.generated_ssh_public_key)
    found = api.key_pair_fingerprint(name)
    if found is None:
        # Intent, then the call: the name and the fingerprint of the key the panel sends;
        # destroy deletes the pair of that name only while it still has this fingerprint.
        cloud.record(resource, provider_id=name, fingerprint=wanted)
        try:
            found = api.import_key_pair(name, cluster.generated_ssh_public_key)
        except StepError as error:
            if error.code != "KeyPair.AlreadyExist":
                raise
            # Made between the look and the import: ours (a lost answer) or someone else's.
            found = api.key_pair_fingerprint(name) or ""
            if not ssh.same_fingerprint(found, wanted):
                raise PermanentError(
                    f"ImportKeyPair of {name} was refused: a pair of that name exists"
                    + (f" with fingerprint {found}" if found else "")
                    + f", not this cluster's {wanted}: it is not the panel's, and destroy "
                    "will leave it. Delete or rename it in the ECS console (Key Pairs), then "
                    "press Retry.", code=error.code, request_id=error.request_id) from None
        else:
            ctx.say(f"Imported key pair {name} (fingerprint {found})")
    # However ECS writes it (case, colons): as delete_keypair compares.
    if not ssh.same_fingerprint(found, wanted):
        raise PermanentError(
            f"Key pair {name} exists with fingerprint {found}, not this cluster's {wanted}: "
            "it is not the panel's. Delete or rename it in the ECS console (Key Pairs), "
            "then press Retry.")
    cloud.record(resource, provider_id=name, state=ResourceState.PRESENT, fingerprint=found)
    return Done({"key_pair": name, "generated": True, "fingerprint": found})


# How `_suggestion` ends when the zone sells nothing (the refusal then advises another zone).
_SELLS_NOTHING = "sells no instance type now: choose another zone"


def _suggestion(api: AliyunCloud, cluster: Cluster, instance_type: str) -> str:
    """What the zone sells now with the same cores and memory (or anything it sells)."""
    offers = api.available_instance_types(cluster.zone)
    chosen = next((o for o in offers if o.instance_type == instance_type), None)
    buyable = [o for o in offers if o.buyable and o.instance_type != instance_type]
    alike = [o for o in buyable if chosen and (o.cores, o.memory_gib) ==
             (chosen.cores, chosen.memory_gib)]
    picks = (alike or buyable)[:5]
    if not picks:
        return f"zone {cluster.zone} {_SELLS_NOTHING}"
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


def _refused(api: AliyunCloud, cluster: Cluster, error: StepError, count: int, *,
             bought: list[tuple[str, str]] | None = None,
             missing: list[str] | None = None, adding: bool = False) -> PermanentError:
    """A stock or quota refusal in words that are true of what happened: `bought` are the
    (slot, instance id) this order already holds (earlier slots of the same step, or an
    earlier attempt), kept and billed; `missing` the slots not bought, which Retry buys (the
    step adopts or skips what its ledger holds, so nothing is bought twice). `adding`: an
    add-node run (operations.nodes.add_instances_plan), whose held instances are released
    by removing their nodes (remove_node_plan releases a bought node's instance), not only by
    destroying the cluster.

    Why the advice never says "choose another type": a cluster's instance order is fixed at
    its creation (no view, operation or API changes it) and Add instances buys that order's
    type, so Retry can only buy the same type again; what the zone sells instead is named for
    a new cluster (create) or for a host of that type the owner adds himself (add node)."""
    said = ", ".join(p for p in (error.code and f"code {error.code}",
                                 error.request_id and f"RequestId {error.request_id}") if p)
    instance_type = str(cluster.instance_order.get("instance_type", ""))
    bought, missing = bought or [], missing or []
    held = ", ".join(f"{slot} ({instance_id})" for slot, instance_id in bought)
    wanted = ", ".join(missing)
    if held:
        one = len(bought) == 1
        if adding:
            release = ("removing the node instead releases it" if one
                       else "removing the nodes instead releases them")
        else:
            release = "destroying the cluster instead releases " + ("it" if one else "them")
        outcome = (f"{held} {'was' if one else 'were'} bought and {'is' if one else 'are'} "
                   f"kept (billed from {'its' if one else 'their'} creation); {wanted} "
                   f"{'was' if len(missing) == 1 else 'were'} not bought")
        retry = (f"Retry buys only {wanted}, of the order's type {instance_type}, and keeps "
                 f"what was bought; {release}.")
    else:
        outcome, retry = "nothing was bought", ""
    if error.code in ("OperationDenied.NoStock", "Zone.NotOnSale") or "NoStock" in error.code:
        suggestion = _suggestion(api, cluster, instance_type)
        named = not suggestion.endswith(_SELLS_NOTHING)
        if adding:
            other = (f"Add new instances buys only the cluster's type {instance_type}: press "
                     f"Retry once the zone has stock of {instance_type} again, or add the "
                     "nodes later, or create an instance of another type yourself and add "
                     "it as a host with Add a node.")
        else:
            other = (f"A cluster's instance type is fixed at its creation: press Retry once "
                     f"the zone has stock of {instance_type} again, or destroy this cluster "
                     "and create it again "
                     + ("with one of these types." if named else "in another zone."))
        then = (f"Press Retry once the zone has stock of {instance_type} again. {retry}"
                if held else other)
        return PermanentError(
            f"ECS has no stock of {instance_type} in {cluster.zone} ({said}); {outcome}. "
            f"{suggestion}. {then}",
            code=error.code, request_id=error.request_id)
    if error.code.startswith("QuotaExceed"):
        more = len(missing) if missing else count
        instances = "instance" if more == 1 else "instances"
        return PermanentError(
            f"The account's ECS quota in {cluster.region} does not allow "
            f"{more} more {instances} ({said}); {outcome}. Raise the quota (Quota Center) or "
            f"release instances, then press Retry.{' ' + retry if held else ''}",
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
    if not int(order.get("public_bandwidth_mbps") or 0):
        # Bought so, the nodes could only be reached at their private addresses, which a
        # panel outside the VPC has no route to: SSH would time out at the preflight.
        unreachable = host_addresses.no_route_without_public_address(_vpc_cidr(api, cluster))
        if unreachable:
            raise PermanentError(f"{unreachable} Nothing was bought.")
    group, key_pair = _group_and_key_pair(cluster)
    probe = _order(cluster, group, key_pair, "check", len(slots))
    try:
        api.run_instances(probe, client_token=f"dry-{cloud.client_token(cluster, 'ecs')}"[:64],
                          tags=cloud.tags(cluster), dry_run=True)
    except TransientError:
        raise  # a lost answer or throttling: the engine retries the DryRun (it buys nothing)
    except StepError as error:
        if error.code != "DryRunOperation":
            held = [(slot, _recorded(cluster, INSTANCE_KIND + slot))
                    for slot, _ in run_slots(order, ctx.args)]
            raise _refused(api, cluster, error, len(slots),
                           bought=[(slot, iid) for slot, iid in held if iid],
                           missing=slots, adding=ctx.args.get("slots") is not None) from None
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
                held = [(name, _recorded(cluster, INSTANCE_KIND + name))
                        for name, _role in slots]
                raise _refused(api, cluster, error, len(slots),
                               bought=[(name, iid) for name, iid in held if iid],
                               missing=[name for name, iid in held if not iid],
                               adding=ctx.args.get("slots") is not None) from None
            raise
        if acquired is purchase.Acquired.CREATED:
            ctx.say(f"Bought ECS instance {resource.provider_id} ({slot}, "
                    f"{order['instance_type']})")
    ids = {slot: _recorded(cluster, INSTANCE_KIND + slot) for slot, _ in slots}
    found = {i.instance_id: i for i in api.describe_instances_by_ids(ids.values())}
    # Bandwidth ordered: RunInstances assigns a public address (InternetMaxBandwidthOut > 0,
    # V2 RunInstancesRequest), which DescribeInstances lists; waited for like the private one.
    public = int(order.get("public_bandwidth_mbps") or 0) > 0
    pending = [f"{slot} {iid} ({found[iid].status if iid in found else 'not listed yet'})"
               for slot, iid in ids.items() if iid not in found or found[iid].status !=
               "Running" or not found[iid].private_ip or (public and not found[iid].public_ip)]
    if pending:
        ctx.memo.setdefault("deadline", time.time() + RUNNING_TIMEOUT_SECONDS)
        if time.time() > ctx.memo["deadline"]:
            return Fail(f"Instances not Running after {RUNNING_TIMEOUT_SECONDS // 60} "
                        f"minutes: {', '.join(pending)}; check the ECS console, then Retry.")
        return Wait(cloud.poll_seconds(), "waiting for Running: " + ", ".join(pending))
    private_only = ssh_by_private_ip(cluster, _vpc_cidr(api, cluster))
    nodes = _nodes_for(cluster, slots, ids, found, private_only)
    ctx.say("Running: " + ", ".join(
        f"{slot} {ids[slot]} at {found[ids[slot]].private_ip}"
        + (f" (public {found[ids[slot]].public_ip})" if found[ids[slot]].public_ip else "")
        for slot, _ in slots))
    if public:
        ctx.say("The panel reaches them over SSH at their "
                + ("private addresses: it is inside the VPC, the only place the group admits "
                   "its SSH from" if private_only else
                   "public addresses: it comes from outside the VPC (PANEL_SSH_SOURCE_CIDRS)"))
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


def ssh_by_private_ip(cluster: Cluster, vpc_cidr: str) -> bool:
    """Whether the panel must SSH to the bought instances' private addresses although they
    have public ones: the nodes' group admits SSH only from panel_ssh_sources, and when all
    of those are inside the VPC the panel is there too (firewall.panel_inside_vpc). Otherwise
    (PANEL_SSH_SOURCE_CIDRS names an address outside the VPC: the panel comes from the
    Internet) the public address is the one its SSH can arrive through, when there is one;
    an instance without one is reached at its private address either way."""
    return panel_inside_vpc(panel_ssh_sources(vpc_cidr), vpc_cidr)


def _nodes_for(cluster: Cluster, slots: list[tuple[str, str]], ids: dict[str, str],
               found: dict[str, Any], private_only: bool) -> list[int]:
    """A Node per bought instance (found again by instance id on a re-run): SSH as root with
    the generated key; no host key yet, so the first contact pins it. Its public address
    (DescribeInstances) is recorded, and `private_only` says whether SSH may use it."""
    made = []
    for slot, role in slots:
        instance = found[ids[slot]]
        public_ip = instance.public_ip or None
        node = cluster.nodes.filter(ecs_instance_id=instance.instance_id).first()
        if node is None:
            node = Node.objects.create(
                cluster=cluster, role=role, name=instance.hostname or instance.name,
                private_ip=instance.private_ip, public_ip=public_ip,
                ssh_private_only=private_only, ssh_user="root",
                ssh_private_key=cluster.generated_ssh_key, ecs_instance_id=instance.instance_id)
        elif (node.public_ip, node.ssh_private_only) != (public_ip, private_only) \
                and not node.host_key:
            # Not contacted yet (no pinned key): the address to reach it may still change.
            node.public_ip, node.ssh_private_only = public_ip, private_only
            node.save(update_fields=["public_ip", "ssh_private_only"])
        made.append(node.pk)
    return made


@step_handler("ecs.delete_instances")
def delete_instances(ctx: StepContext) -> Outcome:
    """Release the instances the panel bought (its ledger and its tag), never another; or
    keep them when the owner chose to ("keep the instances"). With `node_id` (a node's
    removal) only that node's instance, when the panel bought it: no tag search, so no
    other instance of the cluster is touched. DeleteInstances carries a ClientToken derived
    from the ids it releases (a re-sent call is the same request); the step waits until
    DescribeInstances no longer lists them."""
    cluster = ctx.cluster
    rows = list(cluster.resources.filter(kind__startswith=INSTANCE_KIND,
                                         deleted_at__isnull=True))
    node = None
    if ctx.args.get("node_id") is not None:
        node = Node.objects.get(pk=ctx.args["node_id"], cluster_id=cluster.pk)
        rows = [row for row in rows if node.ecs_instance_id
                and row.provider_id == node.ecs_instance_id]
        if not rows:
            return Skip(f"{node.private_ip} is not an instance the panel bought (or it was "
                        "released already): it stays")
    if not rows:
        return Skip("the panel bought no instance for this cluster")
    if ctx.args.get("keep_instances") or (
            node is None and (cluster.instance_order or {}).get("keep_instances")):
        group = _recorded(cluster, ECS_SECURITY_GROUP_KIND)
        for row in rows:
            # The row says where the kept instance still is: the nodes' group, its only one
            # (LeaveSecurityGroup refuses an instance's last group).
            cloud.record(row, state=ResourceState.DELETED, kept=True,
                         **({"kept_in_group": group} if group else {}))
        which = ", ".join(row.provider_id for row in rows if row.provider_id)
        if node is not None and group:
            ctx.say(f"Kept instance {which}: it stays in the cluster's security group "
                    f"{group} (its only group: it cannot leave it) until you move it, so "
                    "its rules still admit it to the nodes' VXLAN, kubelet and etcd ports. "
                    "Move it to a group of yours in the ECS console (Security Groups) if it "
                    "must not reach the cluster.", "stderr")
        return Skip(f"the owner chose to keep {'instance ' + which if node else 'the instances'}"
                    ": they stay, and stay billed"
                    + (f"; it stays in the cluster's security group {group} until you move it"
                       if node is not None and group else ""))
    api = cloud.cloud_for(cluster)
    # An instance kept when its node was removed carries the tag still: never released.
    kept = {row.provider_id for row in cluster.resources.filter(kind__startswith=INSTANCE_KIND)
            if row.attributes.get("kept")}
    tagged = set() if node else {
        i.instance_id for i in api.find_instances_by_tag(cloud.TAG_KEY, str(cluster.code))
        if dict(i.tags).get(NODE_TAG) and i.instance_id not in kept}
    ids = sorted({row.provider_id for row in rows if row.provider_id} | tagged)
    listed = api.describe_instances_by_ids(ids)
    # ECS releases a Running (Force) or Stopped instance; one still Pending, Starting or
    # Stopping answers IncorrectInstanceStatus, so it is waited for.
    settling = [f"{i.instance_id} ({i.status})" for i in listed
                if i.status not in ("Running", "Stopped")]
    ready = [i.instance_id for i in listed if i.status in ("Running", "Stopped")]
    if ready:
        digest = hashlib.sha256(",".join(sorted(ready)).encode()).hexdigest()[:16]
        token = f"{cloud.client_token(cluster, 'ecs')[:44]}-del-{digest}"
        for row in rows:
            if row.provider_id in ready:
                cloud.record(row, delete_token=token)  # intent first, then the call
        api.delete_instances(ready, client_token=token)
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
    """Delete the key pair the panel imported, and only while it is that pair: ECS names a
    pair, and DeleteKeyPairs deletes by name, so a pair of the same name someone else made
    (an ImportKeyPair refused with KeyPair.AlreadyExist, or the pair replaced since) would go
    too. The pair is deleted only when DescribeKeyPairs gives it the fingerprint the ledger
    recorded for the key the panel sent; any other is left where it is, and the log says
    so. Never the user's own pair (the ledger has no row for one)."""
    rows = list(ctx.cluster.resources.filter(kind=KEY_PAIR_KIND, deleted_at__isnull=True))
    if not rows:
        return Skip("the panel imported no key pair for this cluster")
    if ctx.args.get("keep_instances"):
        return Skip("kept with the instances, which hold its public key")
    api = cloud.cloud_for(ctx.cluster)
    # An instance kept when its node was removed was bought with this pair and still logs
    # in with it: the pair stays while DescribeInstances lists one, as with "keep the
    # instances" (deleting it would leave the instance's key unknown to ECS).
    kept = [row.provider_id for row in ctx.cluster.resources.filter(
        kind__startswith=INSTANCE_KIND) if row.attributes.get("kept") and row.provider_id]
    holding = sorted(i.instance_id for i in api.describe_instances_by_ids(kept)) if kept else []
    if holding:
        ctx.say(f"Key pair kept: instance {', '.join(holding)}, kept when its node was "
                "removed, was bought with it and still uses it")
        return Skip(f"kept with instance {', '.join(holding)}, which still uses it (the owner "
                    "kept it when its node was removed)")
    deleted, left = [], []
    for row in rows:
        name = row.provider_id
        if not name:
            continue
        listed = api.key_pair_fingerprint(name)
        recorded = str(row.attributes.get("fingerprint") or "")
        if listed is None:
            ctx.say(f"Key pair {name} was already gone")
        elif recorded and ssh.same_fingerprint(listed, recorded):
            api.delete_key_pairs([name])
            deleted.append(name)
            ctx.say(f"Deleted key pair {name} (fingerprint {listed})")
        else:
            left.append(name)
            ctx.say(f"Left key pair {name}: its fingerprint is {listed} (DescribeKeyPairs), "
                    f"not {recorded or 'the one'} of the key the panel imported, so it is "
                    "not the panel's; delete it in the ECS console (Key Pairs) if it is "
                    "yours to delete")
    for row in rows:
        cloud.record(row, state=ResourceState.DELETED)
    return Done({"deleted": deleted, "left": left})


# --- the owner's own instances in the nodes' group (an explicit choice) ---------------------

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
    nodes' security group, when they sit in it: the owner chose to at create, or (args
    `node_ids`, an add-node run) the cluster's nodes are in the group the panel bought, so
    the new hosts must be in it too, or its rules refuse their VXLAN and kubelet traffic.
    JoinSecurityGroup per instance, a ledger row (JOIN_KIND + the node's id) recorded first
    (the API has no ClientToken: membership is read before the call, so a re-run joins
    nothing twice); the row is what destroy and the node's removal leave the group by. An
    instance the panel bought is in the group already and gets no row, nor does any instance
    already a member without a live row of the panel's (one it bought and kept at a node's
    removal, added back by address): only a membership the panel made is ever left. An
    instance whose groups are of the other type (basic and advanced do not mix) fails with
    Alibaba's code and RequestId, and what to do."""
    cluster = ctx.cluster
    new = listed_node_ids(cluster, ctx.args)
    if not cluster.join_security_group and (new is None or not cluster.instance_order):
        return Skip("the owner's instances keep only their own security groups")
    group = _recorded(cluster, ECS_SECURITY_GROUP_KIND)
    if not group:
        raise PermanentError("The nodes' security group comes first (step "
                             "ecs.security_group); press Retry.")
    api = cloud.cloud_for(cluster)
    bought = bought_instance_ids(cluster)
    nodes = [n for n in cluster.nodes.present().order_by("pk")
             if n.ecs_instance_id and n.ecs_instance_id not in bought
             and (new is None or n.pk in new)]
    if not nodes:
        return Skip("every host is an instance the panel bought: in the group already")
    listed = {i.instance_id: i for i in api.describe_instances_by_ids(
        [n.ecs_instance_id for n in nodes])}
    joined, members = [], []
    for node in nodes:
        instance = listed.get(node.ecs_instance_id)
        if instance is None:
            raise PermanentError(f"Instance {node.ecs_instance_id} ({node.private_ip}) is not "
                                 "listed any more (DescribeInstances); check the ECS console.")
        if group in instance.security_group_ids and not _joined_by_panel(cluster, node):
            # A member the panel did not add (an instance it bought, kept when its node was
            # removed, then added back by address; or one the owner put in the group): no
            # row, so no removal or destroy ever takes it out (LeaveSecurityGroup of its
            # only group would fail, and it is not the panel's membership to undo).
            members.append(f"{node.ecs_instance_id} ({node.private_ip})")
            continue
        row = cloud.intend(ctx, f"{JOIN_KIND}{node.pk}")
        row.deleted_at = None  # a node added again reuses its row (node_intake)
        cloud.record(row, provider_id=node.ecs_instance_id, group=group,
                     state=ResourceState.INTENDED)  # intent first
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
    if members:
        ctx.say(f"Already in {group}, not added by the panel (it will not take them out): "
                + ", ".join(members))
    return Done({"security_group_id": group,
                 "instances": [n.ecs_instance_id for n in nodes]})


def _joined_by_panel(cluster: Cluster, node: Node) -> bool:
    """Whether the node's live join row says the panel joined (or was about to join) its
    instance: PRESENT, or INTENDED (recorded before a JoinSecurityGroup whose answer was
    lost: the membership is the panel's). A row deleted by an earlier removal does not
    count: the node was added again since."""
    return cluster.resources.filter(
        kind=f"{JOIN_KIND}{node.pk}", deleted_at__isnull=True, provider_id=node.ecs_instance_id,
        state__in=(ResourceState.INTENDED, ResourceState.PRESENT)).exists()


@step_handler("ecs.leave_group")
def leave_group(ctx: StepContext) -> Outcome:
    """The owner's instances leave the nodes' group they were added to (before it is
    deleted; with `node_id`, only that node's, once it has left the cluster); the instances
    themselves are theirs and stay."""
    joins = ctx.cluster.resources.filter(kind__startswith=JOIN_KIND, deleted_at__isnull=True)
    if ctx.args.get("node_id") is not None:
        joins = joins.filter(kind=f"{JOIN_KIND}{ctx.args['node_id']}")
    rows = list(joins)
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
