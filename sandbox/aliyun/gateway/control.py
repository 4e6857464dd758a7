"""The unsigned control API under /_emulator/ (loopback clients only).

Why: tests and the demo need to set up the world the real cloud already has (accounts,
regions, VPCs, the lab hosts as ECS instances), to inject faults, and to see what exists and
what was called, without going through signed API calls.
"""

from __future__ import annotations

from typing import Any

from sandbox.aliyun.gateway import network
from sandbox.aliyun.gateway.cloud import Cloud
from sandbox.aliyun.gateway.faults import fault_from_json
from sandbox.aliyun.gateway.registry import CONTROL_ROUTES, control_route


class ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@control_route("GET", "health")
def health(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    return 200, {
        "ok": True, "time_scale": cloud.clock.time_scale, "netns": cloud.plumbing.netns,
        "products": sorted(f"{p.code} {p.version}" for p in cloud.products.values()),
    }


@control_route("POST", "accounts")
def add_account(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    key_id, secret = body.get("access_key_id"), body.get("access_key_secret")
    if not key_id or not secret:
        raise ControlError(400, "access_key_id and access_key_secret are required")
    policy = body.get("policy")
    try:
        cloud.add_account(str(key_id), str(secret), policy if isinstance(policy, dict) else None,
                          name=str(body.get("name") or ""), root=bool(body.get("root")))
    except ValueError as exc:  # ram.PolicyGrammarError
        raise ControlError(400, f"bad policy: {exc}") from exc
    return 200, {"access_key_id": key_id}


@control_route("POST", "seed")
def seed(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    with cloud.lock:
        try:
            network.apply_seed(cloud.state, body, cloud.clock.now())
        except (KeyError, ValueError) as exc:
            cloud.state.rollback()
            raise ControlError(400, f"bad seed: {exc!r}") from exc
        cloud.state.save()
        return 200, {
            "regions": sorted(cloud.state.bucket("regions")),
            "vpcs": sorted(cloud.state.bucket("vpcs")),
            "vswitches": sorted(cloud.state.bucket("vswitches")),
        }


@control_route("POST", "faults")
def add_fault(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    try:
        fault = fault_from_json(body)
    except (TypeError, ValueError) as exc:
        raise ControlError(400, str(exc)) from exc
    cloud.faults.add(fault)
    return 200, {"faults": cloud.faults.list()}


@control_route("GET", "faults")
def list_faults(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    return 200, {"faults": cloud.faults.list()}


@control_route("DELETE", "faults")
def clear_faults(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    cloud.faults.clear()
    return 200, {"faults": []}


@control_route("DELETE", "client-tokens")
def forget_client_tokens(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    """Forget every ClientToken seen so far: a create re-sent with one buys again.

    Alibaba Cloud documents no lifetime for a ClientToken, so the panel must not depend on a
    token being remembered; tests use this to show that it does not.
    """
    with cloud.lock:
        tokens = cloud.state.bucket("client_tokens")
        forgotten = len(tokens)
        tokens.clear()
        cloud.state.save()
    return 200, {"forgotten": forgotten}


@control_route("GET", "resources")
def resources(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    return 200, {"resources": cloud.resources()}


@control_route("GET", "calls")
def calls(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    return 200, {"calls": cloud.calls.entries()}


@control_route("DELETE", "calls")
def clear_calls(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    cloud.calls.clear()
    return 200, {"calls": []}


@control_route("POST", "reset")
def reset(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    cloud.reset(everything=bool(body.get("everything", False)))
    return 200, {"reset": True}


def handle(cloud: Cloud, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    route = CONTROL_ROUTES.get((method.upper(), path.strip("/")))
    if route is None:
        return 404, {"error": f"no control route {method} /_emulator/{path}"}
    try:
        return route(cloud, body)
    except ControlError as exc:
        return exc.status, {"error": str(exc)}
