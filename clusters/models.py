"""What the panel knows: accounts, clusters, nodes, what it bought, and every run of steps."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from clusters.core import titles
from clusters.fields import EncryptedTextField

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise  # a type only (a dev requirement)


class CredentialKind(models.TextChoices):
    """How the panel gets the keys it signs with (clusters.adapters.aliyun.auth)."""

    ACCESS_KEY = "access_key", _("RAM user AccessKey")
    RAM_ROLE = "ram_role", _("RAM role, assumed with a RAM user's AccessKey")
    ECS_ROLE = "ecs_role", _("RAM role of the ECS instance the panel runs on")
    STS_TOKEN = "sts_token", _("Short-lived STS token")


class CloudAccount(models.Model):
    """Alibaba Cloud credentials a user lends the panel: an AccessKey, a RAM role (assumed
    with an AccessKey that may only assume it, or the ECS instance's role), or an STS token.

    Secrets (the AccessKey secret, a pasted SecurityToken) are encrypted at rest; an
    `ecs_role` account stores no secret at all, only the role's name.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(_("name"), max_length=100)
    credential_kind = models.CharField(_("credential kind"), max_length=16,
                                       choices=CredentialKind.choices,
                                       default=CredentialKind.ACCESS_KEY)
    access_key_id = models.CharField(_("AccessKey ID"), max_length=128, blank=True)
    access_key_secret = EncryptedTextField(_("AccessKey secret"), blank=True)
    role_arn = models.CharField(_("RAM role ARN"), max_length=200, blank=True)
    external_id = models.CharField(_("ExternalId"), max_length=1224, blank=True)
    session_policy = models.TextField(_("session policy"), blank=True)
    ecs_role_name = models.CharField(_("ECS instance RAM role"), max_length=64, blank=True)
    security_token = EncryptedTextField(_("STS SecurityToken"), blank=True)
    token_expires_at = models.DateTimeField(_("STS token expiry"), null=True, blank=True)
    default_region = models.CharField(_("default region"), max_length=64, default="cn-hangzhou")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="cloudaccount_unique_name")
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.identity})"

    @property
    def identity(self) -> str:
        """What the account is, safe to show: the key ID, the role ARN or the role name."""
        if self.credential_kind == CredentialKind.RAM_ROLE:
            return self.role_arn
        if self.credential_kind == CredentialKind.ECS_ROLE:
            return f"ECS role {self.ecs_role_name}"
        return self.access_key_id

    def secret_values(self) -> list[str]:
        """The secrets stored for this account (for log redaction)."""
        return [v for v in (self.access_key_secret, self.security_token) if v]


class ClusterStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PROVISIONING = "provisioning", _("Provisioning")
    READY = "ready", _("Ready")
    FAILED = "failed", _("Failed")
    UPDATING = "updating", _("Updating")
    DESTROYING = "destroying", _("Destroying")
    DESTROYED = "destroyed", _("Destroyed")


class Health(models.TextChoices):
    UNKNOWN = "unknown", _("Unknown")
    HEALTHY = "healthy", _("Healthy")
    DEGRADED = "degraded", _("Degraded")
    DOWN = "down", _("Down")


class InstallSource(models.TextChoices):
    OFFICIAL = "official", _("Official (get.k3s.io)")
    CHINA_MIRROR = "china_mirror", _("China mirror (rancher-mirror.rancher.cn)")
    CUSTOM = "custom", _("Custom base URL")


class DatastoreKind(models.TextChoices):
    RDS = "rds", _("Create an RDS MySQL instance")
    EXTERNAL = "external", _("Bring your own MySQL")
    # K3s's own etcd on the servers (docs.k3s.io/datastore/ha-embedded): no RDS at all.
    ETCD = "etcd", _("Embedded etcd (no RDS)")


class DatastoreEngine(models.TextChoices):
    """Which database engine the datastore runs: RDS MySQL/PostgreSQL, or one's own.
    (Embedded etcd is a DatastoreKind, not an engine: its clusters keep the default, unused.)"""

    MYSQL = "mysql", _("MySQL")
    POSTGRESQL = "postgresql", _("PostgreSQL")


class SlbAddressType(models.TextChoices):
    INTRANET = "intranet", _("Intranet (VPC only)")
    INTERNET = "internet", _("Internet")


class SlbChargeType(models.TextChoices):
    """How the cluster's CLB is billed (CreateLoadBalancer `InstanceChargeType`).

    Why recorded: pay-by-specification cannot be bought since 2025-06-01, but clusters made
    before keep theirs; the page and the ledger must say which one a cluster has.
    """

    PAY_BY_LCU = "PayByCLCU", _("Pay-by-LCU")
    PAY_BY_SPEC = "PayBySpec", _("Pay-by-specification (no longer sold)")


class LoadBalancerKind(models.TextChoices):
    """What fronts the API: a CLB (classic SLB, one zone) or an NLB (one address per zone).

    Why both: CLB pay-by-LCU is what clusters had; NLB spreads the API over two zones (it
    needs a vSwitch in each), so one zone's outage leaves the API reachable.
    """

    CLB = "clb", _("CLB (classic load balancer, pay-by-LCU)")
    NLB = "nlb", _("NLB (network load balancer, two zones)")


class Cluster(models.Model):
    """One K3s HA cluster: its choices, its secrets, and what it became.

    `is_idle`, `can_change_nodes` and `can_destroy` are the one statement of when a person
    may start something; the page's buttons and the operations' refusals both read them.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    cloud_account = models.ForeignKey(
        CloudAccount, on_delete=models.PROTECT, related_name="clusters"
    )
    name = models.CharField(_("name"), max_length=63)
    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    region = models.CharField(_("region"), max_length=64)
    zone = models.CharField(_("zone"), max_length=64)
    vpc_id = models.CharField(_("VPC"), max_length=64)
    vswitch_id = models.CharField(_("vSwitch"), max_length=64)

    k3s_version = models.CharField(_("K3s version"), max_length=64, blank=True)
    k3s_channel = models.CharField(_("K3s channel"), max_length=32, blank=True)
    install_source = models.CharField(
        _("install source"), max_length=16, choices=InstallSource.choices,
        default=InstallSource.OFFICIAL,
    )
    install_base_url = models.URLField(_("custom base URL"), blank=True)
    extra_tls_sans = models.JSONField(_("extra TLS SANs"), default=list, blank=True)
    disable_traefik = models.BooleanField(_("disable Traefik"), default=False)
    taint_servers = models.BooleanField(_("taint servers (no workloads)"), default=False)

    datastore_kind = models.CharField(
        _("datastore"), max_length=16, choices=DatastoreKind.choices, default=DatastoreKind.RDS
    )
    datastore_engine = models.CharField(
        _("datastore engine"), max_length=16, choices=DatastoreEngine.choices,
        default=DatastoreEngine.MYSQL,
    )
    # 8.0 is what RDS recommends today (5.7 is on extended support); the class must be one
    # the zone sells (DescribeAvailableClasses), the wizard always sets both.
    rds_engine_version = models.CharField(_("MySQL version"), max_length=8, default="8.0")
    rds_instance_class = models.CharField(
        _("RDS class"), max_length=64, default="mysql.n2.medium.2c"
    )
    rds_storage_gb = models.PositiveIntegerField(_("RDS storage (GB)"), default=20)
    external_dsn = EncryptedTextField(_("external MySQL DSN"), blank=True)
    # RDS SSL on, K3s and the panel verifying the instance's certificate against the ApsaraDB
    # CA (PANEL_RDS_CA_BUNDLE). The wizard turns it on for new clusters; clusters made
    # before it existed keep False (their servers run without datastore-cafile).
    datastore_tls = models.BooleanField(_("datastore TLS"), default=False)
    # K3s --secrets-encryption: Secrets are stored AES-CBC encrypted in the datastore. The
    # wizard turns it on for new clusters; a running cluster keeps what it was created with
    # (turning it on later needs `k3s secrets-encrypt` on every server, not a config change).
    secrets_encryption = models.BooleanField(_("encrypt Secrets at rest"), default=False)
    datastore_password = EncryptedTextField(_("datastore password"), blank=True)
    # Embedded etcd only: K3s's scheduled snapshots (etcd-snapshot-schedule-cron and
    # etcd-snapshot-retention in config.yaml); the defaults are K3s's own (docs.k3s.io
    # cli/etcd-snapshot: "0 */12 * * *", 5).
    etcd_snapshot_cron = models.CharField(_("etcd snapshot schedule (cron)"), max_length=64,
                                          default="0 */12 * * *")
    etcd_snapshot_retention = models.PositiveIntegerField(_("etcd snapshots kept"), default=5)
    # Embedded etcd only: each member as the last health check saw it
    # ([{"node": ip, "name": ..., "healthy": bool, "leader": bool, "error": str}]).
    etcd_members = models.JSONField(_("etcd members"), default=list, blank=True)
    # When the servers' snapshots were last listed (`k3s etcd-snapshot ls`): the health check
    # lists them again only after a scheduled snapshot time (clusters/adapters/health.py).
    etcd_snapshots_listed_at = models.DateTimeField(null=True, blank=True, editable=False)

    slb_address_type = models.CharField(
        _("SLB address type"), max_length=16, choices=SlbAddressType.choices,
        default=SlbAddressType.INTRANET,
    )
    slb_charge_type = models.CharField(
        _("SLB billing"), max_length=16, choices=SlbChargeType.choices,
        default=SlbChargeType.PAY_BY_LCU,
    )
    # Only a pay-by-specification CLB (bought before 2025-06-01) has a spec; LCU ones have none.
    slb_spec = models.CharField(_("SLB spec"), max_length=32, blank=True, default="")
    slb_address = models.GenericIPAddressField(_("SLB address"), null=True, blank=True)
    load_balancer_kind = models.CharField(
        _("load balancer type"), max_length=8, choices=LoadBalancerKind.choices,
        default=LoadBalancerKind.CLB,
    )
    # NLB only: [{"zone": ..., "vswitch_id": ...}] for every zone it answers in (the first is
    # the cluster's zone and vSwitch). Empty for a CLB.
    nlb_zones = models.JSONField(_("NLB zones"), default=list, blank=True)
    # NLB only, once it is Active: its DNS name (what the kubeconfig names) and its
    # per-zone addresses; all of them are in every server's tls-san.
    api_dns_name = models.CharField(_("API DNS name"), max_length=255, blank=True)
    api_addresses = models.JSONField(_("API load balancer addresses"), default=list,
                                     blank=True)
    # Source CIDRs the API's listener forwards (a CLB whitelist ACL). Required for an
    # Internet-facing SLB (the wizard never lets one be open to everyone); optional for an
    # intranet one, where empty means no ACL (the VPC's own reach, as before).
    # ECS instances the panel buys for this cluster (steps/ecs.py): {"servers": n,
    # "agents": m, "image_id", "instance_type", "system_disk_category", "system_disk_gb",
    # "public_bandwidth_mbps", "key_pair": "" (the panel generates one) or an existing
    # pair's name, "keep_instances": bool}; empty for a cluster on hosts the user owns.
    instance_order = models.JSONField(_("instances to buy"), default=dict, blank=True)
    # The VPC and vSwitch the panel creates for this cluster (steps/network.py):
    # {"vpc_cidr": "10.0.0.0/16", "vswitch_cidr": "10.0.0.0/24"}; empty when the cluster uses
    # a VPC the owner already has. vpc_id and vswitch_id are filled in once they are bought.
    network_order = models.JSONField(_("network to create"), default=dict, blank=True)
    # The owner's own instances (picked or typed hosts) join the nodes' security group the
    # panel makes (JoinSecurityGroup; they leave it at destroy): an explicit choice.
    join_security_group = models.BooleanField(_("add the hosts to the cluster's security group"),
                                              default=False)
    # The private half of the key pair the panel generated for those instances (encrypted
    # at rest like every secret); its public half was imported as an ECS key pair.
    generated_ssh_key = EncryptedTextField(_("generated SSH private key"), blank=True)
    generated_ssh_public_key = models.TextField(_("generated SSH public key"), blank=True)
    # When the owner last downloaded that private half (the destroy page offers it before
    # "keep the instances": clusters/operations/destroy.py keep_instances_problem).
    generated_ssh_key_downloaded_at = models.DateTimeField(
        _("generated SSH private key downloaded"), null=True, blank=True)
    api_allowed_cidrs = models.JSONField(_("API allowed sources (CIDR)"), default=list,
                                         blank=True)

    status = models.CharField(
        _("status"), max_length=16, choices=ClusterStatus.choices, default=ClusterStatus.DRAFT
    )
    health = models.CharField(_("health"), max_length=16, choices=Health.choices,
                              default=Health.UNKNOWN)
    health_reasons = models.JSONField(default=list, blank=True)
    health_checked_at = models.DateTimeField(null=True, blank=True)
    # A health check of this cluster is queued or running until then (the database's clock):
    # the beat queues no other meanwhile (clusters/operations/health.py).
    health_check_until = models.DateTimeField(null=True, blank=True)

    k3s_token = EncryptedTextField(_("K3s token"), blank=True)
    # Agents join with this one (user `node`), never with the server token (full admin);
    # empty for clusters created before it existed (clusters.k3s.tokens).
    k3s_agent_token = EncryptedTextField(_("K3s agent token"), blank=True)
    # sha256 of the cluster CA, read from the first server once it runs: joining servers and
    # agents get their token in the secure form K10<hash>::…, which pins this CA. Not secret.
    k3s_ca_hash = models.CharField(_("K3s CA hash"), max_length=64, blank=True)
    kubeconfig = EncryptedTextField(_("kubeconfig"), blank=True)
    kubeconfig_expires_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="cluster_unique_name_per_owner")
        ]
        indexes = [models.Index(fields=["owner", "-created_at"])]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def api_host(self) -> str:
        """The host kubectl and agents use for the API: the NLB's DNS name, or the CLB's
        address ("" before the load balancer exists)."""
        return self.api_dns_name or self.slb_address or ""

    @property
    def api_tls_sans(self) -> list[str]:
        """Every name and address the API is reached at through its load balancer."""
        names = [self.api_dns_name, *self.api_addresses, self.slb_address or ""]
        return [name for name in dict.fromkeys(names) if name]

    def secret_values(self, node_secrets: Iterable[Sequence[str]] | None = None) -> list[str]:
        """Every secret a step of this cluster may come across, for log redaction.
        `node_secrets`: the nodes' NODE_SECRET_FIELDS, when the caller read them already (the
        engine, with a query compiled once per process: clusters/engine/compiled.py)."""
        values = [
            self.k3s_token,
            self.k3s_agent_token,
            self.datastore_password,
            self.external_dsn,
            self.kubeconfig,
            *self.cloud_account.secret_values(),
        ]
        # Only the three columns (decrypted as they are read), unordered: this runs at the
        # start of every step (clusters/engine/pipeline.py), where whole Node rows in
        # (role, address) order cost the ORM's time for nothing (issue 18).
        if node_secrets is None:
            node_secrets = self.nodes.order_by().values_list(*NODE_SECRET_FIELDS)
        for row in node_secrets:
            values.extend(row)
        return [value for value in values if value]

    @cached_property
    def is_idle(self) -> bool:
        """No run of this cluster is pending or running (one query, then remembered)."""
        return not Run.objects.filter(cluster_id=self.pk).active().exists()

    @property
    def can_change_nodes(self) -> bool:
        """Nodes may be added or removed, K3s upgraded: a ready cluster with no run going."""
        return self.status == ClusterStatus.READY and self.is_idle

    @property
    def can_destroy(self) -> bool:
        """Destroy may start: no run going and not destroyed yet (a failed cluster may be
        destroyed too; that is how a failed create is cleaned up)."""
        return self.status != ClusterStatus.DESTROYED and self.is_idle


class NodeRole(models.TextChoices):
    SERVER = "server", _("Server")
    AGENT = "agent", _("Agent")


class NodeStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    INSTALLING = "installing", _("Installing")
    READY = "ready", _("Ready")
    NOT_READY = "not_ready", _("Not ready")
    FAILED = "failed", _("Failed")
    REMOVING = "removing", _("Removing")
    REMOVED = "removed", _("Removed")


# Leaving or left: no longer counted as part of the cluster (NodeQuerySet.live()).
NODE_GONE = frozenset({NodeStatus.REMOVING, NodeStatus.REMOVED})


class NodeQuerySet(models.QuerySet["Node"]):
    """The two memberships every rule about nodes asks for, said once.

    `present()`: still on its host, i.e. everything but REMOVED. A node being removed
    (REMOVING) may still run K3s and still be whitelisted; destroy must clean it up, its
    address is still taken, its version is still recorded.
    `live()`: part of the cluster from now on, i.e. neither REMOVING nor REMOVED. What the
    cluster serves with: SLB backends, the servers an API must show Ready, what is left for
    HA, the peers of a rolling restart.
    """

    def present(self) -> NodeQuerySet:
        return self.exclude(status=NodeStatus.REMOVED)

    def live(self) -> NodeQuerySet:
        return self.exclude(status__in=NODE_GONE)

    def servers(self) -> NodeQuerySet:
        return self.filter(role=NodeRole.SERVER)

    def agents(self) -> NodeQuerySet:
        return self.filter(role=NodeRole.AGENT)


#: A node's secrets (`Cluster.secret_values`).
NODE_SECRET_FIELDS = ("ssh_private_key", "ssh_password", "ssh_key_passphrase")


class Node(models.Model):
    """A host that runs K3s as a server or an agent, and how to reach it over SSH."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="nodes")
    role = models.CharField(_("role"), max_length=8, choices=NodeRole.choices)
    name = models.CharField(_("name"), max_length=63, blank=True)
    private_ip = models.GenericIPAddressField(_("private IP"), protocol="IPv4")
    public_ip = models.GenericIPAddressField(_("public IP"), protocol="IPv4", null=True, blank=True)
    ssh_port = models.PositiveIntegerField(_("SSH port"), default=22)
    ssh_user = models.CharField(_("SSH user"), max_length=32, default="root")
    ssh_private_key = EncryptedTextField(_("SSH private key"), blank=True)
    ssh_key_passphrase = EncryptedTextField(_("key passphrase"), blank=True)
    ssh_password = EncryptedTextField(_("SSH password"), blank=True)
    host_key = models.TextField(_("pinned host key"), blank=True)
    # SSH goes to the private address although a public one is recorded: an instance the
    # panel bought whose security group admits the panel from inside the VPC only
    # (steps/ecs.py, ssh_by_private_ip). False: the public address when there is one.
    ssh_private_only = models.BooleanField(_("SSH to the private IP"), default=False)
    ecs_instance_id = models.CharField(_("ECS instance"), max_length=64, blank=True)
    status = models.CharField(
        _("status"), max_length=16, choices=NodeStatus.choices, default=NodeStatus.PENDING
    )
    k3s_version = models.CharField(_("K3s version"), max_length=64, blank=True)
    # Set once our install step has written this cluster's config.yaml on the host, cleared
    # when the host is found clean again. Why stored, not in a step's memo: the memo is gone
    # after a user's Retry, and a cleanup interrupted after config.yaml went must still know
    # that the K3s left on the host is ours to remove (clusters/adapters/hostcleanup.py).
    k3s_installed = models.BooleanField(_("K3s installed by this cluster"), default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # Not stored: what the cluster page's Remove button says (web.cluster_page.annotate_removal).
    removable: bool
    removal_note: StrOrPromise
    instance_note: str

    objects = NodeQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["cluster", "private_ip"], name="node_unique_ip_per_cluster"
            )
        ]
        ordering = ["role", "private_ip"]

    def __str__(self) -> str:
        return f"{self.name or self.private_ip} ({self.role})"

    @property
    def ssh_address(self) -> str:
        """The address the panel logs in to: the public one when recorded (a host the owner
        typed, reached from outside its network), unless ssh_private_only says otherwise."""
        if self.public_ip and not self.ssh_private_only:
            return str(self.public_ip)
        return str(self.private_ip)

    @property
    def is_live(self) -> bool:
        """In memory, the same rule as NodeQuerySet.live()."""
        return self.status not in NODE_GONE


class EtcdSnapshot(models.Model):
    """One etcd snapshot K3s keeps on a server, as `k3s etcd-snapshot ls` listed it.

    Why stored: the cluster page lists them without SSH to every server on each view; the
    health check and the upgrade's pre-upgrade snapshot refresh the rows.
    """

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE,
                                related_name="etcd_snapshots")
    name = models.CharField(_("name"), max_length=255)
    node = models.CharField(_("server"), max_length=63)
    location = models.CharField(_("location"), max_length=1000, blank=True)
    size = models.BigIntegerField(_("size (bytes)"), default=0)
    taken_at = models.DateTimeField(_("taken at"), null=True, blank=True)
    seen_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cluster", "node", "name"],
                                    name="etcdsnapshot_unique_per_node")
        ]
        ordering = ["-taken_at", "name"]

    def __str__(self) -> str:
        return f"{self.name} on {self.node}"


class ResourceState(models.TextChoices):
    INTENDED = "intended", _("Intended")
    CREATING = "creating", _("Creating")
    PRESENT = "present", _("Present")
    DELETING = "deleting", _("Deleting")
    DELETED = "deleted", _("Deleted")


class CloudResource(models.Model):
    """The ledger: one row per thing bought, written before the create call and after it.

    Why: the ClientToken recorded before the call lets a retry after a crash find the same
    resource instead of buying a second one; destroy walks this ledger. A row without a
    provider id is looked up by the cluster's tag before its create is sent again
    (clusters/adapters/purchase.py), and `token_generation` (part of the ClientToken) moves on
    only when Alibaba Cloud refused the create for certain, so a re-send after a lost answer
    always carries the token of the call that may have bought something.
    """

    # PROTECT: a cluster that ever bought something cannot be deleted, by the admin or a
    # cascade from its owner. Destroy walks these rows to find what is still billed, and a
    # deleted row is a resource nobody deletes any more; rows of a destroyed cluster are its
    # bill's history. A cluster leaves the panel through Destroy, never through a delete.
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="resources")
    run = models.ForeignKey("Run", on_delete=models.SET_NULL, null=True, blank=True,
                            related_name="resources")
    kind = models.CharField(_("kind"), max_length=32)
    provider_id = models.CharField(_("provider id"), max_length=128, blank=True)
    client_token = models.CharField(_("ClientToken"), max_length=64, unique=True)
    token_generation = models.PositiveIntegerField(_("ClientToken generation"), default=0)
    region = models.CharField(_("region"), max_length=64)
    state = models.CharField(
        _("state"), max_length=16, choices=ResourceState.choices, default=ResourceState.INTENDED
    )
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["cluster", "kind"])]
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"{self.kind} {self.provider_id or '(pending)'}"


class RunKind(models.TextChoices):
    CREATE = "create", _("Create cluster")
    ADD_NODE = "add_node", _("Add node")
    REMOVE_NODE = "remove_node", _("Remove node")
    UPGRADE = "upgrade", _("Upgrade K3s")
    DESTROY = "destroy", _("Destroy cluster")
    RENEW_KUBECONFIG = "renew_kubeconfig", _("Renew kubeconfig")
    API_ALLOWLIST = "api_allowlist", _("Change the API allow-list")
    HEALTH = "health", _("Health check")
    TEST = "test", _("Engine test")


class RunStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


RUN_ACTIVE = frozenset({RunStatus.PENDING, RunStatus.RUNNING})
RUN_STOPPED = frozenset({RunStatus.FAILED, RunStatus.CANCELLED})


class RunQuerySet(models.QuerySet["Run"]):
    def active(self) -> RunQuerySet:
        """Pending or running: what holds a cluster's one-run-at-a-time lock."""
        return self.filter(status__in=RUN_ACTIVE)

    def stopped(self) -> RunQuerySet:
        """Failed or cancelled: what Retry may resume."""
        return self.filter(status__in=RUN_STOPPED)


class Run(models.Model):
    """One operation on a cluster, carried out as a graph of steps."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="runs")
    kind = models.CharField(_("kind"), max_length=16, choices=RunKind.choices)
    status = models.CharField(
        _("status"), max_length=16, choices=RunStatus.choices, default=RunStatus.PENDING
    )
    params = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["cluster", "-created_at"]),
            models.Index(fields=["status"]),
        ]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    @property
    def is_active(self) -> bool:
        return self.status in RUN_ACTIVE

    @property
    def can_retry(self) -> bool:
        """Failed or cancelled: a retry resumes it from the step that stopped."""
        return self.status in RUN_STOPPED


class StepStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    RUNNING = "running", _("Running")
    WAITING = "waiting", _("Waiting")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    ERRORED = "errored", _("Errored")
    SKIPPED = "skipped", _("Skipped")
    CANCELLED = "cancelled", _("Cancelled")


STEP_ACTIVE = frozenset({StepStatus.PENDING, StepStatus.RUNNING, StepStatus.WAITING})
STEP_TERMINAL = frozenset(set(StepStatus) - STEP_ACTIVE)
STEP_DONE = frozenset({StepStatus.SUCCEEDED, StepStatus.SKIPPED})
STEP_BROKEN = frozenset({StepStatus.FAILED, StepStatus.ERRORED})


class Step(models.Model):
    """One node of a run's graph; the engine claims it with a conditional UPDATE.

    failed = an expected failure a person can act on; errored = the step crashed.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    key = models.CharField(max_length=64)
    title = models.CharField(max_length=200)  # in English, as the plan wrote it
    # The title as a gettext message id and its arguments (clusters.core.titles).
    title_id = models.CharField(max_length=200, blank=True)
    title_args = models.JSONField(default=dict, blank=True)
    handler = models.CharField(max_length=100)
    position = models.PositiveIntegerField(default=0)
    depends_on = models.JSONField(default=list, blank=True)
    args = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=StepStatus.choices,
                              default=StepStatus.PENDING)
    # attempts counts every execution (it is also the lease's fencing token); polls counts
    # the executions that only found "not yet" after a Wait, so tries = attempts - polls.
    attempts = models.PositiveIntegerField(default=0)
    polls = models.PositiveIntegerField(default=0)
    transient_failures = models.PositiveIntegerField(default=0)
    retry_budget = models.PositiveIntegerField(default=6)
    not_before = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # When the running step's worker last said it is alive (clusters/core/heartbeat.py): the
    # page shows a late one long before the lease expires.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # How many times the sweeper took the step back from a worker that stopped answering, in
    # all (`reclaims`) and since a call of its handler last returned (`reclaim_streak`): a
    # step that can never start is failed after PANEL_STEP_MAX_RECLAIMS in a row, while a
    # long one whose workers die now and then goes on.
    reclaims = models.PositiveIntegerField(default=0)
    reclaim_streak = models.PositiveIntegerField(default=0)
    wait_reason = models.CharField(max_length=500, blank=True)
    # How many waits in a row before the current one gave this same wait_reason: the engine
    # looks less often while it grows (clusters/engine/polling.py).
    wait_repeats = models.PositiveIntegerField(default=0, db_default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    # While set and in the future, a "Collect diagnostics" task is writing into this failed
    # step's log (clusters/operations/diagnostics.py): its open log keeps polling, and Retry
    # waits, so the retried step's lines cannot collide with the diagnostics'. It expires by
    # itself, so a task that died does not block the run.
    diagnosing_until = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="step_unique_key")]
        indexes = [
            models.Index(fields=["status", "lease_until"]),
            models.Index(fields=["status", "not_before"]),
        ]
        ordering = ["run", "position"]

    def __str__(self) -> str:
        return f"{self.key} ({self.status})"

    @property
    def display_title(self) -> str:
        """The title in the active language; a row without an id shows as stored."""
        if not self.title_id:
            return self.title
        return titles.render(self.title_id, self.title_args, fallback=self.title)

    @property
    def tries(self) -> int:
        """How many times the step really tried (re-polls after a Wait do not count)."""
        return max(self.attempts - self.polls, 0)


#: LogLine.stream of a step's one marker row: the lines between its kept head and its kept
#: tail that were omitted (clusters/engine/steplog.py).
LOG_OMITTED = "omitted"


class LogLine(models.Model):
    """One line a step wrote, already redacted, in order; `seq` is its line number.

    A step keeps its first lines and its newest ones (clusters/engine/steplog.py); the lines
    between are replaced by one row of stream LOG_OMITTED, at the first omitted line's number,
    whose `omitted_lines` and `omitted_bytes` say exactly what is gone (its text is empty: the
    page and the download word it, in the reader's language). `cut_chars` is how many
    characters were cut from the end of a line longer than the limit.
    """

    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="log_lines")
    seq = models.PositiveIntegerField()
    time = models.DateTimeField()
    stream = models.CharField(max_length=8, default="info")
    text = models.TextField()
    cut_chars = models.PositiveIntegerField(default=0)
    omitted_lines = models.PositiveBigIntegerField(default=0)
    omitted_bytes = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["step", "seq"], name="logline_unique_seq")]
        # The marker rows only (at most one per step): every log page, the download and the
        # engine's step log look a step's marker up, and without this index that read every
        # line the step kept (a 120,000-line step: 30-70 ms per log poll on PostgreSQL).
        indexes = [models.Index(fields=["step", "seq"], condition=models.Q(stream=LOG_OMITTED),
                                name="logline_omitted_marker")]
        ordering = ["step", "seq"]

    def __str__(self) -> str:
        return self.text[:80]


class AuditAction(models.TextChoices):
    CLOUD_ACCOUNT_ADD = "cloud_account_add", _("Cloud account added")
    CLUSTER_CREATE = "cluster_create", _("Cluster creation started")
    RUN_RETRY = "run_retry", _("Run retried")
    RUN_RETRY_REFUSED = "run_retry_refused", _("Retry refused")
    RUN_CANCEL = "run_cancel", _("Run cancelled")
    CLUSTER_DESTROY = "cluster_destroy", _("Cluster destruction started")
    KUBECONFIG_DOWNLOAD = "kubeconfig_download", _("Kubeconfig downloaded")
    CLUSTER_UPGRADE = "cluster_upgrade", _("K3s upgrade started")
    KUBECONFIG_RENEW = "kubeconfig_renew", _("Kubeconfig renewal started")
    API_ALLOWLIST = "api_allowlist", _("API allow-list change started")
    NODE_ADD = "node_add", _("Node addition started")
    NODE_REMOVE = "node_remove", _("Node removal started")
    RUN_DIAGNOSTICS = "run_diagnostics", _("Diagnostics requested")
    NODE_HOST_KEY = "node_host_key", _("Node host key accepted")
    LOGIN_FAILED = "login_failed", _("Sign-in failed")
    HEALTH_CHECK = "health_check", _("Health check requested")
    ETCD_SNAPSHOTS_REFRESH = "etcd_snapshots_refresh", _("etcd snapshots refresh requested")
    KUBE_CREDENTIAL_ISSUE = "kube_credential_issue", _("Personal kubeconfig issued")
    KUBE_CREDENTIAL_REVOKE = "kube_credential_revoke", _("Personal kubeconfig revoked")
    ADMIN_CHANGE = "admin_change", _("Changed in the admin")
    ADMIN_DELETE = "admin_delete", _("Deleted in the admin")
    API_TOKEN_CREATE = "api_token_create", _("API token created")
    API_TOKEN_REVOKE = "api_token_revoke", _("API token revoked")
    API_TOKEN_USE = "api_token_use", _("API token used")
    SSH_KEY_DOWNLOAD = "ssh_key_download", _("Instances' SSH private key downloaded")


class AuditEvent(models.Model):
    """Who did what to which cluster, when and from where; append-only.

    Why: a kubeconfig is cluster-admin; owners and operators must be able to answer "who took
    a copy" and "who pressed Destroy" long after the fact, even when the cluster is gone
    (so the cluster's name is copied, and the foreign key may become NULL).
    """

    time = models.DateTimeField(_("time"), auto_now_add=True, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                             blank=True, related_name="+", verbose_name=_("user"))
    username = models.CharField(_("username"), max_length=150)
    action = models.CharField(_("action"), max_length=32, choices=AuditAction.choices)
    cluster = models.ForeignKey(Cluster, on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="audit_events", verbose_name=_("cluster"))
    cluster_name = models.CharField(_("cluster name"), max_length=63, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=300, blank=True)
    details = models.JSONField(_("details"), default=dict, blank=True)

    class Meta:
        indexes = [models.Index(fields=["cluster", "-time"])]
        ordering = ["-time"]

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.username} {self.action} {self.cluster_name}"


class KubeCredentialStatus(models.TextChoices):
    ISSUING = "issuing", _("Being issued")
    ACTIVE = "active", _("Active")
    REVOKED = "revoked", _("Revoked")
    FAILED = "failed", _("Not issued")
    # Past its expiry, and its ServiceAccount and binding deleted by the panel's clean-up.
    EXPIRED = "expired", _("Expired")


class KubeCredential(models.Model):
    """One revocable kubeconfig handed to a person: a ServiceAccount of its own on the cluster,
    bound to a ClusterRole, whose bound token (TokenRequest API) the download carries.

    Why a ServiceAccount and not a client certificate: Kubernetes checks no revocation list,
    so a certificate signed by the client CA works until it expires, whoever it was given
    to. A bound token is checked against its ServiceAccount on every request: deleting the
    account (and its binding) is a revocation that takes effect within seconds (each server
    trusts a token it just checked for 10 s), on every server.
    The token itself is never stored: it is in the one download, and only its ID (the JWT's
    `jti`, what the cluster's own audit log calls the credential ID `JTI=…`) and the
    account's name and UID are kept, to be shown, audited and revoked.

    The row is written (ISSUING) before anything is created on the cluster, so a download
    that failed half-way still has a row whose Revoke cleans up what was made.
    """

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE,
                                related_name="kube_credentials", verbose_name=_("cluster"))
    issued_to = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                  null=True, blank=True, related_name="+",
                                  verbose_name=_("issued to"))
    username = models.CharField(_("username"), max_length=150)
    namespace = models.CharField(_("namespace"), max_length=63)
    name = models.CharField(_("ServiceAccount"), max_length=63)
    role = models.CharField(_("ClusterRole"), max_length=63)
    service_account_uid = models.CharField(_("ServiceAccount UID"), max_length=64, blank=True)
    token_id = models.CharField(_("token ID"), max_length=64, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=KubeCredentialStatus.choices,
                              default=KubeCredentialStatus.ISSUING)
    created_at = models.DateTimeField(_("issued at"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    revoked_by = models.CharField(_("revoked by"), max_length=150, blank=True)
    error = models.CharField(_("error"), max_length=500, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cluster", "namespace", "name"],
                                               name="kube_credential_unique_account")]
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class TokenScope(models.TextChoices):
    READ = "read", _("Read only")
    WRITE = "write", _("Read and write")


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def usable(self) -> ApiTokenQuerySet:
        """Not revoked and not expired (the database's clock decides, as for leases)."""
        from django.db.models.functions import Now  # noqa: PLC0415  models import nothing else

        return self.filter(revoked_at__isnull=True, expires_at__gt=Now())


class ApiToken(models.Model):
    """A user's key to the REST API: shown once, stored only as its SHA-256 digest.

    Why SHA-256 and not a password hash: the token is 256 random bits the panel made, not a
    word a person chose, so no dictionary can guess it and a slow hash would only slow every
    API request; the digest alone cannot be turned back into the token. `prefix` (the first
    characters, not secret) lets the owner tell tokens apart on the page. A token acts for
    its user with the user's ownership rules, narrowed by its scope.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="api_tokens", verbose_name=_("user"))
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=16)
    digest = models.CharField(max_length=64, unique=True)
    scope = models.CharField(_("scope"), max_length=8, choices=TokenScope.choices,
                             default=TokenScope.READ)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    expires_at = models.DateTimeField(_("expires"))
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(_("last used from"), null=True, blank=True)
    # The day (UTC) of the last "API token used" audit row: one per token per day.
    audited_on = models.DateField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "name"],
                                               name="apitoken_unique_name_per_user")]
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def can_write(self) -> bool:
        return self.scope == TokenScope.WRITE
