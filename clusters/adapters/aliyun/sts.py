"""STS AssumeRole: temporary keys for a RAM role (see auth.py for where they are used)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aliyunsdksts.request.v20150401.AssumeRoleRequest import AssumeRoleRequest

from clusters.adapters.aliyun.client import AliyunClient

ASSUME_ROLE_PARAMS = ("RoleArn", "RoleSessionName", "DurationSeconds", "ExternalId", "Policy")


class StsApi:
    client: AliyunClient

    def assume_role(self, params: Mapping[str, str]) -> dict[str, Any]:
        """AssumeRole with RoleArn, RoleSessionName and optional DurationSeconds, ExternalId
        and Policy (the session policy); returns the answer (Credentials, AssumedRoleUser).

        The answer's AccessKeySecret and SecurityToken are redacted from any error text."""
        request = AssumeRoleRequest()
        for name in ASSUME_ROLE_PARAMS:
            if params.get(name):
                request.add_query_param(name, params[name])
        return self.client.call(request)
