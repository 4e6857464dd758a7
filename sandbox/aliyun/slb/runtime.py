"""Keeps the real TCP proxies (l4proxy.py) in line with the state: listeners are restored on
start, closed on stop and reset, moved from starting to running by the ticker, and listed in
GET /_emulator/resources."""

from __future__ import annotations

from typing import Any

from sandbox.aliyun import ecs
from sandbox.aliyun.gateway.cloud import Cloud
from sandbox.aliyun.l4proxy import (
    ALLOW_ALL,
    AccessRule,
    Backend,
    HealthCheck,
    ListenerProxy,
    scaled_health_check,
)
from sandbox.aliyun.slb.product import SLB, _proxies, acls, load_balancers


# ---- runtime: keep proxies in line with the state ------------------------------------------
def _health_check(cloud: Cloud, listener: dict[str, Any]) -> HealthCheck:
    return scaled_health_check(
        cloud.clock.scaled, enabled=listener["health_check"] == "on",
        port=listener.get("health_check_connect_port"),
        interval=listener["health_check_interval"],
        timeout=listener["health_check_connect_timeout"],
        healthy_threshold=listener["healthy_threshold"],
        unhealthy_threshold=listener["unhealthy_threshold"],
    )


def _backends(cloud: Cloud, lb: dict[str, Any], listener: dict[str, Any]) -> list[Backend]:
    found = []
    for server in lb["backends"]:
        instance = ecs.instance_by_id(cloud.state, server["server_id"])
        if instance is None:
            continue
        found.append(Backend(server["server_id"], instance["private_ip"],
                             listener["backend_port"], server["weight"]))
    return found


def access_rule(cloud: Cloud, listener: dict[str, Any]) -> AccessRule:
    """The listener's ACL as the proxy applies it: off, or white/black over its entries."""
    if listener.get("acl_status") != "on":
        return ALLOW_ALL
    acl = acls(cloud.state).get(listener.get("acl_id") or "")
    if acl is None:
        return ALLOW_ALL
    return AccessRule(listener["acl_type"], tuple(e["entry"] for e in acl["entries"]))


def sync_listener(cloud: Cloud, lb: dict[str, Any], port: int) -> None:
    """Open, reconfigure or close the proxy of one listener to match its status."""
    proxies = _proxies(cloud)
    key = (lb["lb_id"], port)
    listener = lb["listeners"].get(str(port))
    wanted = listener is not None and listener["status"] in ("starting", "running")
    proxy = proxies.get(key)
    if not wanted:
        if proxy is not None:
            proxies.pop(key).close()
        return
    assert listener is not None
    if proxy is None:
        proxies[key] = ListenerProxy(
            lb["address"], port, cloud.plumbing.netns, backends=_backends(cloud, lb, listener),
            health=_health_check(cloud, listener), scheduler=listener["scheduler"],
            access=access_rule(cloud, listener),
        )
    else:
        proxy.set_backends(_backends(cloud, lb, listener))
        proxy.set_health_check(_health_check(cloud, listener))
        proxy.set_access(access_rule(cloud, listener))


def _sync_all_listeners(cloud: Cloud, lb: dict[str, Any]) -> None:
    for port in lb["listeners"]:
        sync_listener(cloud, lb, int(port))


def _close_all(cloud: Cloud) -> None:
    proxies = _proxies(cloud)
    while proxies:
        _, proxy = proxies.popitem()
        proxy.close()


@SLB.on_start
def restore_listeners(cloud: Cloud) -> None:
    for lb in load_balancers(cloud.state).values():
        _sync_all_listeners(cloud, lb)


@SLB.on_stop
def stop_listeners(cloud: Cloud) -> None:
    _close_all(cloud)


@SLB.on_reset
def reset_listeners(cloud: Cloud) -> None:
    _close_all(cloud)


@SLB.ticker
def advance_listeners(cloud: Cloud) -> None:
    for lb in load_balancers(cloud.state).values():
        for listener in lb["listeners"].values():
            if listener["status"] == "starting" and cloud.clock.is_due(listener["running_at"]):
                listener["status"] = "running"


@SLB.resources
def list_resources(cloud: Cloud) -> list[dict[str, Any]]:
    listed = []
    proxies = _proxies(cloud)
    for lb in load_balancers(cloud.state).values():
        listed.append({
            "type": "slb_load_balancer", "id": lb["lb_id"], "state": lb["status"],
            "addresses": [lb["address"]], "tags": lb["tags"],
            "ports": sorted(int(p) for p in lb["listeners"]),
            "backends": [b["server_id"] for b in lb["backends"]], "pids": [],
            "instance_charge_type": lb["instance_charge_type"], "spec": lb["spec"],
        })
        for port, listener in lb["listeners"].items():
            proxy = proxies.get((lb["lb_id"], int(port)))
            listed.append({
                "type": "slb_listener", "id": f"{lb['lb_id']}:{port}", "state": listener["status"],
                "addresses": [lb["address"]], "ports": [int(port)], "tags": [],
                "listening": proxy is not None, "health": proxy.health_status() if proxy else {},
                "acl": {"status": listener.get("acl_status", "off"),
                        "type": listener.get("acl_type", ""), "id": listener.get("acl_id", ""),
                        "refused": proxy.refused if proxy else 0},
                "pids": [],
            })
    for acl in acls(cloud.state).values():
        listed.append({
            "type": "slb_acl", "id": acl["acl_id"], "state": "available", "addresses": [],
            "ports": [], "tags": acl["tags"], "pids": [],
            "entries": [e["entry"] for e in acl["entries"]],
        })
    return listed
