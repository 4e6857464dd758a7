"""The RDS instance K3s uses as its datastore (MySQL or PostgreSQL, through the one engine
interface of clusters.adapters.datastore_engines): bought once, configured idempotently."""

from __future__ import annotations

import time

from clusters.adapters import cloud, datastore_tls, purchase
from clusters.adapters.aliyun import AliyunCloud, RdsSpec
from clusters.adapters.aliyun.rds import RDS_CATEGORY, RDS_STORAGE_TYPE
from clusters.adapters.credentials import generate_rds_password, name_from_cluster
from clusters.adapters.datastore_engines import engine_for
from clusters.core.errors import PermanentError
from clusters.engine.outcomes import Done, Fail, Outcome, Skip, Wait
from clusters.engine.registry import step_handler
from clusters.engine.stepcontext import StepContext
from clusters.models import Cluster, DatastoreKind, ResourceState, RunKind
from clusters.steps.node import remaining_servers

RDS_KIND = "rds_instance"
LARGE_PREFIX = "innodb_large_prefix"
LARGE_PREFIX_VERSIONS = ("5.6", "5.7")
DATABASE = "k3s"
# Forced SSL encryption exists on MySQL 5.7, 8.0 and 8.4 (minor version 20241130 or later;
# Alibaba help "Configure the SSL encryption feature"); on 5.6 SSL is offered, not enforced.
SSL_FORCE_VERSIONS = ("5.7", "8.0", "8.4")
SSL_APPLY_SECONDS = 1800  # the restart usually takes minutes
CREATE_TIMEOUT_SECONDS = 3600  # RDS usually needs 5-15 minutes; an hour means trouble


def _instance_id(ctx: StepContext) -> str:
    instance_id = ctx.result_of("rds_create").get("instance_id")
    if not instance_id and ctx.run.kind != RunKind.CREATE:
        # A later run (adding servers) configures the instance its cluster already has.
        instance_id = ctx.cluster.resources.filter(
            kind=RDS_KIND, state=ResourceState.PRESENT).exclude(provider_id="") \
            .values_list("provider_id", flat=True).first()
    if not instance_id:
        raise PermanentError("The RDS instance has not been created yet.")
    return instance_id


# Listed with the cluster's tag but on its way out: never adopted as the datastore.
GOING_AWAY = frozenset({"Deleting", "Released"})


def rds_purchase(api: AliyunCloud, cluster: Cluster) -> purchase.Purchase:
    """How the datastore is bought: by tag (DescribeDBInstances) or CreateDBInstance."""
    def find(key: str, value: str) -> list[str]:
        return [i.instance_id for i in api.find_rds_by_tag(key, value)
                if i.status not in GOING_AWAY]

    def create(token: str) -> purchase.Bought:
        created = api.create_rds(
            RdsSpec(engine_version=cluster.rds_engine_version,
                    instance_class=cluster.rds_instance_class,
                    storage_gb=cluster.rds_storage_gb, vpc_id=cluster.vpc_id,
                    vswitch_id=cluster.vswitch_id, zone_id=cluster.zone,
                    storage_type=RDS_STORAGE_TYPE, category=RDS_CATEGORY,
                    description=f"K3s datastore of {cluster.name}"[:256],
                    engine=engine_for(cluster).label),
            client_token=token, tags=cloud.tags(cluster),
        )
        return purchase.Bought(created.instance_id, {
            "connection_string": created.connection_string, "port": created.port})

    return purchase.Purchase("RDS instance", "CreateDBInstance", find, create)


@step_handler("rds.create")
def create(ctx: StepContext) -> Outcome:
    """The RDS instance of the ledger, adopted by tag or bought (clusters/adapters/purchase.py);
    then wait for Running."""
    cluster = ctx.cluster
    api = cloud.cloud_for(cluster)
    resource = cloud.intend(ctx, RDS_KIND)
    acquired = purchase.ensure_bought(ctx, resource, rds_purchase(api, cluster),
                                      state=ResourceState.CREATING)
    if acquired is purchase.Acquired.CREATED:
        ctx.say(f"Created RDS {engine_for(cluster).label} {cluster.rds_engine_version} instance "
                f"{resource.provider_id} ({cluster.rds_instance_class}, "
                f"{cluster.rds_storage_gb} GB)")
    instance = api.describe_rds(resource.provider_id)
    if instance is None:
        raise PermanentError(f"RDS instance {resource.provider_id} disappeared while being "
                             "created; check the RDS console.")
    if not instance.running:
        deadline = ctx.memo.setdefault("deadline", time.time() + CREATE_TIMEOUT_SECONDS)
        if time.time() > deadline:
            return Fail(f"RDS {instance.instance_id} is still {instance.status} after "
                        f"{CREATE_TIMEOUT_SECONDS // 60} minutes; check it in the RDS console, "
                        "then press Retry (the same instance is used, nothing is bought twice).")
        return Wait(cloud.poll_seconds(), f"RDS {instance.instance_id} is {instance.status}")
    cloud.record(resource, state=ResourceState.PRESENT)
    ctx.say(f"RDS {instance.instance_id} is Running")
    return Done({"instance_id": instance.instance_id})


def turn_large_prefix_on(ctx: StepContext) -> Outcome | None:
    """innodb_large_prefix=ON where it exists and reads OFF; a Wait until it runs.

    Never on 8.x (the parameter does not exist there, WL#7704). On 5.6/5.7 DescribeParameters
    is read first: RDS 5.7 runs it ON by default, so usually nothing is modified at all.
    If the change was asked for and is neither pending nor running any more, RDS's
    modification task failed: asking again would loop, so a person is told.
    """
    cluster = ctx.cluster
    if cluster.rds_engine_version not in LARGE_PREFIX_VERSIONS:
        return None
    api = cloud.cloud_for(cluster)
    instance_id = _instance_id(ctx)
    parameters = api.describe_parameters(instance_id)
    if parameters.running.get(LARGE_PREFIX, "").upper() == "ON":
        return None
    if parameters.value(LARGE_PREFIX) != "ON":
        if ctx.memo.get("large_prefix_requested"):
            raise PermanentError(
                f"RDS did not apply {LARGE_PREFIX}=ON on {instance_id}: the parameter change "
                "failed and it still reads OFF. Look at the instance's parameter modification "
                "log in the RDS console, set it ON there, then press Retry.")
        api.modify_parameters(instance_id, {LARGE_PREFIX: "ON"})
        ctx.memo["large_prefix_requested"] = True
        ctx.say(f"Set {LARGE_PREFIX}=ON on {instance_id} (it reads OFF, and K3s's index needs "
                "keys over 767 bytes)")
    return Wait(cloud.poll_seconds(), f"Waiting for {LARGE_PREFIX}=ON to be applied")


def _server_ips(cluster: Cluster) -> list[str]:
    """Every server still on its host: one being removed keeps its K3s (and its datastore
    connections) until its removal run shrinks the whitelist after uninstalling it."""
    return sorted(cluster.nodes.present().servers().values_list("private_ip", flat=True))


# The phases of rds.configure, in order. Each looks before it acts, records in the step's
# memo that it is finished (so a Wait or a throttled retry resumes after the last phase that
# succeeded), and returns None when the next phase may run, else the Wait it needs.


def _whitelist(ctx: StepContext, api: AliyunCloud, instance_id: str) -> Outcome | None:
    servers = _server_ips(ctx.cluster)
    if ctx.memo.get("whitelisted") != servers:
        api.modify_security_ips(instance_id, servers)
        ctx.memo["whitelisted"] = servers
        ctx.say(f"Whitelisted the servers: {', '.join(servers)}")
    return None


def _password(ctx: StepContext, cluster: Cluster) -> str:
    """The account's password, generated and stored (encrypted) before CreateAccount, so a
    retry uses the same one."""
    if not cluster.datastore_password:
        cluster.datastore_password = generate_rds_password()
        cluster.save(update_fields=["datastore_password"])
        ctx.cluster.datastore_password = cluster.datastore_password
    ctx.register_secret(cluster.datastore_password)
    return cluster.datastore_password


def _account(ctx: StepContext, api: AliyunCloud, instance_id: str, account: str,
             password: str) -> Outcome | None:
    if ctx.memo.get("account_ready"):
        return None
    existing = api.describe_account(instance_id, account)
    if existing is None:
        api.create_account(instance_id, account, password,
                           description=f"K3s {ctx.cluster.name}"[:256])
        ctx.say(f"Created account {account}")
        return Wait(cloud.poll_seconds(), f"Waiting for account {account} to be available")
    if not existing.available:
        return Wait(cloud.poll_seconds(), f"Account {account} is {existing.status}")
    ctx.memo["account_ready"] = True
    return None


def _database(ctx: StepContext, api: AliyunCloud, instance_id: str) -> Outcome | None:
    if ctx.memo.get("database_ready"):
        return None
    database = api.describe_database(instance_id, DATABASE)
    if database is None:
        charset = engine_for(ctx.cluster).database_charset
        api.create_database(instance_id, DATABASE, charset)
        ctx.say(f"Created database {DATABASE} ({charset})")
        return Wait(cloud.poll_seconds(), f"Waiting for database {DATABASE}")
    if not database.running:
        return Wait(cloud.poll_seconds(), f"Database {DATABASE} is {database.status}")
    ctx.memo["database_ready"] = True
    return None


def _grant(ctx: StepContext, api: AliyunCloud, instance_id: str, account: str) -> None:
    if ctx.memo.get("granted"):
        return
    privilege = engine_for(ctx.cluster).account_privilege
    existing = api.describe_account(instance_id, account)
    if existing is None or existing.privileges.get(DATABASE) != privilege:
        api.grant_privilege(instance_id, account, DATABASE, privilege)
        ctx.say(f"Granted {privilege} on {DATABASE} to {account}")
    ctx.memo["granted"] = True


@step_handler("rds.configure")
def configure(ctx: StepContext) -> Outcome:
    """Whitelist servers, account, database, grant, parameters, SSL: one phase after the
    other, each looked at before it is done."""
    cluster = Cluster.objects.select_related("cloud_account").get(pk=ctx.cluster.pk)
    api = cloud.cloud_for(cluster)
    instance_id = _instance_id(ctx)
    account = name_from_cluster(cluster.name)
    password = _password(ctx, cluster)
    waiting = (_whitelist(ctx, api, instance_id)
               or _account(ctx, api, instance_id, account, password)
               or _database(ctx, api, instance_id))
    if waiting:
        return waiting
    _grant(ctx, api, instance_id, account)
    waiting = turn_large_prefix_on(ctx)
    if waiting:
        return waiting
    address = _private_address(api.net_info(instance_id))
    waiting = _ssl(ctx, api, instance_id, address[0])
    if waiting:
        return waiting
    ctx.say(f"Datastore: {account}@{address[0]}:{address[1]}/{DATABASE}")
    return Done({"instance_id": instance_id, "host": address[0], "port": address[1],
                 "account": account, "database": DATABASE})


def _ssl(ctx: StepContext, api: AliyunCloud, instance_id: str,
         connection_string: str) -> Outcome | None:
    """RDS SSL on for the address K3s uses, with forced encryption; a Wait while it applies.

    ModifyDBInstanceSSL restarts the instance (SSLModifying, clients cut off): asked once
    (memo), then polled until DescribeDBInstanceSSL says Yes for that address and the
    instance runs again. Still off SSL_APPLY_SECONDS after the request means RDS's task
    failed: asking again could loop, so a person is told. The CA bundle is checked first, so
    a missing one fails before the instance restarts for nothing.
    """
    if not datastore_tls.uses_tls(ctx.cluster) or ctx.memo.get("ssl_ready"):
        return None
    if not engine_for(ctx.cluster).offers_tls:
        raise PermanentError(
            f"The panel turns verified TLS on for RDS MySQL only; this cluster's datastore is "
            f"RDS {engine_for(ctx.cluster).label}. Turn datastore TLS off for it.")
    datastore_tls.rds_ca_bundle()
    instance = api.describe_rds(instance_id)
    if instance is not None and not instance.running:
        # Bounded too: an instance stuck applying SSL (or locked) must not be polled forever.
        first_seen = ctx.memo.setdefault("ssl_since", ctx.memo.get("ssl_requested", time.time()))
        if time.time() < first_seen + SSL_APPLY_SECONDS:
            return Wait(cloud.poll_seconds(), f"RDS {instance_id} is {instance.status}")
        raise PermanentError(
            f"RDS {instance_id} has been {instance.status} for more than "
            f"{SSL_APPLY_SECONDS // 60} minutes while SSL was to be turned on for "
            f"{connection_string}. Look at the instance in the RDS console (a pending task, "
            "an overdue payment), then press Retry.")
    state = api.describe_ssl(instance_id)
    if state.enabled and state.connection_string == connection_string:
        ctx.memo["ssl_ready"] = True
        ctx.say(f"SSL is on for {connection_string} (certificate valid until "
                f"{state.expire_time or 'unknown'}"
                f"{'; unencrypted connections are refused' if state.force_encryption else ''})")
        return None
    if ctx.memo.get("ssl_requested"):
        if time.time() < ctx.memo["ssl_requested"] + SSL_APPLY_SECONDS:
            return Wait(cloud.poll_seconds(), f"Waiting for RDS {instance_id} to apply SSL")
        raise PermanentError(
            f"RDS did not turn SSL on for {connection_string} on {instance_id}: the instance "
            f"runs, but SSL is still off {SSL_APPLY_SECONDS // 60} minutes after it was asked "
            "for (DescribeDBInstanceSSL). Turn it on in the RDS "
            "console (Data Security → SSL), then press Retry.")
    api.enable_ssl(instance_id, connection_string, force_encryption=ctx.cluster
                   .rds_engine_version in SSL_FORCE_VERSIONS)
    ctx.memo["ssl_requested"] = time.time()
    ctx.say(f"Turned SSL on for {connection_string} (Alibaba's cloud certificate); RDS "
            f"restarts {instance_id} to apply it")
    return Wait(cloud.poll_seconds(), f"Waiting for RDS {instance_id} to apply SSL")


def _private_address(net_info: list) -> tuple[str, int]:
    for entry in net_info:
        if entry.ip_type.lower() in ("private", "inner", "intranet"):
            return entry.connection_string, entry.port
    if net_info:
        return net_info[0].connection_string, net_info[0].port
    raise PermanentError("RDS reported no connection address for the instance.")


@step_handler("rds.whitelist")
def shrink_whitelist(ctx: StepContext) -> Outcome:
    """Make the RDS whitelist exactly the servers that remain."""
    cluster = ctx.cluster
    row = cluster.resources.filter(kind=RDS_KIND, state=ResourceState.PRESENT) \
        .exclude(provider_id="").first()
    if cluster.datastore_kind != DatastoreKind.RDS or row is None:
        return Skip("the datastore is not an RDS instance the panel bought")
    servers = [server.private_ip for server in remaining_servers(cluster)]
    cloud.cloud_for(cluster).modify_security_ips(row.provider_id, servers)
    ctx.say(f"RDS {row.provider_id} whitelist: {', '.join(servers)}")
    return Done({"whitelist": servers})
