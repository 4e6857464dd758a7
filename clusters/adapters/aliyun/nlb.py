"""Network Load Balancer (Nlb 2022-04-30) calls for the K3s API: an NLB in two zones, a TCP
server group of the servers' ECS instances, a TCP 6443 listener.

Sent with aliyunsdkcore's CommonRequest (no aliyun-python-sdk-nlb dependency: its 1.0.x
request classes add nothing the CommonRequest lacks, and every other call here already goes
through the same fail-closed client). Parameter names and answer shapes follow the V2 models
of alibabacloud-nlb20220430 (RPC style, POST): nested parameters are flattened as the V2
client's `Utils.query` does (ZoneMappings.1.VSwitchId, HealthCheckConfig.HealthCheckType,
Servers.1.ServerId, Tag.1.Key).

Every change is asynchronous at Alibaba: CreateServerGroup, AddServersToServerGroup,
RemoveServersFromServerGroup, CreateListener and the deletes answer a JobId (GetJobStatus:
Processing / Succeeded / Failed), and the resource shows its own status (LoadBalancerStatus
Active, ServerGroupStatus Available, ListenerStatus Running, a server Available). The calls
here return at once; the steps wait by returning Wait.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aliyunsdkcore.request import CommonRequest

from clusters.adapters.aliyun.client import AliyunClient, check_client_token
from clusters.adapters.aliyun.errors import CloudNotFound

NLB_PRODUCT = "Nlb"
NLB_VERSION = "2022-04-30"
API_PORT = 6443
PAGE_SIZE = 100  # MaxResults: 1-100 (V2 model comments)
MAX_PAGES = 100
SERVER_BATCH = 200  # AddServersToServerGroup takes at most 200 servers per call (API reference)
JOB_SUCCEEDED = "Succeeded"
JOB_FAILED = "Failed"
ACTIVE = "Active"           # LoadBalancerStatus
AVAILABLE = "Available"     # ServerGroupStatus, a server's Status
RUNNING = "Running"         # ListenerStatus
# GetListenerHealthStatus lists only the servers that are NOT normal (NonNormalServers);
# their Status is Unhealthy, Unused or Unavailable. A server absent from it is healthy.
HEALTHY = "Healthy"
# How long a removed server's open connections may run on (ConnectionDrainTimeout 10-900 s):
# the RemoveServersFromServerGroup job finishes once they have ended or this passed.
DRAIN_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class NlbZone:
    zone_id: str
    vswitch_id: str
    private_ip: str = ""
    public_ip: str = ""


@dataclass(frozen=True)
class Nlb:
    load_balancer_id: str
    status: str           # Inactive / Active / Provisioning / Configuring / Deleting / Deleted
    dns_name: str
    address_type: str     # Internet / Intranet
    zones: tuple[NlbZone, ...]
    security_group_ids: tuple[str, ...] = ()

    @property
    def addresses(self) -> list[str]:
        """Every per-zone address the NLB answers on (private, and public when Internet)."""
        found = [z.private_ip for z in self.zones] + [z.public_ip for z in self.zones]
        return [ip for ip in found if ip]


@dataclass(frozen=True)
class NlbServerGroup:
    server_group_id: str
    status: str           # Creating / Available / Configuring
    preserve_client_ip: bool


@dataclass(frozen=True)
class NlbServer:
    server_id: str
    server_ip: str
    port: int
    status: str           # Adding / Available / Configuring / Removing


@dataclass(frozen=True)
class NlbListener:
    listener_id: str
    port: int
    protocol: str
    status: str           # Provisioning / Running / Configuring / Stopping / Stopped ...
    server_group_id: str


def _list(body: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    """`body[key]` as a list of objects (NLB answers plain JSON arrays, no wrapper)."""
    value = body.get(key) or []
    return [entry for entry in (value if isinstance(value, list) else [value])
            if isinstance(entry, dict)]


def _domain(region: str) -> str:
    """NLB's regional endpoint (V2 client endpoint rule: nlb.<region>.aliyuncs.com); the
    client's override replaces it whenever one is configured (fail closed)."""
    return f"nlb.{region}.aliyuncs.com"


def _prepare(request: CommonRequest, region: str, params: Mapping[str, Any]) -> CommonRequest:
    request.set_method("POST")
    request.set_accept_format("json")
    request.add_query_param("RegionId", region)
    for key, value in params.items():
        if value is None:
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        request.add_query_param(key, text)
    return request


def _tags(tags: Mapping[str, str] | None) -> dict[str, str]:
    flat: dict[str, str] = {}
    for index, (key, value) in enumerate((tags or {}).items(), start=1):
        flat[f"Tag.{index}.Key"] = key
        flat[f"Tag.{index}.Value"] = value
    return flat


def _nlb(body: Mapping[str, Any]) -> Nlb:
    zones = []
    for zone in _list(body, "ZoneMappings"):
        addresses = _list(zone, "LoadBalancerAddresses")
        first = addresses[0] if addresses else {}
        zones.append(NlbZone(str(zone.get("ZoneId", "")), str(zone.get("VSwitchId", "")),
                             str(first.get("PrivateIPv4Address") or ""),
                             str(first.get("PublicIPv4Address") or "")))
    return Nlb(str(body.get("LoadBalancerId", "")), str(body.get("LoadBalancerStatus", "")),
               str(body.get("DNSName", "")), str(body.get("AddressType", "")), tuple(zones),
               tuple(str(g) for g in body.get("SecurityGroupIds") or []))


@dataclass(frozen=True)
class RegionServers:
    """A region's servers by ServerGroupId (ListServerGroupServers without a group), and
    whether the listing reached its last page."""

    groups: dict[str, list[NlbServer]]
    complete: bool


class NlbApi:
    client: AliyunClient

    def _paged(self, build: Any, path: str) -> list[dict[str, Any]]:
        """Every item of a NextToken/MaxResults listing (`build(token)` sends one page)."""
        return self._paged_upto(build, path, MAX_PAGES)[0]

    @staticmethod
    def _paged_upto(build: Any, path: str, max_pages: int) -> tuple[list[dict[str, Any]], bool]:
        """At most `max_pages` pages; and whether that was all (no NextToken left)."""
        collected: list[dict[str, Any]] = []
        token = ""
        for _page in range(max_pages):
            body = build(token)
            collected.extend(_list(body, path))
            token = str(body.get("NextToken") or "")
            if not token:
                return collected, True
        return collected, False

    # ---- the load balancer ----------------------------------------------------------------
    def nlb_zones(self) -> list[str]:
        """NLB's DescribeZones: the region's zones where an NLB may have a ZoneMapping. Not
        every ECS zone sells NLB; a mapping in another is refused at CreateLoadBalancer
        (UnauthorizedZone), after the instances are bought (V2 alibabacloud_nlb20220430
        DescribeZonesResponseBody.zones[].zone_id)."""
        request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                action_name="DescribeZones", product=NLB_PRODUCT)
        body = self.client.call(_prepare(request, self.client.region, {}))
        return [str(z.get("ZoneId")) for z in _list(body, "Zones") if z.get("ZoneId")]

    def create_nlb(self, *, name: str, vpc_id: str, address_type: str,
                   zones: Iterable[tuple[str, str]], client_token: str,
                   tags: Mapping[str, str] | None = None) -> str:
        """CreateLoadBalancer (Network, IPv4, pay-as-you-go) in the given (zone, vSwitch)
        pairs; answers the id at once, the NLB becomes Active later."""
        check_client_token(client_token)
        params: dict[str, Any] = {
            "LoadBalancerType": "Network", "AddressType": address_type,
            "AddressIpVersion": "ipv4", "VpcId": vpc_id, "LoadBalancerName": name,
            "LoadBalancerBillingConfig.PayType": "PostPay", "ClientToken": client_token,
            **_tags(tags)}
        for index, (zone_id, vswitch_id) in enumerate(zones, start=1):
            params[f"ZoneMappings.{index}.ZoneId"] = zone_id
            params[f"ZoneMappings.{index}.VSwitchId"] = vswitch_id
        request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                action_name="CreateLoadBalancer", product=NLB_PRODUCT)
        body = self.client.call(_prepare(request, self.client.region, params))
        # The V2 model spells this one key "LoadbalancerId" (lower-case b).
        return str(body.get("LoadbalancerId") or body.get("LoadBalancerId") or "")

    def describe_nlb(self, load_balancer_id: str) -> Nlb | None:
        """GetLoadBalancerAttribute; None once the NLB is gone."""
        request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                action_name="GetLoadBalancerAttribute", product=NLB_PRODUCT)
        try:
            body = self.client.call(_prepare(request, self.client.region,
                                             {"LoadBalancerId": load_balancer_id}))
        except CloudNotFound:
            return None
        return _nlb(body)

    def find_nlb_by_tag(self, key: str, value: str) -> list[Nlb]:
        """ListLoadBalancers filtered by Tag.1 (every page)."""
        def page(token: str) -> dict[str, Any]:
            request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                    action_name="ListLoadBalancers", product=NLB_PRODUCT)
            return self.client.call(_prepare(request, self.client.region, {
                **_tags({key: value}), "MaxResults": PAGE_SIZE, "NextToken": token or None}))

        return [_nlb(lb) for lb in self._paged(page, "LoadBalancers")
                if lb.get("LoadBalancerStatus") != "Deleted"]

    def delete_nlb(self, load_balancer_id: str, client_token: str = "") -> str | None:
        """DeleteLoadBalancer: its JobId, or None when it was already gone."""
        request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                action_name="DeleteLoadBalancer", product=NLB_PRODUCT)
        try:
            body = self.client.call(_prepare(request, self.client.region, {
                "LoadBalancerId": load_balancer_id, "ClientToken": client_token or None}))
        except CloudNotFound:
            return None
        return str(body.get("JobId", ""))

    def join_security_groups(self, load_balancer_id: str, group_ids: Iterable[str],
                             client_token: str = "") -> str:
        """LoadBalancerJoinSecurityGroup: its JobId. The NLB's listeners filter new
        connections with the groups' ingress rules once the job has Succeeded."""
        request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                action_name="LoadBalancerJoinSecurityGroup", product=NLB_PRODUCT)
        return self._security_groups(request, load_balancer_id, group_ids, client_token)

    def leave_security_groups(self, load_balancer_id: str, group_ids: Iterable[str],
                              client_token: str = "") -> str:
        """LoadBalancerLeaveSecurityGroup: its JobId."""
        request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                action_name="LoadBalancerLeaveSecurityGroup",
                                product=NLB_PRODUCT)
        return self._security_groups(request, load_balancer_id, group_ids, client_token)

    def _security_groups(self, request: CommonRequest, load_balancer_id: str,
                         group_ids: Iterable[str], client_token: str) -> str:
        params: dict[str, Any] = {"LoadBalancerId": load_balancer_id,
                                  "ClientToken": client_token or None}
        for index, group_id in enumerate(group_ids, start=1):
            params[f"SecurityGroupIds.{index}"] = group_id
        body = self.client.call(_prepare(request, self.client.region, params))
        return str(body.get("JobId", ""))

    # ---- jobs -------------------------------------------------------------------------------
    def job_status(self, job_id: str) -> str:
        """GetJobStatus: Processing, Succeeded or Failed."""
        request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                action_name="GetJobStatus", product=NLB_PRODUCT)
        request.set_method("POST")
        request.set_accept_format("json")
        request.add_query_param("JobId", job_id)
        return str(self.client.call(request).get("Status", ""))

    # ---- server groups ----------------------------------------------------------------------
    def create_server_group(self, *, name: str, vpc_id: str, port: int, client_token: str,
                            preserve_client_ip: bool,
                            tags: Mapping[str, str] | None = None) -> tuple[str, str]:
        """CreateServerGroup: TCP, ECS instances by id (ServerGroupType Instance), a TCP
        health check on `port`, connection drain on. Returns (ServerGroupId, JobId)."""
        check_client_token(client_token)
        request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                action_name="CreateServerGroup", product=NLB_PRODUCT)
        body = self.client.call(_prepare(request, self.client.region, {
            "ServerGroupName": name, "ServerGroupType": "Instance", "Protocol": "TCP",
            "VpcId": vpc_id, "AddressIPVersion": "ipv4", "Scheduler": "Wrr",
            "PreserveClientIpEnabled": preserve_client_ip,
            "ConnectionDrainEnabled": True, "ConnectionDrainTimeout": DRAIN_TIMEOUT_SECONDS,
            "HealthCheckConfig.HealthCheckEnabled": True,
            "HealthCheckConfig.HealthCheckType": "TCP",
            "HealthCheckConfig.HealthCheckConnectPort": port,
            "HealthCheckConfig.HealthCheckConnectTimeout": 5,
            "HealthCheckConfig.HealthCheckInterval": 5,
            "HealthCheckConfig.HealthyThreshold": 2, "HealthCheckConfig.UnhealthyThreshold": 2,
            "ClientToken": client_token, **_tags(tags)}))
        return str(body.get("ServerGroupId", "")), str(body.get("JobId", ""))

    def find_server_groups_by_tag(self, key: str, value: str) -> list[NlbServerGroup]:
        def page(token: str) -> dict[str, Any]:
            request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                    action_name="ListServerGroups", product=NLB_PRODUCT)
            return self.client.call(_prepare(request, self.client.region, {
                **_tags({key: value}), "MaxResults": PAGE_SIZE, "NextToken": token or None}))

        return [_group(g) for g in self._paged(page, "ServerGroups")]

    def describe_server_group(self, server_group_id: str) -> NlbServerGroup | None:
        """ListServerGroups for one id (NLB has no GetServerGroupAttribute)."""
        request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                action_name="ListServerGroups", product=NLB_PRODUCT)
        body = self.client.call(_prepare(request, self.client.region,
                                         {"ServerGroupIds.1": server_group_id}))
        found = [_group(g) for g in _list(body, "ServerGroups")
                 if g.get("ServerGroupId") == server_group_id]
        return found[0] if found else None

    def list_servers(self, server_group_id: str) -> list[NlbServer]:
        """ListServerGroupServers (every page)."""
        def page(token: str) -> dict[str, Any]:
            request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                    action_name="ListServerGroupServers", product=NLB_PRODUCT)
            return self.client.call(_prepare(request, self.client.region, {
                "ServerGroupId": server_group_id, "MaxResults": PAGE_SIZE,
                "NextToken": token or None}))

        return [NlbServer(str(s.get("ServerId", "")), str(s.get("ServerIp", "")),
                          int(s.get("Port") or 0), str(s.get("Status", "")))
                for s in self._paged(page, "Servers")]

    def list_region_servers(self, *, page_size: int = PAGE_SIZE,
                            max_pages: int = MAX_PAGES) -> RegionServers:
        """ListServerGroupServers with no ServerGroupId: every server group's servers in the
        region at once, MaxResults 100 a page, by ServerGroupId. ServerGroupId is optional
        (V2 model `ListServerGroupServersRequest`: no "This parameter is required"), and each
        answered server names its group (`ServerGroupId` in the V2 response's Servers).

        Stopped after `max_pages` with a NextToken still given, the listing is `complete`
        False: the API promises no order by group, so any group may be missing servers
        that a later page held, and the caller must not judge a group from it."""
        def page(token: str) -> dict[str, Any]:
            request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                    action_name="ListServerGroupServers", product=NLB_PRODUCT)
            return self.client.call(_prepare(request, self.client.region, {
                "MaxResults": page_size, "NextToken": token or None}))

        listed, complete = self._paged_upto(page, "Servers", max_pages)
        grouped: dict[str, list[NlbServer]] = {}
        for s in listed:
            grouped.setdefault(str(s.get("ServerGroupId", "")), []).append(NlbServer(
                str(s.get("ServerId", "")), str(s.get("ServerIp", "")),
                int(s.get("Port") or 0), str(s.get("Status", ""))))
        return RegionServers(grouped, complete)

    def add_servers(self, server_group_id: str, instances: Mapping[str, str], port: int,
                    client_token: str = "") -> list[str]:
        """AddServersToServerGroup, ECS instances by id (ServerType Ecs); the JobIds."""
        jobs = []
        chosen = list(instances.items())
        for start in range(0, len(chosen), SERVER_BATCH):
            token = f"{client_token}-{start}"[:64] if client_token else None
            params: dict[str, Any] = {"ServerGroupId": server_group_id, "ClientToken": token}
            for index, (instance_id, ip) in enumerate(chosen[start:start + SERVER_BATCH], 1):
                params.update({f"Servers.{index}.ServerId": instance_id,
                               f"Servers.{index}.ServerType": "Ecs",
                               f"Servers.{index}.ServerIp": ip,
                               f"Servers.{index}.Port": port,
                               f"Servers.{index}.Weight": 100})
            request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                    action_name="AddServersToServerGroup", product=NLB_PRODUCT)
            jobs.append(str(self.client.call(
                _prepare(request, self.client.region, params)).get("JobId", "")))
        return jobs

    def remove_servers(self, server_group_id: str, instances: Mapping[str, str], port: int,
                       client_token: str = "") -> list[str]:
        """RemoveServersFromServerGroup; its job ends once the servers have drained."""
        jobs = []
        chosen = list(instances.items())
        for start in range(0, len(chosen), SERVER_BATCH):
            token = f"{client_token}-{start}"[:64] if client_token else None
            params: dict[str, Any] = {"ServerGroupId": server_group_id, "ClientToken": token}
            for index, (instance_id, ip) in enumerate(chosen[start:start + SERVER_BATCH], 1):
                params.update({f"Servers.{index}.ServerId": instance_id,
                               f"Servers.{index}.ServerType": "Ecs",
                               f"Servers.{index}.ServerIp": ip,
                               f"Servers.{index}.Port": port})
            request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                    action_name="RemoveServersFromServerGroup",
                                    product=NLB_PRODUCT)
            jobs.append(str(self.client.call(
                _prepare(request, self.client.region, params)).get("JobId", "")))
        return jobs

    def delete_server_group(self, server_group_id: str, client_token: str = "") -> str | None:
        """DeleteServerGroup: its JobId, or None when already gone. Still used by a listener
        (ResourceInUse.ServerGroup) is transient: the listener's delete is settling."""
        request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                action_name="DeleteServerGroup", product=NLB_PRODUCT)
        try:
            body = self.client.call(_prepare(request, self.client.region, {
                "ServerGroupId": server_group_id, "ClientToken": client_token or None}))
        except CloudNotFound:
            return None
        return str(body.get("JobId", ""))

    # ---- listeners --------------------------------------------------------------------------
    def create_listener(self, *, load_balancer_id: str, server_group_id: str, port: int,
                        client_token: str, tags: Mapping[str, str] | None = None
                        ) -> tuple[str, str]:
        """CreateListener TCP `port` → the server group; (ListenerId, JobId)."""
        check_client_token(client_token)
        request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                action_name="CreateListener", product=NLB_PRODUCT)
        body = self.client.call(_prepare(request, self.client.region, {
            "LoadBalancerId": load_balancer_id, "ListenerProtocol": "TCP",
            "ListenerPort": port, "ServerGroupId": server_group_id,
            "ListenerDescription": f"k3s-api-{port}", "ClientToken": client_token,
            **_tags(tags)}))
        return str(body.get("ListenerId", "")), str(body.get("JobId", ""))

    def find_listeners(self, load_balancer_id: str) -> list[NlbListener]:
        """ListListeners of one NLB (every page)."""
        def page(token: str) -> dict[str, Any]:
            request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                    action_name="ListListeners", product=NLB_PRODUCT)
            return self.client.call(_prepare(request, self.client.region, {
                "LoadBalancerIds.1": load_balancer_id, "MaxResults": PAGE_SIZE,
                "NextToken": token or None}))

        return [NlbListener(str(x.get("ListenerId", "")), int(x.get("ListenerPort") or 0),
                            str(x.get("ListenerProtocol", "")), str(x.get("ListenerStatus", "")),
                            str(x.get("ServerGroupId", "")))
                for x in self._paged(page, "Listeners")]

    def describe_listener(self, listener_id: str) -> NlbListener | None:
        """GetListenerAttribute; None once gone."""
        request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                action_name="GetListenerAttribute", product=NLB_PRODUCT)
        try:
            x = self.client.call(_prepare(request, self.client.region,
                                          {"ListenerId": listener_id}))
        except CloudNotFound:
            return None
        return NlbListener(str(x.get("ListenerId", "")), int(x.get("ListenerPort") or 0),
                           str(x.get("ListenerProtocol", "")), str(x.get("ListenerStatus", "")),
                           str(x.get("ServerGroupId", "")))

    def listener_unhealthy(self, listener_id: str) -> dict[str, str]:
        """GetListenerHealthStatus: {server id: status} of the servers that are NOT normal
        (the answer lists only those, NonNormalServers)."""
        # The V2 request takes ListenerId and RegionId only (no paging parameters).
        request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                action_name="GetListenerHealthStatus", product=NLB_PRODUCT)
        body = self.client.call(_prepare(request, self.client.region,
                                         {"ListenerId": listener_id}))
        bad: dict[str, str] = {}
        for status in _list(body, "ListenerHealthStatus"):
            for group in _list(status, "ServerGroupInfos"):
                for server in _list(group, "NonNormalServers"):
                    bad[str(server.get("ServerId", ""))] = str(server.get("Status", ""))
        return bad

    def delete_listener(self, listener_id: str, client_token: str = "") -> str | None:
        """DeleteListener: its JobId, or None when already gone."""
        request = CommonRequest(domain=_domain(self.client.region), version=NLB_VERSION,
                                action_name="DeleteListener", product=NLB_PRODUCT)
        try:
            body = self.client.call(_prepare(request, self.client.region, {
                "ListenerId": listener_id, "ClientToken": client_token or None}))
        except CloudNotFound:
            return None
        return str(body.get("JobId", ""))


def _group(body: Mapping[str, Any]) -> NlbServerGroup:
    return NlbServerGroup(str(body.get("ServerGroupId", "")),
                          str(body.get("ServerGroupStatus", "")),
                          bool(body.get("PreserveClientIpEnabled")))
