"""Classic SLB calls for the K3s API load balancer (API 2014-05-15): TCP 6443 → servers."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from aliyunsdkslb.request.v20140515.AddAccessControlListEntryRequest import (
    AddAccessControlListEntryRequest,
)
from aliyunsdkslb.request.v20140515.AddBackendServersRequest import AddBackendServersRequest
from aliyunsdkslb.request.v20140515.CreateAccessControlListRequest import (
    CreateAccessControlListRequest,
)
from aliyunsdkslb.request.v20140515.CreateLoadBalancerRequest import CreateLoadBalancerRequest
from aliyunsdkslb.request.v20140515.CreateLoadBalancerTCPListenerRequest import (
    CreateLoadBalancerTCPListenerRequest,
)
from aliyunsdkslb.request.v20140515.DeleteAccessControlListRequest import (
    DeleteAccessControlListRequest,
)
from aliyunsdkslb.request.v20140515.DeleteLoadBalancerRequest import DeleteLoadBalancerRequest
from aliyunsdkslb.request.v20140515.DescribeAccessControlListAttributeRequest import (
    DescribeAccessControlListAttributeRequest,
)
from aliyunsdkslb.request.v20140515.DescribeAccessControlListsRequest import (
    DescribeAccessControlListsRequest,
)
from aliyunsdkslb.request.v20140515.DescribeHealthStatusRequest import (
    DescribeHealthStatusRequest,
)
from aliyunsdkslb.request.v20140515.DescribeLoadBalancerAttributeRequest import (
    DescribeLoadBalancerAttributeRequest,
)
from aliyunsdkslb.request.v20140515.DescribeLoadBalancersRequest import (
    DescribeLoadBalancersRequest,
)
from aliyunsdkslb.request.v20140515.DescribeLoadBalancerTCPListenerAttributeRequest import (
    DescribeLoadBalancerTCPListenerAttributeRequest,
)
from aliyunsdkslb.request.v20140515.RemoveAccessControlListEntryRequest import (
    RemoveAccessControlListEntryRequest,
)
from aliyunsdkslb.request.v20140515.RemoveBackendServersRequest import (
    RemoveBackendServersRequest,
)
from aliyunsdkslb.request.v20140515.StartLoadBalancerListenerRequest import (
    StartLoadBalancerListenerRequest,
)

from clusters.adapters.aliyun.client import AliyunClient, check_client_token, pages, tag_list
from clusters.adapters.aliyun.errors import CloudNotFound
from clusters.adapters.aliyun.models import (
    PAY_BY_LCU,
    AccessControlList,
    BackendHealth,
    LoadBalancer,
    SlbCreated,
    SlbSpec,
    TcpListener,
    items,
)
from clusters.core.errors import PermanentError

API_PORT = 6443
BACKEND_BATCH = 20  # AddBackendServers/RemoveBackendServers accept at most 20 per call
SLB_PAGE_SIZE = 100
# AddAccessControlListEntry/RemoveAccessControlListEntry: "at most 50 IP entries ... in each
# call" (API reference); DescribeAccessControlLists/Attribute page at most 50.
ACL_ENTRY_BATCH = 50
ACL_PAGE_SIZE = 50


class SlbApi:
    client: AliyunClient

    def create_slb(self, spec: SlbSpec, *, client_token: str,
                   tags: Mapping[str, str] | None = None) -> SlbCreated:
        check_client_token(client_token)
        if spec.address_type not in ("intranet", "internet"):
            raise PermanentError(f"SLB address type must be intranet or internet, not "
                                 f"{spec.address_type!r}.")
        request = CreateLoadBalancerRequest()
        request.set_LoadBalancerName(spec.name)
        request.set_AddressType(spec.address_type)
        # Pay-as-you-go, pay-by-LCU: the only CLB sold since 2025-06-01 (see models.PAY_BY_LCU).
        request.set_PayType("PayOnDemand")
        request.set_InstanceChargeType(PAY_BY_LCU)
        request.set_ClientToken(client_token)
        if spec.address_type == "intranet":
            request.set_VSwitchId(spec.vswitch_id)
            if spec.vpc_id:
                request.set_VpcId(spec.vpc_id)
        if spec.master_zone_id:
            request.set_MasterZoneId(spec.master_zone_id)
        if spec.slave_zone_id:
            request.set_SlaveZoneId(spec.slave_zone_id)
        if spec.address_type == "internet":
            request.set_InternetChargeType("paybytraffic")  # the only one an LCU instance takes
        if tags:
            request.set_Tags(tag_list(tags))
        body = self.client.call(request)
        return SlbCreated(body["LoadBalancerId"], body.get("Address", ""),
                          body.get("LoadBalancerName", ""))

    def describe_slb(self, load_balancer_id: str) -> LoadBalancer | None:
        request = DescribeLoadBalancerAttributeRequest()
        request.set_LoadBalancerId(load_balancer_id)
        try:
            body = self.client.call(request)
        except CloudNotFound:
            return None
        return LoadBalancer.from_api(body) if body.get("LoadBalancerId") else None

    def find_slb_by_tag(self, key: str, value: str) -> list[LoadBalancer]:
        """Load balancers carrying the tag: how destroy and a crashed create find them.

        The filter is sent as `Tag.1.Key`/`Tag.1.Value`, the RepeatList of the V2 model
        (DescribeLoadBalancersRequestTag; terraform-provider-alicloud's
        alicloud_slb_load_balancers filters the same way). The older `Tags` JSON string is
        described only as "a JSON dictionary", with no example of its shape. The SDK class
        defines set_Tags twice (RepeatList, then String) and the later one wins, so the
        parameters are added by name.
        """
        def make(page: int) -> DescribeLoadBalancersRequest:
            request = DescribeLoadBalancersRequest()
            request.add_query_param("Tag.1.Key", key)
            request.add_query_param("Tag.1.Value", value)
            request.set_PageSize(SLB_PAGE_SIZE)
            request.set_PageNumber(page)
            return request

        return [LoadBalancer.from_api(e, listing=True)
                for e in pages(self.client, make, ("LoadBalancers", "LoadBalancer"))]

    def create_tcp_listener(self, load_balancer_id: str, port: int = API_PORT,
                            backend_port: int = API_PORT, *, healthy_threshold: int = 2,
                            unhealthy_threshold: int = 2, check_interval: int = 2,
                            check_timeout: int = 5, whitelist_acl_id: str = "") -> None:
        """A TCP listener with a TCP health check (K3s answers /readyz only with auth).

        With `whitelist_acl_id` the listener is born behind that ACL as a whitelist, so there
        is no moment at which it forwards from everywhere.
        """
        request = CreateLoadBalancerTCPListenerRequest()
        if whitelist_acl_id:
            request.set_AclStatus("on")
            request.set_AclType("white")
            request.set_AclId(whitelist_acl_id)
        request.set_LoadBalancerId(load_balancer_id)
        request.set_ListenerPort(port)
        request.set_BackendServerPort(backend_port)
        request.set_Bandwidth(-1)
        request.set_Scheduler("wrr")
        request.set_HealthCheckSwitch("on")
        request.set_HealthCheckType("tcp")
        request.set_HealthCheckConnectPort(backend_port)
        request.set_HealthyThreshold(healthy_threshold)
        request.set_UnhealthyThreshold(unhealthy_threshold)
        request.set_healthCheckInterval(check_interval)
        request.set_HealthCheckConnectTimeout(check_timeout)
        request.set_EstablishedTimeout(900)
        self.client.call(request)

    def describe_tcp_listener(self, load_balancer_id: str,
                              port: int = API_PORT) -> TcpListener | None:
        request = DescribeLoadBalancerTCPListenerAttributeRequest()
        request.set_LoadBalancerId(load_balancer_id)
        request.set_ListenerPort(port)
        try:
            body = self.client.call(request)
        except CloudNotFound:
            return None
        if int(body.get("ListenerPort") or 0) <= 0:
            return None
        return TcpListener(int(body["ListenerPort"]), int(body.get("BackendServerPort") or 0),
                           body.get("Status", ""), body.get("HealthCheck", ""),
                           acl_status=body.get("AclStatus", "") or "off",
                           acl_type=body.get("AclType", "") or "",
                           acl_id=body.get("AclId", "") or "")

    def start_listener(self, load_balancer_id: str, port: int = API_PORT) -> None:
        request = StartLoadBalancerListenerRequest()
        request.set_LoadBalancerId(load_balancer_id)
        request.set_ListenerPort(port)
        self.client.call(request)

    def add_backend_servers(self, load_balancer_id: str, instance_ids: Iterable[str],
                            weight: int = 100) -> None:
        ids = list(dict.fromkeys(instance_ids))
        for start in range(0, len(ids), BACKEND_BATCH):
            request = AddBackendServersRequest()
            request.set_LoadBalancerId(load_balancer_id)
            request.set_BackendServers(json.dumps([
                {"ServerId": i, "Weight": str(weight), "Type": "ecs"}
                for i in ids[start:start + BACKEND_BATCH]]))
            self.client.call(request)

    def remove_backend_servers(self, load_balancer_id: str, instance_ids: Iterable[str]) -> None:
        ids = list(dict.fromkeys(instance_ids))
        for start in range(0, len(ids), BACKEND_BATCH):
            request = RemoveBackendServersRequest()
            request.set_LoadBalancerId(load_balancer_id)
            request.set_BackendServers(json.dumps([
                {"ServerId": i, "Type": "ecs"} for i in ids[start:start + BACKEND_BATCH]]))
            self.client.call(request)

    def describe_health_status(self, load_balancer_id: str,
                               port: int | None = API_PORT) -> list[BackendHealth]:
        request = DescribeHealthStatusRequest()
        request.set_LoadBalancerId(load_balancer_id)
        if port is not None:
            request.set_ListenerPort(port)
        body = self.client.call(request)
        return [BackendHealth(b.get("ServerId", ""), b.get("ServerIp", ""),
                              int(b.get("Port") or 0), int(b.get("ListenerPort") or 0),
                              b.get("ServerHealthStatus", ""))
                for b in items(body, "BackendServers", "BackendServer")]

    def delete_slb(self, load_balancer_id: str) -> bool:
        """Release the load balancer (listeners go with it); False when already gone."""
        request = DeleteLoadBalancerRequest()
        request.set_LoadBalancerId(load_balancer_id)
        try:
            self.client.call(request)
        except CloudNotFound:
            return False
        return True

    # ---- access control lists (the API's allow-list) ---------------------------------------
    def create_acl(self, name: str, *, tags: Mapping[str, str] | None = None) -> str:
        """CreateAccessControlList (IPv4), tagged in the call itself. It takes no ClientToken,
        so a lost answer is recovered by the tag (purchase.ensure_bought), never re-sent
        blindly: the name is unique in the region and a second create would be refused."""
        request = CreateAccessControlListRequest()
        request.set_AclName(name)
        request.set_AddressIPVersion("ipv4")
        if tags:
            request.set_Tags(tag_list(tags))
        return str(self.client.call(request)["AclId"])

    def find_acls_by_tag(self, key: str, value: str) -> list[str]:
        """ACLs carrying the tag (Tag.N RepeatList filter of DescribeAccessControlLists)."""
        def make(page: int) -> DescribeAccessControlListsRequest:
            request = DescribeAccessControlListsRequest()
            request.set_Tags([{"Key": key, "Value": value}])
            request.set_PageSize(ACL_PAGE_SIZE)
            request.set_PageNumber(page)
            return request

        return [str(acl["AclId"]) for acl in pages(self.client, make, ("Acls", "Acl"))]

    def find_acls_by_name(self, name: str) -> list[str]:
        """ACLs named exactly `name` (AclName is a fuzzy filter, so the match is re-checked)."""
        def make(page: int) -> DescribeAccessControlListsRequest:
            request = DescribeAccessControlListsRequest()
            request.set_AclName(name)
            request.set_PageSize(ACL_PAGE_SIZE)
            request.set_PageNumber(page)
            return request

        return [str(acl["AclId"]) for acl in pages(self.client, make, ("Acls", "Acl"))
                if acl.get("AclName") == name]

    def describe_acl(self, acl_id: str) -> AccessControlList | None:
        """The ACL's entries (every page) and the listeners it is bound to; None once gone."""
        entries: list[str] = []
        related: list[tuple[str, int]] = []
        name = ""
        for number in range(1, 1000):
            request = DescribeAccessControlListAttributeRequest()
            request.set_AclId(acl_id)
            request.set_Page(number)
            request.set_PageSize(ACL_PAGE_SIZE)
            try:
                body = self.client.call(request)
            except CloudNotFound:
                return None
            name = body.get("AclName", "")
            batch = [str(e.get("AclEntryIP", ""))
                     for e in items(body, "AclEntrys", "AclEntry")]
            entries.extend(batch)
            related = [(str(r.get("LoadBalancerId", "")), int(r.get("ListenerPort") or 0))
                       for r in items(body, "RelatedListeners", "RelatedListener")]
            if not batch or len(entries) >= int(body.get("TotalAclEntry") or 0):
                break
        return AccessControlList(acl_id, name, tuple(entries), tuple(related))

    def add_acl_entries(self, acl_id: str, cidrs: Iterable[str], comment: str) -> None:
        wanted = list(dict.fromkeys(cidrs))
        for start in range(0, len(wanted), ACL_ENTRY_BATCH):
            request = AddAccessControlListEntryRequest()
            request.set_AclId(acl_id)
            request.set_AclEntrys(json.dumps([{"entry": c, "comment": comment}
                                              for c in wanted[start:start + ACL_ENTRY_BATCH]]))
            self.client.call(request)

    def remove_acl_entries(self, acl_id: str, cidrs: Iterable[str]) -> None:
        gone = list(dict.fromkeys(cidrs))
        for start in range(0, len(gone), ACL_ENTRY_BATCH):
            request = RemoveAccessControlListEntryRequest()
            request.set_AclId(acl_id)
            request.set_AclEntrys(json.dumps([{"entry": c}
                                              for c in gone[start:start + ACL_ENTRY_BATCH]]))
            self.client.call(request)

    def delete_acl(self, acl_id: str) -> bool:
        """DeleteAccessControlList; False when already gone. Still bound to a listener
        (`AclInUsed`, e.g. right after its load balancer was deleted) is transient."""
        request = DeleteAccessControlListRequest()
        request.set_AclId(acl_id)
        try:
            self.client.call(request)
        except CloudNotFound:
            return False
        return True
