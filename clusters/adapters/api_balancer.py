"""The load balancer in front of the K3s API, CLB or NLB, behind one interface.

Why: every day-2 step (health, node removal, rolling restarts and upgrades) asks the same
four things of the API's load balancer: who is behind it, who is healthy, take one out, put
one back. A CLB answers at once; an NLB answers with a job and shows the change later. The
steps speak only this interface, and a change that is still settling is reported by
`pending` (the step returns Wait), so neither kind needs an `if` in a step.

Which one a cluster has is `Cluster.load_balancer_kind`; the ledger rows are found by kind
(`slb` for a CLB; `nlb`, `nlb_server_group`, `nlb_listener` for an NLB).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

from django.conf import settings

from clusters.adapters import cloud
from clusters.adapters.aliyun import AliyunCloud, NlbServer
from clusters.adapters.aliyun.nlb import (
    AVAILABLE,
    DRAIN_TIMEOUT_SECONDS,
    JOB_FAILED,
    JOB_SUCCEEDED,
)
from clusters.core.errors import PermanentError
from clusters.models import Cluster, LoadBalancerKind, ResourceState

API_PORT = 6443
SLB_KIND = "slb"
NLB_KIND = "nlb"
NLB_GROUP_KIND = "nlb_server_group"
NLB_LISTENER_KIND = "nlb_listener"
# The ECS security group the NLB joins to carry the API allow-list (steps/nlb.py).
NLB_SECURITY_GROUP_KIND = "nlb_security_group"
NORMAL = "normal"  # the CLB's word for a healthy backend


def ledger_id(cluster: Cluster, kind: str) -> str:
    """The provider id of the cluster's present `kind` row, or ""."""
    row = cluster.resources.filter(kind=kind, state=ResourceState.PRESENT) \
        .exclude(provider_id="").first()
    return row.provider_id if row else ""


class ApiBalancer(ABC):
    """The API's load balancer of one cluster, as the steps see it."""

    what = "load balancer"

    def __init__(self, cluster: Cluster, api: AliyunCloud | None = None) -> None:
        self.cluster = cluster
        self._api = api

    @property
    def api(self) -> AliyunCloud:
        if self._api is None:
            self._api = cloud.cloud_for(self.cluster)
        return self._api

    @property
    @abstractmethod
    def ident(self) -> str:
        """The id people see ("lb-…", "nlb-…/sgp-…"); "" when the ledger has none."""

    @abstractmethod
    def members(self) -> set[str]:
        """ECS instance ids the load balancer sends (or is about to send) the API to."""

    @abstractmethod
    def health(self) -> dict[str, bool]:
        """ECS instance id → healthy, for every member."""

    @abstractmethod
    def add(self, instances: Mapping[str, str]) -> list[str]:
        """Put instances (id → private IP) behind it; the jobs to wait for (may be none)."""

    @abstractmethod
    def remove(self, instances: Mapping[str, str]) -> list[str]:
        """Take instances out; the jobs to wait for (an NLB's end once they drained)."""

    def drain_seconds(self) -> float:
        """How long a step waits after `remove` before it looks whether the server drained:
        real load balancers need a few seconds for a backend change to reach every node of
        the load balancer; connections get that long to finish (PANEL_SLB_DRAIN_SECONDS)."""
        return float(settings.PANEL_SLB_DRAIN_SECONDS)

    def pending(self, jobs: list[str]) -> str | None:
        """What is still settling from `jobs` (None when done); PermanentError when one
        failed at Alibaba."""
        return None


class Clb(ApiBalancer):
    """A CLB: changes take effect in the answer; drained by waiting a few seconds."""

    what = "SLB"

    @property
    def ident(self) -> str:
        return ledger_id(self.cluster, SLB_KIND)

    def _id(self) -> str:
        balancer_id = self.ident
        if not balancer_id:
            raise PermanentError("The SLB has not been created yet.")
        return balancer_id

    def members(self) -> set[str]:
        balancer = self.api.describe_slb(self._id())
        return {b.server_id for b in balancer.backend_servers} if balancer else set()

    def health(self) -> dict[str, bool]:
        return {h.server_id: h.status == NORMAL
                for h in self.api.describe_health_status(self._id(), API_PORT)}

    def add(self, instances: Mapping[str, str]) -> list[str]:
        self.api.add_backend_servers(self._id(), list(instances))
        return []

    def remove(self, instances: Mapping[str, str]) -> list[str]:
        self.api.remove_backend_servers(self._id(), list(instances))
        return []


class NlbBalancer(ApiBalancer):
    """An NLB's server group: every change is a job; a removed server drains first.

    The server group's connection drain (ConnectionDrainTimeout) makes the removal job end
    only once the server's connections have closed or the timeout passed, so `pending`
    is the drain wait: no fixed sleep is needed on top.
    """

    what = "NLB"


    @property
    def ident(self) -> str:
        return ledger_id(self.cluster, NLB_GROUP_KIND)

    def group_id(self) -> str:
        group = self.ident
        if not group:
            raise PermanentError("The NLB's server group has not been created yet.")
        return group

    def members(self) -> set[str]:
        return {s.server_id for s in self.api.list_servers(self.group_id())
                if s.status != "Removing"}

    def health(self, servers: list[NlbServer] | None = None) -> dict[str, bool]:
        """`servers`: the group's servers as a region-wide listing just read them (the health
        round's batch, clusters/adapters/health.py); None: ListServerGroupServers here."""
        listener = ledger_id(self.cluster, NLB_LISTENER_KIND)
        group = self.group_id()
        if servers is None:
            servers = self.api.list_servers(group)
        bad = self.api.listener_unhealthy(listener) if listener else {}
        return {s.server_id: (s.status == AVAILABLE and s.server_id not in bad
                              and bool(listener))
                for s in servers if s.status != "Removing"}

    def add(self, instances: Mapping[str, str]) -> list[str]:
        return self.api.add_servers(self.group_id(), instances, API_PORT)

    def remove(self, instances: Mapping[str, str]) -> list[str]:
        return self.api.remove_servers(self.group_id(), instances, API_PORT)

    def pending(self, jobs: list[str]) -> str | None:
        busy = []
        for job in jobs:
            status = self.api.job_status(job)
            if status == JOB_FAILED:
                raise PermanentError(f"NLB job {job} failed at Alibaba Cloud; see the NLB "
                                     "console's operation log, then press Retry.")
            if status != JOB_SUCCEEDED:
                busy.append(job)
        if busy:
            return (f"NLB job(s) {', '.join(busy)} still running (a removed server drains "
                    f"for up to {DRAIN_TIMEOUT_SECONDS} s)")
        moving = [s.server_ip or s.server_id for s in self.api.list_servers(self.group_id())
                  if s.status not in (AVAILABLE,)]
        if moving:
            return f"NLB servers still changing: {', '.join(moving)}"
        return None


def for_cluster(cluster: Cluster, api: AliyunCloud | None = None) -> ApiBalancer:
    """The cluster's API load balancer (a CLB unless it was created with an NLB)."""
    if cluster.load_balancer_kind == LoadBalancerKind.NLB:
        return NlbBalancer(cluster, api)
    return Clb(cluster, api)
