"""Alibaba Cloud adapter: the official SDK behind a small typed facade.

    cloud = AliyunCloud(access_key_id, secret, "cn-hangzhou", endpoint_override="127.0.0.1:8080")
    created = cloud.create_rds(RdsSpec(...), client_token=token, tags={"k3s-panel": "c-42"})

Modules: `client` (SDK client, fail-closed endpoints, no proxy, timeouts, one attempt),
`errors` (SDK exceptions → TransientError/PermanentError/CloudNotFound with hints),
`models` (dataclasses), `ecs_vpc`, `rds`, `slb`, `nlb` (the calls), `rds_price` (DescribePrice),
`ecs_price` (ECS DescribePrice), `bss` (BSS GetPayAsYouGoPrice).
"""

from __future__ import annotations

from collections.abc import Mapping

from clusters.adapters.aliyun.auth import (
    AccessKeySource,
    AssumedRoleSource,
    CredentialSource,
    EcsInstanceRoleSource,
    Keys,
    StsTokenSource,
)
from clusters.adapters.aliyun.bss import BssApi
from clusters.adapters.aliyun.client import AliyunClient, EndpointPolicy, parse_override
from clusters.adapters.aliyun.ecs_buy import EcsBuyApi, InstanceOrder, TypeOffer
from clusters.adapters.aliyun.ecs_price import EcsPriceApi
from clusters.adapters.aliyun.ecs_vpc import EcsVpcApi
from clusters.adapters.aliyun.errors import CloudNotFound, map_sdk_error
from clusters.adapters.aliyun.models import (
    LCU_SPEC,
    PAY_BY_LCU,
    PAY_BY_SPEC,
    AccessControlList,
    Account,
    BackendHealth,
    BackendServer,
    Backup,
    Database,
    HourlyPrice,
    Instance,
    LoadBalancer,
    NetInfo,
    Parameters,
    ParameterTemplate,
    PriceModule,
    RdsClassOffer,
    RdsCreated,
    RdsInstance,
    RdsSpec,
    RdsZoneOffer,
    Region,
    SlbCreated,
    SlbSpec,
    TcpListener,
    Vpc,
    VSwitch,
    Zone,
)
from clusters.adapters.aliyun.nlb import (
    Nlb,
    NlbApi,
    NlbListener,
    NlbServer,
    NlbServerGroup,
    NlbZone,
)
from clusters.adapters.aliyun.rds import RdsApi
from clusters.adapters.aliyun.rds_price import RdsPriceApi
from clusters.adapters.aliyun.security_groups import IngressRule, SecurityGroupApi
from clusters.adapters.aliyun.slb import SlbApi
from clusters.adapters.aliyun.sts import StsApi
from clusters.adapters.aliyun.vpc_buy import VpcBuyApi


class AliyunCloud(EcsVpcApi, EcsBuyApi, EcsPriceApi, SecurityGroupApi, RdsApi, RdsPriceApi,
                  SlbApi, NlbApi, BssApi, StsApi, VpcBuyApi):
    """Everything provisioning asks of Alibaba Cloud, for one identity and region.

    The identity is an AccessKey pair, or `credentials` (auth.py: an assumed role, the ECS
    instance role, an STS token), in which case the key arguments are left empty.
    """

    def __init__(self, access_key_id: str, access_key_secret: str, region: str,
                 endpoint_override: str | Mapping[str, str] | None = None, *,
                 read_timeouts: Mapping[str, float] | None = None,
                 credentials: CredentialSource | None = None) -> None:
        self.client = AliyunClient(access_key_id, access_key_secret, region, endpoint_override,
                                   read_timeouts=read_timeouts, credentials=credentials)

    @property
    def region(self) -> str:
        return self.client.region


__all__ = [
    "LCU_SPEC",
    "PAY_BY_LCU",
    "PAY_BY_SPEC",
    "AccessControlList",
    "AccessKeySource",
    "Account",
    "AliyunClient",
    "AliyunCloud",
    "AssumedRoleSource",
    "BackendHealth",
    "BackendServer",
    "Backup",
    "CloudNotFound",
    "CredentialSource",
    "Database",
    "EcsInstanceRoleSource",
    "EndpointPolicy",
    "HourlyPrice",
    "IngressRule",
    "Instance",
    "InstanceOrder",
    "Keys",
    "LoadBalancer",
    "NetInfo",
    "Nlb",
    "NlbListener",
    "NlbServer",
    "NlbServerGroup",
    "NlbZone",
    "ParameterTemplate",
    "Parameters",
    "PriceModule",
    "RdsClassOffer",
    "RdsCreated",
    "RdsInstance",
    "RdsSpec",
    "RdsZoneOffer",
    "Region",
    "SlbCreated",
    "SlbSpec",
    "StsTokenSource",
    "TcpListener",
    "TypeOffer",
    "VSwitch",
    "Vpc",
    "Zone",
    "map_sdk_error",
    "parse_override",
]
