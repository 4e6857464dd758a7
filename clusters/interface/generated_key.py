"""The generated SSH private key of a cluster's instances, handed to its owner (the page's
download and the API's), audited the same way.

Why here, not in each caller: the mark on the cluster (which lets "keep the instances" go
ahead) and the audit row must be written together or not at all, whichever door was used.
Callers turn a refusal into a message or a 409.
"""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest

from clusters import operations
from clusters.interface import audit
from clusters.models import AuditAction, Cluster


def take(request: HttpRequest, cluster: Cluster) -> tuple[str, str]:
    """(the private key, its MD5 fingerprint), the download recorded and audited with the
    fingerprint, never the key; raises operations.OperationRefused."""
    with transaction.atomic():
        key, fingerprint = operations.take_generated_key(cluster)
        audit.record(request, AuditAction.SSH_KEY_DOWNLOAD, cluster, fingerprint=fingerprint)
    return key, fingerprint
