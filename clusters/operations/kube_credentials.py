"""Personal kubeconfigs that the owner can revoke: issue one per download, list, revoke.

Why ServiceAccount tokens and not short-lived client certificates: Kubernetes has no
revocation list for client certificates; one signed by the cluster's client CA works until it
expires, and the only way to stop it early is a new client CA for everyone. A bound
ServiceAccount token (TokenRequest API, what `kubectl create token` asks for) is checked on
every request against its ServiceAccount: once the account is deleted, every server answers
401 Unauthorized to its tokens (kube-apiserver's service-account authenticator looks
the account and its UID up; K3s runs the stock one), once each server's 10-second cache of
successful token checks (TokenSuccessCacheTTL) has let it go: within seconds. So each download
gets a ServiceAccount of its own in kube-system, bound to cluster-admin by a ClusterRoleBinding
of the same name (the same rights as the admin kubeconfig it replaces for people), and a token
with the lifetime the owner chose. Revoke deletes the binding and the account.

What Revoke cannot end, and the page says so: cluster-admin can make credentials the panel
never sees (its own ServiceAccount and token, a client certificate signed through a
CertificateSigningRequest, a hostPath pod reading the CA keys). A narrower ClusterRole would
not close that honestly: any right to create pods is an escalation path on a cluster without
Pod Security admission, and these clusters are for their owners to run anything on. So the
download keeps cluster-admin, and the page tells the owner to hand it out only where the admin
kubeconfig could go, and what to look for (or to rebuild) after a leak.

Housekeeping: live credentials are always listed (each has its Revoke); issuing is limited per
person and cluster (ISSUE_LIMIT per hour); an expired credential's account and binding are
deleted from the cluster at the next issue or revoke and by an hourly beat task
(clean_up_all_expired), and the row turns EXPIRED.

Why the panel calls the API itself and not `k3s kubectl` over SSH: the panel already reaches
the API through the SLB with the cluster's admin kubeconfig (verify, health, node removal),
and an Internet-facing API's allow-list must admit the panel. Over SSH, the token would be
printed on a host and pass through a shell; here it only crosses the TLS connection to the API
(verified against the cluster CA) and goes into the one download. No run is needed: three
short API calls, each bounded by the client's timeout, done while the person waits for the
file, so the token never has to be stored. It is not stored; the row keeps its ID (`jti`, the
"credential ID" kube-apiserver writes into its own audit log as `JTI=…`; Kubernetes 1.30 and
later put one in, older clusters' tokens have none, so the account's UID identifies them), the
account's name and UID and the expiry the API answered (which may be shorter than asked, when
the cluster caps token lifetimes).

Failure half-way: the row is written first (ISSUING), then the account, the binding, the
token. If a call fails, what was made is deleted at once; if that fails too, the row stays
ISSUING and is listed with a Revoke button that finishes the job. A Revoke while an issue is
still under way marks the row REVOKED first; the issue's last step turns only an ISSUING row
ACTIVE, so it finds the row taken, deletes what it made and hands no kubeconfig out.
"""

from __future__ import annotations

import contextlib
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import shared_task
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from clusters.adapters.kubeapi import KubeClient
from clusters.core.errors import PermanentError, TransientError
from clusters.k3s import kubeconfig as k3s_kubeconfig
from clusters.models import (
    Cluster,
    ClusterStatus,
    KubeCredential,
    KubeCredentialStatus,
)
from clusters.operations.runs import OperationRefused

NAMESPACE = "kube-system"
# The rights of the admin kubeconfig this download replaces for people (why not narrower: the
# module's docstring; what Revoke cannot end is said on the page).
ROLE = "cluster-admin"
# The lifetimes offered. Kubernetes refuses less than 10 minutes; a month is the longest the
# panel hands out, so a forgotten credential dies on its own (a day is the default: a working
# day's access, and a new download is one click).
LIFETIMES: dict[str, tuple[int, Any]] = {
    "1h": (3600, gettext_lazy("1 hour")),
    "8h": (8 * 3600, gettext_lazy("8 hours")),
    "1d": (86400, gettext_lazy("1 day")),
    "7d": (7 * 86400, gettext_lazy("7 days")),
    "30d": (30 * 86400, gettext_lazy("30 days")),
}
DEFAULT_LIFETIME = "1d"
# Each API call of an issue or a revoke; at most three calls in a row while the person waits.
API_TIMEOUT = 10.0
LIVE = (KubeCredentialStatus.ISSUING, KubeCredentialStatus.ACTIVE)
# Issues per person and cluster in ISSUE_WINDOW (a working day's needs, several times over;
# each makes a ServiceAccount and a binding on the cluster).
ISSUE_LIMIT = 10
ISSUE_WINDOW = timedelta(hours=1)
# kube-apiserver still honours a token for a minute past `exp` (go-jose's leeway): its
# account is deleted only after that.
EXPIRY_LEEWAY = timedelta(seconds=60)
# Expired credentials cleaned up per cluster and round (two API calls each): by the beat, and
# after an issue or a revoke, while the person waits (so only a few then).
CLEANUP_BATCH = 20
CLEANUP_WHILE_WAITING = 3


@dataclass(frozen=True)
class Issued:
    credential: KubeCredential
    kubeconfig: str  # carries the token: for the download only, never stored or logged


def issue_refusal(cluster: Cluster) -> str | None:
    """Why no personal kubeconfig can be issued now, or None."""
    if cluster.status in (ClusterStatus.DESTROYING, ClusterStatus.DESTROYED):
        return _("This cluster is being destroyed or is gone.")
    if not cluster.kubeconfig:
        return _("This cluster has no kubeconfig yet: it is written when the create run "
                 "verifies the API through the SLB.")
    return None


def account_name(username: str) -> str:
    """`panel-<user>-<8 hex>`: whose it is, readable in `kubectl get sa -n kube-system`, and
    unique per download (a DNS label, at most 63 characters)."""
    user = re.sub(r"[^a-z0-9-]+", "-", username.lower()).strip("-")[:40].strip("-") or "user"
    return f"panel-{user}-{secrets.token_hex(4)}"


def _client(cluster: Cluster) -> KubeClient:
    return KubeClient(cluster.kubeconfig, timeout=API_TIMEOUT)


def _remove(client: KubeClient, credential: KubeCredential) -> None:
    """Delete the binding, then the account (its tokens die with it); gone already is fine."""
    client.delete_cluster_role_binding(credential.name)
    client.delete_service_account(credential.namespace, credential.name)


def rate_refusal(cluster: Cluster, user: Any, now: datetime | None = None) -> str | None:
    """Why this person may not issue another kubeconfig for this cluster yet, or None: at
    most ISSUE_LIMIT per ISSUE_WINDOW (each is a ServiceAccount and a binding on the cluster,
    and a token that only Revoke or its expiry ends)."""
    now = now or timezone.now()
    recent = list(KubeCredential.objects.filter(
        cluster=cluster, issued_to=user, created_at__gt=now - ISSUE_WINDOW)
        .order_by("-created_at").values_list("created_at", flat=True)[:ISSUE_LIMIT])
    if len(recent) < ISSUE_LIMIT:
        return None
    minutes = max(1, math.ceil((recent[-1] + ISSUE_WINDOW - now).total_seconds() / 60))
    return ngettext(
        "You issued %(count)d personal kubeconfigs for this cluster in the last hour, the most "
        "allowed. Try again in %(minutes)d minute, or use one you already have.",
        "You issued %(count)d personal kubeconfigs for this cluster in the last hour, the most "
        "allowed. Try again in %(minutes)d minutes, or use one you already have.",
        minutes) % {"count": ISSUE_LIMIT, "minutes": minutes}


def issue(cluster: Cluster, user: Any, lifetime: str) -> Issued:
    """A new ServiceAccount, its binding and a token; the kubeconfig that carries it."""
    refusal = issue_refusal(cluster)
    if refusal:
        raise OperationRefused(refusal)
    if lifetime not in LIFETIMES:
        raise OperationRefused(_("Choose how long the kubeconfig stays valid."))
    seconds = LIFETIMES[lifetime][0]
    username = user.get_username()
    with transaction.atomic():
        # One issue at a time per cluster passes the rate check, so two at once cannot both
        # take the last place.
        Cluster.objects.select_for_update().filter(pk=cluster.pk).first()
        refusal = rate_refusal(cluster, user)
        if refusal:
            raise OperationRefused(refusal)
        credential = KubeCredential.objects.create(
            cluster=cluster, issued_to=user, username=username, namespace=NAMESPACE,
            name=account_name(username), role=ROLE)
    client = _client(cluster)
    mine = KubeCredential.objects.filter(pk=credential.pk, status=KubeCredentialStatus.ISSUING)
    try:
        uid = client.create_service_account(NAMESPACE, credential.name, {
            "k3s-panel/issued-to": username, "k3s-panel/credential": str(credential.pk)})
        mine.update(service_account_uid=uid)
        client.bind_cluster_role(credential.name, ROLE, NAMESPACE, credential.name)
        token, expiration = client.request_token(NAMESPACE, credential.name, seconds)
        claims = k3s_kubeconfig.token_claims(token)
        try:
            expires_at = parse_datetime(expiration)
        except ValueError:
            expires_at = None
        text = k3s_kubeconfig.with_token(cluster.kubeconfig, username, token)
    except (TransientError, PermanentError) as exc:
        _abandon(client, credential, str(exc))
        raise OperationRefused(_("The kubeconfig could not be issued: %(error)s")
                               % {"error": exc}) from None
    # Only a row still ISSUING turns ACTIVE: a Revoke that came while the calls above ran
    # has already marked it REVOKED, and must win (the token is then never handed out).
    activated = mine.update(
        status=KubeCredentialStatus.ACTIVE, service_account_uid=uid,
        token_id=str(claims.get("jti", ""))[:64],
        expires_at=expires_at or timezone.now() + timedelta(seconds=seconds))
    if not activated:
        # The Revoke deleted them too, or its retry will: the row is REVOKED either way.
        with contextlib.suppress(TransientError, PermanentError):
            _remove(client, credential)
        raise OperationRefused(_("This kubeconfig was revoked while it was being issued, so "
                                 "it was not handed out."))
    clean_up_expired(cluster, client, limit=CLEANUP_WHILE_WAITING)
    credential.refresh_from_db()
    return Issued(credential, text)


def _abandon(client: KubeClient, credential: KubeCredential, error: str) -> None:
    """Undo a half-made credential; if that fails too, leave it ISSUING for Revoke."""
    try:
        _remove(client, credential)
    except (TransientError, PermanentError):
        KubeCredential.objects.filter(pk=credential.pk).update(error=error[:500])
        return
    KubeCredential.objects.filter(pk=credential.pk, status=KubeCredentialStatus.ISSUING)\
        .update(status=KubeCredentialStatus.FAILED, error=error[:500])


def revoke_refusal(credential: KubeCredential) -> str | None:
    if credential.status not in LIVE:
        return _("This kubeconfig is already revoked.")
    if credential.cluster.status == ClusterStatus.DESTROYED:
        return _("This cluster is gone, and every credential with it.")
    return None


def revoke(credential: KubeCredential, user: Any) -> KubeCredential:
    """Delete the ServiceAccount and its binding: the token is refused within seconds.

    Safe while an issue of the same row is still under way: the row is marked REVOKED
    first, so the issue's last step (which only turns an ISSUING row ACTIVE) finds it taken,
    deletes what it made and hands nothing out; the deletes here then run again over it."""
    refusal = revoke_refusal(credential)
    if refusal:
        raise OperationRefused(refusal)
    client = _client(credential.cluster)
    issuing = credential.status == KubeCredentialStatus.ISSUING
    if issuing:
        KubeCredential.objects.filter(pk=credential.pk, status__in=LIVE).update(
            status=KubeCredentialStatus.REVOKED, revoked_at=timezone.now(),
            revoked_by=user.get_username())
    try:
        _remove(client, credential)
    except (TransientError, PermanentError) as exc:
        if issuing:  # not handed out, but what it made may still be there: Revoke again
            KubeCredential.objects.filter(pk=credential.pk).update(
                status=KubeCredentialStatus.ISSUING, revoked_at=None, revoked_by="",
                error=str(exc)[:500])
        raise OperationRefused(_("The kubeconfig could not be revoked, so it still works: "
                                 "%(error)s Try again.") % {"error": exc}) from None
    KubeCredential.objects.filter(pk=credential.pk, status__in=LIVE).update(
        status=KubeCredentialStatus.REVOKED, revoked_at=timezone.now(),
        revoked_by=user.get_username())
    clean_up_expired(credential.cluster, client, limit=CLEANUP_WHILE_WAITING)
    credential.refresh_from_db()
    return credential


def expired_on_cluster(cluster: Cluster, now: datetime | None = None) -> list[KubeCredential]:
    """ACTIVE credentials past their expiry (and the API's one-minute leeway): their tokens
    are refused already, but their ServiceAccounts and bindings are still on the cluster."""
    cutoff = (now or timezone.now()) - EXPIRY_LEEWAY
    return list(cluster.kube_credentials.filter(status=KubeCredentialStatus.ACTIVE,
                                                expires_at__lte=cutoff).order_by("pk"))


def clean_up_expired(cluster: Cluster, client: KubeClient | None = None,
                     now: datetime | None = None, limit: int = CLEANUP_BATCH) -> int:
    """Delete the ServiceAccount and binding of each expired credential and mark it EXPIRED;
    one that cannot be deleted now stays ACTIVE (listed, expired, with Revoke) for the next
    round. Runs at each issue and revoke and from the beat (clean_up_all_expired)."""
    if cluster.status == ClusterStatus.DESTROYED or not cluster.kubeconfig:
        return 0
    cleaned = 0
    for credential in expired_on_cluster(cluster, now)[:limit]:
        client = client or _client(cluster)
        try:
            _remove(client, credential)
        except (TransientError, PermanentError):
            return cleaned  # the API does not answer: the next round tries again
        cleaned += KubeCredential.objects.filter(
            pk=credential.pk, status=KubeCredentialStatus.ACTIVE).update(
                status=KubeCredentialStatus.EXPIRED)
    return cleaned


@shared_task(name="clusters.clean_up_expired_kube_credentials", soft_time_limit=300,
             time_limit=360)
def clean_up_all_expired() -> int:
    """The beat's round over every cluster that has expired credentials left on it."""
    cutoff = timezone.now() - EXPIRY_LEEWAY
    clusters = Cluster.objects.filter(
        kube_credentials__status=KubeCredentialStatus.ACTIVE,
        kube_credentials__expires_at__lte=cutoff).exclude(
        status=ClusterStatus.DESTROYED).distinct()
    return sum(clean_up_expired(cluster) for cluster in clusters)


def is_expired(credential: KubeCredential, now: datetime | None = None) -> bool:
    return credential.expires_at is not None and credential.expires_at <= (now or timezone.now())


def audit_details(credential: KubeCredential) -> dict[str, Any]:
    """What the audit trail keeps of a credential: every ID, never the token."""
    return {"credential": credential.pk,
            "service_account": f"{credential.namespace}/{credential.name}",
            "service_account_uid": credential.service_account_uid,
            "token_id": credential.token_id, "role": credential.role,
            "expires_at": credential.expires_at.isoformat() if credential.expires_at else None}
