"""One K3s release per cluster: a channel is resolved once, when the create starts, and every
node after that installs exactly that release.

Why: a channel moves (stable went from v1.36.2 to v1.36.4 in 2026). Installing each host with
`INSTALL_K3S_CHANNEL=stable` lets a node added months later install whatever stable is by
then: two K3s versions in one HA control plane, which the skew policy forbids for servers.
So the panel asks the install source's channel server once, as K3s's install script does
(`get_release_version`), records the answer on the cluster, and from then on passes only
`INSTALL_K3S_VERSION`. Upgrade is the only operation that changes it. What each node runs is
read back from the Kubernetes API (`status.nodeInfo.kubeletVersion`), never copied.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Callable

from django.db.models import Q

from clusters.adapters import clusterconfig, wizard_checks
from clusters.adapters.kubeapi import NodeState
from clusters.core.errors import PermanentError, StepError, TransientError
from clusters.k3s.versions import parse_version, release_from_channel_answer
from clusters.models import Cluster, InstallSource, Node, NodeStatus

CHANNEL_LOOKUP_TIMEOUT = 8.0
CONTROL_PLANE_ROLE = "control-plane"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Keep the redirect itself: its Location names the release (update.k3s.io)."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def source_label(cluster: Cluster) -> str:
    if cluster.install_source == InstallSource.CUSTOM:
        return cluster.install_base_url
    return str(InstallSource(cluster.install_source).label)


def channel_url(cluster: Cluster, channel: str) -> str:
    """update.k3s.io/v1-release/channels/<name> or the mirror's /k3s/channels/<name>."""
    return wizard_checks.release_probe_url(cluster.install_source, cluster.install_base_url,
                                           "", channel)


def resolve_channel(cluster: Cluster, channel: str) -> str:
    """The exact release `channel` points at now, at the cluster's install source.

    PermanentError when the source says the channel does not exist or answers something that
    names no release; TransientError when it cannot be reached or fails (5xx), so the step
    tries again a few times and then fails with the last reason.
    """
    url = channel_url(cluster, channel)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
    request = urllib.request.Request(url, headers={"User-Agent": "k3s-ha-panel"})  # noqa: S310
    where = f"{source_label(cluster)} ({url})"
    try:
        with opener.open(request, timeout=CHANNEL_LOOKUP_TIMEOUT) as response:
            status, location = response.status, ""
            body = response.read(200).decode(errors="replace")
    except urllib.error.HTTPError as exc:
        status, location, body = exc.code, exc.headers.get("Location", "") or "", ""
        if status in (404, 410):
            raise PermanentError(f"K3s channel {channel} does not exist at {where}: HTTP "
                                 f"{status}. Choose another channel or an exact version."
                                 ) from None
        if status >= 500:
            raise TransientError(f"{where} answered HTTP {status} for K3s channel "
                                 f"{channel}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TransientError(f"The panel could not reach {where} to resolve K3s channel "
                             f"{channel}: {reason}") from None
    version = release_from_channel_answer(status, location, body)
    if version is None:
        shown = location or body.strip()[:80] or "an empty answer"
        raise PermanentError(f"{where} answered HTTP {status} for K3s channel {channel} "
                             f"with {shown!r}, which names no K3s release.")
    return version


def anything_installed(cluster: Cluster) -> bool:
    """Has any host of this cluster been given K3s yet (by any run)? Then the release is
    fixed: resolving the channel again could split the cluster across two releases."""
    members = cluster.nodes.present()
    return members.filter(~Q(status=NodeStatus.PENDING) | ~Q(k3s_version="")).exists()


def servers_release(states: list[NodeState]) -> str:
    """The one release the control plane runs, as the API shows it; PermanentError if the
    servers disagree (then only an upgrade can bring them together)."""
    versions = sorted({s.version for s in states if CONTROL_PLANE_ROLE in s.roles and s.version})
    if len(versions) > 1:
        raise PermanentError(f"The servers run different K3s releases ({', '.join(versions)}); "
                             "upgrade them to one release before adding nodes.")
    if not versions:
        raise PermanentError("The Kubernetes API lists no server with a K3s version; the panel "
                             "cannot tell which release new nodes must install.")
    return str(parse_version(versions[0]))


def pin_release(cluster: Cluster, say: Callable[[str], None]) -> str:
    """Make sure `cluster.k3s_version` names the exact release every node installs.

    A cluster that already has K3s on a host keeps its release (one created before pinning
    existed learns it from the API); otherwise a chosen channel is resolved now, and a Retry
    of this step before any install resolves it again.
    """
    if anything_installed(cluster):
        if not cluster.k3s_version:
            cluster.k3s_version = servers_release(clusterconfig.api_client(cluster).nodes())
            Cluster.objects.filter(pk=cluster.pk).update(k3s_version=cluster.k3s_version)
            say(f"The servers run K3s {cluster.k3s_version} (read from the Kubernetes API); "
                "the cluster is pinned to it from now on")
        say(f"New nodes install K3s {cluster.k3s_version}, the release this cluster runs")
        return cluster.k3s_version
    if not cluster.k3s_channel:
        if not cluster.k3s_version:
            raise PermanentError("The cluster names neither a K3s version nor a channel.")
        version = str(parse_version(cluster.k3s_version))
        say(f"K3s {version} (chosen as an exact version)")
        return version
    version = resolve_channel(cluster, cluster.k3s_channel)
    cluster.k3s_version = version
    Cluster.objects.filter(pk=cluster.pk).update(k3s_version=version)
    say(f"Channel {cluster.k3s_channel} at {source_label(cluster)} points at {version}: every "
        f"server, agent and later added node installs exactly {version}")
    return version


def pinned_version(cluster: Cluster) -> str:
    """The release an install must use; PermanentError when none was pinned (an install
    must never fall back to following a channel)."""
    if not cluster.k3s_version:
        raise PermanentError("The cluster's K3s release is not pinned yet; press Retry on the "
                             "run so its first step resolves the channel.")
    return str(parse_version(cluster.k3s_version))


def record_running_versions(cluster: Cluster, states: list[NodeState]) -> dict[str, str]:
    """Store on each member the version the API says its kubelet runs; {name: version}."""
    by_name = {s.name: s.version for s in states if s.version}
    for node in cluster.nodes.present().exclude(name=""):
        running = by_name.get(node.name)
        if running and running != node.k3s_version:
            Node.objects.filter(pk=node.pk).update(k3s_version=running)
    return by_name


def off_release(cluster: Cluster, states: list[NodeState], names: set[str]) -> list[str]:
    """'name runs vX' for each of `names` the API shows on another release than the pin."""
    if not cluster.k3s_version:
        return []
    pinned = str(parse_version(cluster.k3s_version))
    return [f"{s.name} runs {s.version}" for s in states
            if s.name in names and s.version and s.version != pinned]


def api_states(cluster: Cluster) -> list[NodeState] | None:
    """The API's node list through the SLB, or None when it cannot be read right now."""
    try:
        return clusterconfig.api_client(cluster).nodes()
    except StepError:
        return None
