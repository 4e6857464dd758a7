"""Hand-built signed requests, for what the SDK never sends (replays, stale timestamps)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from sandbox.aliyun.gateway import signing
from sandbox.aliyun.testing import Emulator

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def signed_params(
    emu: Emulator, action: str, version: str, *, method: str = "GET",
    extra: dict[str, str] | None = None, timestamp: str | None = None, nonce: str | None = None,
    secret: str | None = None,
) -> dict[str, str]:
    params = {
        "Action": action, "Version": version, "Format": "JSON", "RegionId": emu.region_id,
        "AccessKeyId": emu.access_key_id, "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0", "SignatureType": "",
        "SignatureNonce": nonce or uuid.uuid4().hex,
        "Timestamp": timestamp or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(extra or {}),
    }
    params["Signature"] = signing.sign(signing.string_to_sign(method, params),
                                       secret or emu.access_key_secret)
    return params


def send(emu: Emulator, params: dict[str, str], method: str = "GET",
         body: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    """Returns (status, JSON body or {}, raw text)."""
    url = f"http://{emu.endpoint}/?{urllib.parse.urlencode(params)}"
    data = urllib.parse.urlencode(body).encode() if body else None
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
    request = urllib.request.Request(url, data=data, method=method,
                                     headers=headers)
    try:
        with _OPENER.open(request, timeout=10) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    try:
        return status, json.loads(text), text
    except ValueError:
        return status, {}, text
