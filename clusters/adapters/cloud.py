"""The Alibaba Cloud facade for a cluster, and the ledger entries around every purchase.

Why: "record intent, then buy with its ClientToken, then record the result" must be the
same for RDS and SLB (and anything bought later), or a crash between buying and recording
could buy twice.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone

from clusters.adapters.aliyun import (
    AccessKeySource,
    AliyunCloud,
    AssumedRoleSource,
    CredentialSource,
    EcsInstanceRoleSource,
    Keys,
    StsTokenSource,
)
from clusters.adapters.aliyun.auth import metadata_endpoint
from clusters.adapters.aliyun.client import EndpointPolicy
from clusters.core.errors import PermanentError
from clusters.models import CloudAccount, CloudResource, Cluster, CredentialKind, ResourceState

if TYPE_CHECKING:
    # A type only: adapters never import the engine (.importlinter); the step
    # context is handed in by the step that calls them.
    from clusters.engine.stepcontext import StepContext

TAG_KEY = "k3s-panel-cluster"


def _keys_source(keys: Keys) -> CredentialSource:
    if keys.security_token:
        return StsTokenSource(keys.access_key_id, keys.access_key_secret, keys.security_token)
    return AccessKeySource(keys.access_key_id, keys.access_key_secret)


# Renewing sources (a role) are shared by the steps of a process, so each step does not call
# AssumeRole or the metadata service again (STS throttles AssumeRole). Keyed by everything the
# keys depend on, secrets hashed: an edited account gets a new entry.
_RENEWING: OrderedDict[str, CredentialSource] = OrderedDict()
_RENEWING_LOCK = threading.Lock()
_RENEWING_MAX = 256


def ecs_role_offered(name: str) -> bool:
    """Whether users may sign with the panel host's RAM role `name`: only the ones its operator
    lists in PANEL_ECS_ROLES (the host's identity is the operator's, not every user's)."""
    return bool(name) and name in settings.PANEL_ECS_ROLES


def credentials_for(account: CloudAccount, region: str) -> CredentialSource:
    """The account's credential source, built from what it stores and nothing else.

    Never the SDK's default chain: no environment variable, profile file or metadata
    address is read unless the account names it (auth.py explains the SDK's traps).
    """
    if account.credential_kind not in (CredentialKind.RAM_ROLE, CredentialKind.ECS_ROLE):
        return _build_credentials(account, region)
    key = hashlib.sha256(json.dumps([
        account.credential_kind, account.access_key_id, account.access_key_secret,
        account.role_arn, account.external_id, account.session_policy, account.ecs_role_name,
        region, str(settings.ALIYUN_ENDPOINT_OVERRIDE), settings.ALIYUN_ECS_METADATA_ENDPOINT,
    ]).encode()).hexdigest()
    with _RENEWING_LOCK:
        source = _RENEWING.get(key)
        if source is None:
            source = _RENEWING[key] = _build_credentials(account, region)
            while len(_RENEWING) > _RENEWING_MAX:
                _RENEWING.popitem(last=False)
        _RENEWING.move_to_end(key)
        return source


def _build_credentials(account: CloudAccount, region: str) -> CredentialSource:
    kind = account.credential_kind
    override = settings.ALIYUN_ENDPOINT_OVERRIDE
    if kind == CredentialKind.ACCESS_KEY:
        return AccessKeySource(account.access_key_id, account.access_key_secret)
    if kind == CredentialKind.STS_TOKEN:
        expires = account.token_expires_at.timestamp() if account.token_expires_at else None
        return StsTokenSource(account.access_key_id, account.access_key_secret,
                              account.security_token, expires)
    if kind == CredentialKind.ECS_ROLE:
        if not ecs_role_offered(account.ecs_role_name):
            raise PermanentError(
                f"The ECS instance role {account.ecs_role_name!r} is not one this panel offers "
                "its users (PANEL_ECS_ROLES): the panel host's role is its operator's identity. "
                "Ask the operator, or use a RAM role or an AccessKey.")
        endpoint = metadata_endpoint(settings.ALIYUN_ECS_METADATA_ENDPOINT,
                                     EndpointPolicy(override).overridden)
        return EcsInstanceRoleSource(account.ecs_role_name, endpoint)
    if kind == CredentialKind.RAM_ROLE:
        def assume(keys: Keys, params: dict[str, str]) -> dict[str, Any]:
            return AliyunCloud("", "", region, endpoint_override=override,
                               credentials=_keys_source(keys)).assume_role(params)

        return AssumedRoleSource(
            AccessKeySource(account.access_key_id, account.access_key_secret),
            account.role_arn, assume, external_id=account.external_id,
            session_policy=account.session_policy)
    raise PermanentError(f"Unknown credential kind {kind!r}.")


def cloud_for_account(account: CloudAccount, region: str) -> AliyunCloud:
    return AliyunCloud("", "", region, endpoint_override=settings.ALIYUN_ENDPOINT_OVERRIDE,
                       credentials=credentials_for(account, region))


def cloud_for(cluster: Cluster) -> AliyunCloud:
    return cloud_for_account(cluster.cloud_account, cluster.region)


def tags(cluster: Cluster) -> dict[str, str]:
    """Tags on everything bought, so a person (and the panel) can find it again."""
    return {TAG_KEY: str(cluster.code), "k3s-panel-name": cluster.name[:128]}


def poll_seconds() -> float:
    return float(settings.PANEL_CLOUD_POLL_SECONDS)


MAX_CLIENT_TOKEN = 64  # Alibaba Cloud: at most 64 ASCII characters


def client_token(cluster: Cluster, kind: str, generation: int = 0) -> str:
    """The ClientToken of this cluster's `kind` purchase in its `generation`.

    Generation 0 is the token rows carried before generations existed; a later one ends in
    "-g<n>", kept whole when the base must be cut to fit 64 characters.
    """
    suffix = f"-g{generation}" if generation else ""
    return f"k3s-{cluster.code.hex}-{kind}"[:MAX_CLIENT_TOKEN - len(suffix)] + suffix


def intend(ctx: StepContext, kind: str) -> CloudResource:
    """The ledger row for this cluster's `kind`, created (and committed) before any call."""
    existing = ctx.cluster.resources.filter(kind=kind).order_by("created_at", "pk").first()
    if existing is not None:
        return existing
    token = client_token(ctx.cluster, kind)
    resource, created = CloudResource.objects.get_or_create(
        client_token=token,
        defaults={"cluster": ctx.cluster, "run": ctx.run, "kind": kind,
                  "region": ctx.cluster.region},
    )
    if created:
        ctx.say(f"Ledger: {kind} intended (ClientToken {token})")
    return resource


def next_token_generation(resource: CloudResource) -> str:
    """Move the row to a new ClientToken (its create was refused for certain); returns it."""
    resource.token_generation += 1
    resource.client_token = client_token(resource.cluster, resource.kind,
                                         resource.token_generation)
    resource.save(update_fields=["token_generation", "client_token", "updated_at"])
    return resource.client_token


def record(resource: CloudResource, *, provider_id: str | None = None,
           state: str | None = None, **attributes: Any) -> None:
    if provider_id:
        resource.provider_id = provider_id
    if state:
        resource.state = state
        if state == ResourceState.DELETED:
            resource.deleted_at = timezone.now()
    resource.attributes = {**resource.attributes, **attributes}
    resource.save()
