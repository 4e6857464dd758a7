"""Accepting a node's new SSH host key: the owner's remedy when a host key changed.

Why an operation: a changed key makes every step refuse the host (someone may be in the
middle), and the fix must not be "clear it in the Django admin and trust whatever comes
next". The owner scans the host, compares the fingerprint shown with the host's own
(`ssh-keygen -lf`), and accepts exactly that fingerprint; a host presenting any other key
afterwards is refused again. Only while no run is going: a running step holds the old pin.
"""

from __future__ import annotations

import re

from django.db import transaction
from django.utils.translation import gettext as _

from clusters.models import Cluster, ClusterStatus, Node, NodeStatus
from clusters.operations.runs import OperationRefused

FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")


def host_key_refusal(cluster: Cluster, node: Node) -> str | None:
    """Why the owner may not change this node's pinned key now, or None."""
    if cluster.status == ClusterStatus.DESTROYED or node.status == NodeStatus.REMOVED:
        return _("This node is no longer part of the cluster.")
    if not cluster.is_idle:
        return _("This cluster has a run in progress: change a host key when it has finished.")
    return None


def accept_host_key(cluster: Cluster, node: Node, fingerprint: str) -> str:
    """Pin `fingerprint` (the one the owner confirmed) for `node`; returns the previous pin."""
    if not FINGERPRINT.fullmatch(fingerprint):
        raise OperationRefused(_("%(value)s is not an SSH SHA256 fingerprint.")
                               % {"value": fingerprint[:80]})
    with transaction.atomic():
        locked = Cluster.objects.select_for_update().get(pk=cluster.pk)
        current = Node.objects.select_for_update().get(pk=node.pk, cluster=locked)
        refusal = host_key_refusal(locked, current)  # the locked row: is_idle asked afresh
        if refusal:
            raise OperationRefused(refusal)
        previous = current.host_key
        Node.objects.filter(pk=current.pk).update(host_key=fingerprint)
    return previous
