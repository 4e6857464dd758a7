"""What the API answers, and the request shapes its schema documents.

No serializer here has a secret among its output fields: AccessKey secrets, STS tokens, SSH
keys and passwords, K3s tokens, DSNs, datastore passwords and kubeconfigs are write-only or
absent (the kubeconfig download is its own endpoint). The request serializers describe what
the forms of clusters.interface check; the forms decide (one set of rules with the wizard).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clusters import operations
from clusters.interface import queries
from clusters.interface.cluster_spec import spec_of
from clusters.interface.forms.wizard_datastore import DATASTORE_CHOICES
from clusters.models import (
    ApiToken,
    AuditEvent,
    CloudAccount,
    Cluster,
    CredentialKind,
    DatastoreKind,
    InstallSource,
    KubeCredential,
    LoadBalancerKind,
    Node,
    NodeRole,
    Run,
    SlbAddressType,
)
from clusters.operations import kube_credentials

# --- answers -----------------------------------------------------------------------------


class CloudAccountSerializer(serializers.ModelSerializer):
    class Meta:
        model = CloudAccount
        fields = ("id", "name", "credential_kind", "access_key_id", "role_arn",
                  "ecs_role_name", "token_expires_at", "default_region", "created_at")
        read_only_fields = fields


class RunSerializer(serializers.ModelSerializer):
    cluster = serializers.UUIDField(source="cluster.code", read_only=True)
    created_by = serializers.CharField(source="created_by.username", default=None,
                                       read_only=True)

    class Meta:
        model = Run
        fields: tuple[str, ...] = ("id", "cluster", "kind", "status", "params", "created_by",
                                   "created_at", "started_at", "finished_at",
                                   "cancel_requested")
        read_only_fields = fields


class StepSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    key = serializers.CharField()
    title = serializers.CharField(source="display_title")
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    wait_reason = serializers.CharField()
    not_before = serializers.DateTimeField(allow_null=True)
    error = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    depends_on = serializers.ListField(child=serializers.CharField())
    heartbeat_late_since = serializers.DateTimeField(allow_null=True)


class RunDetailSerializer(RunSerializer):
    steps = serializers.SerializerMethodField()
    retry_refusal = serializers.SerializerMethodField()

    class Meta(RunSerializer.Meta):
        fields = (*RunSerializer.Meta.fields, "steps", "retry_refusal")
        read_only_fields = fields

    @extend_schema_field(StepSerializer(many=True))
    def get_steps(self, run: Run) -> list[dict[str, Any]]:
        return StepSerializer(queries.run_snapshot(run)["steps"], many=True).data

    def get_retry_refusal(self, run: Run) -> str | None:
        """Why Retry would be refused now; null when it would be accepted (or it runs)."""
        if run.is_active:
            return None
        return operations.retry_refusal(run) or None


class LogLineSerializer(serializers.Serializer):
    seq = serializers.IntegerField()
    time = serializers.DateTimeField()
    stream = serializers.CharField()
    text = serializers.CharField()
    cut_chars = serializers.IntegerField(help_text="Characters cut from the end of this line.")
    omitted_lines = serializers.IntegerField(
        help_text="On the marker row (stream `omitted`): how many lines the log omits.")
    omitted_bytes = serializers.IntegerField(
        help_text="On the marker row: how many bytes the omitted lines held.")


class OmittedRangeSerializer(serializers.Serializer):
    from_ = serializers.IntegerField(help_text="The first omitted line number (the marker's).")
    to = serializers.IntegerField(help_text="The last omitted line number.")
    lines = serializers.IntegerField()
    bytes = serializers.IntegerField()

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields


class LogPageSerializer(serializers.Serializer):
    step = serializers.IntegerField()
    status = serializers.CharField()
    diagnosing = serializers.BooleanField()
    omitted = OmittedRangeSerializer(allow_null=True, help_text=(
        "The line numbers the stored log omits now (it keeps a step's first and newest "
        "lines), or null: a cursor between `from` and `to` missed lines trimmed meanwhile."))
    lines = LogLineSerializer(many=True)
    next = serializers.IntegerField(help_text="Ask again with ?after=<next> for newer lines.")


class NodeSerializer(serializers.ModelSerializer):
    instance_bought = serializers.SerializerMethodField(
        help_text="Whether the panel bought this node's ECS instance (and has not released "
                  "it): removing the node releases it unless keep_instance.")

    class Meta:
        model = Node
        fields = ("id", "name", "role", "private_ip", "public_ip", "ssh_port", "ssh_user",
                  "status", "k3s_version", "ecs_instance_id", "instance_bought", "host_key",
                  "created_at")
        read_only_fields = fields

    def get_instance_bought(self, node: Node) -> bool:
        """One ledger query per cluster for a whole list (kept in the root's context)."""
        if not node.ecs_instance_id:
            return False
        cache = self.context.setdefault("bought_instance_ids", {})
        if node.cluster_id not in cache:
            cache[node.cluster_id] = operations.bought_instance_ids(node.cluster)
        return node.ecs_instance_id in cache[node.cluster_id]


class ClusterSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="code", read_only=True)
    cloud_account = serializers.PrimaryKeyRelatedField(read_only=True)
    active_run = serializers.SerializerMethodField()

    class Meta:
        model = Cluster
        fields: tuple[str, ...] = (
                  "id", "name", "status", "health", "cloud_account", "region", "zone",
                  "vpc_id", "vswitch_id", "load_balancer_kind", "slb_address",
                  "slb_address_type", "api_dns_name", "api_addresses", "nlb_zones",
                  "k3s_version", "k3s_channel", "datastore_kind", "datastore_engine",
                  "rds_engine_version", "etcd_snapshot_cron", "etcd_snapshot_retention",
                  "etcd_members",
                  "kubeconfig_expires_at", "created_at", "updated_at", "active_run")
        read_only_fields = fields

    def get_active_run(self, cluster: Cluster) -> int | None:
        runs = getattr(cluster, "active_runs", None)
        if runs is not None:
            return runs[0].pk if runs else None
        run = cluster.runs.active().order_by("-created_at").first()
        return run.pk if run else None


class ClusterDetailSerializer(ClusterSerializer):
    health_reasons = serializers.JSONField(read_only=True)
    nodes = NodeSerializer(many=True, read_only=True, source="nodes.present")
    spec = serializers.SerializerMethodField()

    class Meta(ClusterSerializer.Meta):
        fields = (*ClusterSerializer.Meta.fields, "health_reasons", "health_checked_at",
                  "api_allowed_cidrs", "nodes", "spec")
        read_only_fields = fields

    @extend_schema_field(serializers.DictField())
    def get_spec(self, cluster: Cluster) -> dict[str, Any]:
        """The create request this cluster answers to, secrets left out."""
        return spec_of(cluster)


class HealthSerializer(serializers.ModelSerializer):
    class Meta:
        model = Cluster
        fields = ("health", "health_reasons", "health_checked_at")
        read_only_fields = fields


class AuditEventSerializer(serializers.ModelSerializer):
    cluster = serializers.UUIDField(source="cluster.code", default=None, read_only=True)

    class Meta:
        model = AuditEvent
        fields = ("id", "time", "username", "action", "cluster", "cluster_name",
                  "ip_address", "details")
        read_only_fields = fields


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    token = serializers.CharField(allow_null=True, help_text="The token's name, if one is used.")
    scope = serializers.CharField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)


class TokenSerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiToken
        fields = ("name", "prefix", "scope", "created_at", "expires_at", "last_used_at")
        read_only_fields = fields


class GeneratedKeySerializer(serializers.Serializer):
    private_key = serializers.CharField(
        help_text="The OpenSSH private key of the key pair the panel generated for the "
                  "cluster's instances (user root). Keep it safe: it is the only way in.")
    fingerprint = serializers.CharField(
        help_text="The public key's MD5 fingerprint, as ECS lists the key pair.")


class OperationSerializer(serializers.Serializer):
    """202: the run that was started, to follow at `run_url`."""

    run = RunSerializer()
    run_url = serializers.CharField()
    warnings = serializers.ListField(child=serializers.CharField(), required=False)


# --- requests (documented here, checked by the forms of clusters.interface) ---------------


class CloudAccountCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    credential_kind = serializers.ChoiceField(CredentialKind.choices,
                                              default=CredentialKind.ACCESS_KEY)
    access_key_id = serializers.CharField(required=False)
    access_key_secret = serializers.CharField(required=False, write_only=True,
                                              help_text="Stored encrypted, never returned.")
    role_arn = serializers.CharField(required=False)
    external_id = serializers.CharField(required=False)
    session_policy = serializers.CharField(required=False)
    ecs_role_name = serializers.CharField(required=False)
    security_token = serializers.CharField(required=False, write_only=True)
    token_expires_at = serializers.DateTimeField(required=False)
    default_region = serializers.CharField(default="cn-hangzhou")


class NetworkSpec(serializers.Serializer):
    zone = serializers.CharField()
    vpc = serializers.CharField()
    vswitch = serializers.CharField()
    load_balancer_kind = serializers.ChoiceField(LoadBalancerKind.choices,
                                                 default=LoadBalancerKind.CLB)
    nlb_zone2 = serializers.CharField(required=False, help_text=(
        "NLB only: a second zone of the region (an NLB answers in at least two)."))
    nlb_vswitch2 = serializers.CharField(required=False, help_text=(
        "NLB only: a vSwitch of the VPC in nlb_zone2."))
    slb_address_type = serializers.ChoiceField(SlbAddressType.choices,
                                               default=SlbAddressType.INTRANET)
    api_allowed_cidrs = serializers.ListField(child=serializers.CharField(), default=list)


class DatastoreSpec(serializers.Serializer):
    kind = serializers.ChoiceField([c for c, _label in DATASTORE_CHOICES],
                                   default=DatastoreKind.RDS)
    rds_engine_version = serializers.CharField(default="8.0")
    rds_instance_class = serializers.CharField(required=False)
    rds_storage_gb = serializers.IntegerField(default=20)
    rds_password = serializers.CharField(required=False, write_only=True)
    datastore_tls = serializers.BooleanField(required=False)
    external_dsn = serializers.CharField(required=False, write_only=True)
    etcd_snapshot_cron = serializers.CharField(required=False, help_text=(
        "Embedded etcd only: the snapshot schedule, 5 cron fields (K3s's default "
        "0 */12 * * *)."))
    etcd_snapshot_retention = serializers.IntegerField(required=False, help_text=(
        "Embedded etcd only: snapshots kept per server (K3s's default 5)."))
    etcd_single_server = serializers.BooleanField(required=False, help_text=(
        "Embedded etcd only: true to accept one server, which is not highly available."))


class HostSpec(serializers.Serializer):
    role = serializers.ChoiceField(NodeRole.choices)
    private_ip = serializers.IPAddressField(protocol="IPv4")
    public_ip = serializers.IPAddressField(protocol="IPv4", required=False, allow_null=True)
    ssh_port = serializers.IntegerField(default=22)
    ssh_user = serializers.CharField(default="root")
    auth = serializers.ChoiceField((("key", "key"), ("password", "password")), default="key")
    private_key = serializers.CharField(required=False, write_only=True)
    passphrase = serializers.CharField(required=False, write_only=True)
    password = serializers.CharField(required=False, write_only=True)
    host_key = serializers.CharField(required=False,
                                     help_text="SHA256:… fingerprint to pin (optional).")


class InstancesSpec(serializers.Serializer):
    """ECS instances the panel buys instead of hosts (the wizard's "create instances"),
    checked against what the zone sells now (the network-choices of the region)."""

    servers = serializers.IntegerField(default=2, min_value=1, max_value=9)
    agents = serializers.IntegerField(default=1, min_value=0, max_value=50)
    instance_type = serializers.CharField(help_text=(
        "An instance type the zone sells now (DescribeAvailableResource), e.g. ecs.g7.large."))
    image_id = serializers.CharField(help_text=(
        "A current public image: Ubuntu LTS, Debian or Alibaba Cloud Linux 3 (DescribeImages)."))
    system_disk_gb = serializers.IntegerField(default=40, min_value=40, max_value=2048,
                                              help_text="ESSD system disk, GiB.")
    public_bandwidth_mbps = serializers.IntegerField(
        default=0, min_value=0, max_value=100, help_text="0: no public address.")
    key_pair = serializers.CharField(required=False, help_text=(
        "An existing key pair of the region (DescribeKeyPairs); left out, the panel makes "
        "one and imports its public half."))
    key_pair_private_key = serializers.CharField(required=False, write_only=True, help_text=(
        "The key pair's private key (no passphrase): must match its fingerprint; stored "
        "encrypted, never shown again."))


class K3sSpec(serializers.Serializer):
    version = serializers.CharField(default="stable")
    install_source = serializers.ChoiceField(InstallSource.choices, required=False)
    install_base_url = serializers.URLField(required=False)
    extra_tls_sans = serializers.ListField(child=serializers.CharField(), default=list)
    disable_traefik = serializers.BooleanField(default=False)
    taint_servers = serializers.BooleanField(default=False)
    secrets_encryption = serializers.BooleanField(default=True)


class ClusterSpec(serializers.Serializer):
    """What the wizard collects, step by step (clusters.interface.cluster_spec)."""

    name = serializers.CharField(max_length=63)
    cloud_account = serializers.IntegerField()
    region = serializers.CharField()
    network = NetworkSpec()
    datastore = DatastoreSpec()
    hosts = HostSpec(many=True, required=False, help_text=(
        "The hosts you have; or leave it empty and give `instances` for the panel to buy."))
    instances = InstancesSpec(required=False)
    k3s = K3sSpec()
    billing_ack = serializers.BooleanField(
        help_text="true: the resources are billed to the account until destroyed.")


class CreatedSerializer(OperationSerializer):
    cluster = ClusterSerializer()


class BilledItemSerializer(serializers.Serializer):
    what = serializers.CharField()
    detail = serializers.CharField()
    monthly = serializers.FloatField(allow_null=True, help_text="null: unknown, see problem")
    currency = serializers.CharField()
    problem = serializers.CharField()
    usage_note = serializers.CharField()


class BilledSerializer(serializers.Serializer):
    items = BilledItemSerializer(many=True)
    monthly_total = serializers.FloatField(
        allow_null=True, help_text="Sum of the known monthly prices; null when none is known.")
    monthly_total_incomplete = serializers.BooleanField(
        help_text="true: some item's price is unknown (see its problem), so monthly_total "
                  "leaves it out, as the review page says.")
    currency = serializers.CharField()


class DryRunSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    warnings = serializers.ListField(child=serializers.CharField())
    billed = BilledSerializer(help_text="What create would buy, priced as the review page.")


class KubeCredentialSerializer(serializers.ModelSerializer):
    """A personal kubeconfig's record: its IDs, never its token (that is in the issue's
    answer only)."""

    expired = serializers.SerializerMethodField(
        help_text="Past its expiry: the cluster refuses its token already.")
    revocable = serializers.SerializerMethodField(
        help_text="Still live (being issued or active): POST …/revoke/ ends it.")

    class Meta:
        model = KubeCredential
        fields = ("id", "username", "namespace", "name", "role", "service_account_uid",
                  "token_id", "status", "created_at", "expires_at", "revoked_at",
                  "revoked_by", "error", "expired", "revocable")
        read_only_fields = fields

    def get_expired(self, obj: KubeCredential) -> bool:
        return kube_credentials.is_expired(obj)

    def get_revocable(self, obj: KubeCredential) -> bool:
        return obj.status in kube_credentials.LIVE


class KubeCredentialIssueSerializer(serializers.Serializer):
    lifetime = serializers.ChoiceField(
        list(kube_credentials.LIFETIMES), default=kube_credentials.DEFAULT_LIFETIME,
        help_text="How long the token stays valid (the cluster may cap it: see expires_at).")


class KubeCredentialIssuedSerializer(serializers.Serializer):
    credential = KubeCredentialSerializer()
    kubeconfig = serializers.CharField(
        help_text="The kubeconfig with the token: in this answer only, never again (the "
                  "panel does not keep the token).")


class DestroySerializer(serializers.Serializer):
    confirm_name = serializers.CharField(help_text="The cluster's name, typed as confirmation.")
    keep_database = serializers.BooleanField(default=False)
    keep_instances = serializers.BooleanField(
        default=False, help_text="Keep the ECS instances the panel bought (they stay billed, "
        "in the cluster's security group, kept with them). Refused (409) while they log in "
        "only with the key pair the panel generated and its private key was never "
        "downloaded (the cluster's page, section \"Destroy the cluster\").")


class UpgradeSerializer(serializers.Serializer):
    version = serializers.CharField(help_text="A release (v1.32.5+k3s1) or a channel.")


class AddNodeSerializer(serializers.Serializer):
    role = serializers.ChoiceField(NodeRole.choices)
    private_ip = serializers.IPAddressField(protocol="IPv4")
    public_ip = serializers.IPAddressField(protocol="IPv4", required=False, allow_null=True)
    ssh_port = serializers.IntegerField(default=22)
    ssh_user = serializers.CharField(default="root")
    auth = serializers.ChoiceField((("key", "key"), ("password", "password")), default="key")
    private_key = serializers.CharField(required=False, write_only=True)
    passphrase = serializers.CharField(required=False, write_only=True)
    password = serializers.CharField(required=False, write_only=True)


class NodeRemoveSerializer(serializers.Serializer):
    keep_instance = serializers.BooleanField(
        default=False, help_text="A node whose ECS instance the panel bought: keep the "
        "instance (it stays billed; K3s is still removed from it; it stays in the cluster's "
        "security group, which still admits it to the nodes' VXLAN, kubelet and etcd ports, "
        "until you move it to a group of yours). Without it, the instance is released "
        "(DeleteInstances) once the node has left the cluster. true for a node the panel "
        "did not buy is refused (400): such a host is never released. Refused (409) while "
        "the instances log in only with the key pair the panel generated and its private "
        "key was never downloaded (the cluster's page, section \"Destroy the cluster\").")


class AddInstancesSerializer(serializers.Serializer):
    """Buy new ECS instances like the cluster's first ones (its instance type, image, disk,
    bandwidth, security group and key pair) and join them; only a cluster whose first
    instances the panel bought (else 409: add a node by its address)."""

    servers = serializers.IntegerField(default=0, min_value=0, max_value=9)
    agents = serializers.IntegerField(default=0, min_value=0, max_value=50)
    confirm_billing = serializers.BooleanField(
        help_text="true: the new instances are billed (pay-as-you-go) from their creation "
                  "until they are released.")


class AddInstancesStartedSerializer(OperationSerializer):
    billed = serializers.CharField(help_text="What the run buys and bills, in words.")


class RegionSerializer(serializers.Serializer):
    region_id = serializers.CharField()
    local_name = serializers.CharField(required=False)


class NetworkChoicesSerializer(serializers.Serializer):
    zones = serializers.ListField(child=serializers.CharField())
    # The zones where NLB is sold (NLB DescribeZones): an NLB's two zones are among them.
    nlb_zones = serializers.ListField(child=serializers.CharField())
    vpcs = serializers.ListField(child=serializers.DictField())
    vswitches = serializers.ListField(child=serializers.DictField())


class RdsChoicesSerializer(serializers.Serializer):
    zone = serializers.CharField()
    versions = serializers.ListField(child=serializers.CharField())
    classes = serializers.ListField(child=serializers.DictField())


class K3sVersionSerializer(serializers.Serializer):
    version = serializers.CharField()
    channel = serializers.CharField()
    exists = serializers.BooleanField(allow_null=True,
                                      help_text="null: the install source could not be asked.")
    install_source = serializers.CharField()
