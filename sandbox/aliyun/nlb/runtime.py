"""Keeps the real TCP proxies in line with the NLB state: one proxy (l4proxy.py, shared
with CLB) per Running TCP listener and zone address, forwarding to the servers of its group
that are Available, with the group's health check, scheduler, connection drain and client IP
preservation (hairpin). Also restores proxies on start and lists resources for the
control API."""

from __future__ import annotations

import sys
from typing import Any

from sandbox.aliyun import ecs
from sandbox.aliyun.gateway.cloud import Cloud
from sandbox.aliyun.l4proxy import (
    ABNORMAL,
    NORMAL,
    Backend,
    GroupRule,
    HealthCheck,
    ListenerProxy,
    SecurityGroupAccess,
    scaled_health_check,
)
from sandbox.aliyun.nlb.product import (
    NLB,
    addresses,
    dns_addresses,
    jobs,
    listeners,
    load_balancers,
    server_groups,
)

ROUTED_SERVER_STATUSES = ("Available", "Configuring")
LIVE_LISTENER_STATUSES = ("Running", "Configuring")


def proxies(cloud: Cloud) -> dict[tuple[str, str], ListenerProxy]:
    """(listener id, zone address) -> the proxy listening there."""
    return cloud.runtime.setdefault("nlb", {})


def server_key(server: dict[str, Any]) -> str:
    return f"{server['server_id']}:{server['port']}"


def _health(cloud: Cloud, group: dict[str, Any]) -> HealthCheck:
    config = group["health"]
    return scaled_health_check(
        cloud.clock.scaled, enabled=config["HealthCheckEnabled"],
        port=config["HealthCheckConnectPort"] or None,
        interval=config["HealthCheckInterval"], timeout=config["HealthCheckConnectTimeout"],
        healthy_threshold=config["HealthyThreshold"],
        unhealthy_threshold=config["UnhealthyThreshold"],
    )


def _backends(group: dict[str, Any], port: int) -> list[Backend]:
    return [Backend(server_key(s), s["server_ip"], s["port"] or port, s["weight"])
            for s in group["servers"] if s["status"] in ROUTED_SERVER_STATUSES]


def _drain(cloud: Cloud, group: dict[str, Any]) -> float:
    """Seconds live connections to a leaving server may go on: 0 without connection drain."""
    return cloud.clock.scaled(group["drain_timeout"]) if group["drain_enabled"] else 0.0


def access(cloud: Cloud, lb: dict[str, Any], port: int) -> SecurityGroupAccess:
    """The ingress rules of the NLB's joined security groups that concern TCP `port`
    (protocol TCP or ALL, IPv4 sources); none joined: every source is accepted. Fail
    closed: an Accept narrowed by SourcePortRange or DestCidrIp is left out, a Drop so
    narrowed drops the whole source block."""
    rules = []
    for group_id in lb.get("security_group_ids", []):
        group = ecs.security_groups(cloud.state).get(group_id) or {"permissions": []}
        for rule in group["permissions"]:
            if rule["Direction"] != "ingress" or rule["IpProtocol"] not in ("TCP", "ALL") \
                    or not rule["SourceCidrIp"]:
                continue
            if (rule.get("SourcePortRange") or rule.get("DestCidrIp")) \
                    and rule["Policy"] == "Accept":
                continue  # a quintuple rule the listener cannot judge: it admits nothing
            low, high = (int(p) for p in rule["PortRange"].split("/"))
            rules.append(GroupRule(rule["Priority"], rule["Policy"] == "Accept",
                                   rule["SourceCidrIp"], low, high))
    return SecurityGroupAccess(port, tuple(rules))


def _rules_changed(cloud: Cloud, group_id: str) -> None:
    """A joined group's rules changed (ECS): its NLBs' listeners filter anew at once."""
    for lb in list(load_balancers(cloud.state).values()):
        if group_id in lb.get("security_group_ids", []):
            sync_lb(cloud, lb["lb_id"])


ecs.RULE_WATCHERS.append(_rules_changed)


def sync_listener(cloud: Cloud, listener_id: str, drain: float | None = None) -> None:
    """Open, reconfigure or close the proxies of one listener to match the state; live
    connections to servers that left get the group's drain, or `drain` seconds if given."""
    state = cloud.state
    listener = listeners(state).get(listener_id)
    lb = load_balancers(state).get(listener["lb_id"]) if listener else None
    group = server_groups(state).get(listener["group_id"]) if listener else None
    wanted: list[str] = []
    if (listener and lb and group and listener["protocol"] == "TCP"
            and listener["status"] in LIVE_LISTENER_STATUSES
            and lb["status"] in ("Active", "Configuring")):
        wanted = addresses(lb)
    running = proxies(cloud)
    for key in [k for k in running if k[0] == listener_id and k[1] not in wanted]:
        running.pop(key).close()
    if not wanted:
        return
    assert listener is not None and group is not None
    backends = _backends(group, listener["port"])
    health = _health(cloud, group)
    scheduler = "rr" if group["scheduler"] == "Rr" else "wrr"
    assert lb is not None
    rules = access(cloud, lb, listener["port"])
    for address in wanted:
        proxy = running.get((listener_id, address))
        if proxy is None:
            try:
                running[(listener_id, address)] = ListenerProxy(
                    address, listener["port"], cloud.plumbing.netns, backends=backends,
                    health=health, scheduler=scheduler, access=rules,
                    hairpin_refused=group["preserve_client_ip"], name="nlb",
                )
            except OSError as exc:  # the port is taken there: say so, keep the cloud going
                print(f"nlb: listener {listener_id} cannot listen on {address}:"
                      f"{listener['port']}: {exc}", file=sys.stderr)
        else:
            proxy.set_backends(backends, drain=_drain(cloud, group) if drain is None else drain)
            proxy.set_health_check(health)
            proxy.hairpin_refused = group["preserve_client_ip"]
            proxy.set_access(rules)


def sync_group(cloud: Cloud, group_id: str, drain: float | None = None) -> None:
    for listener in list(listeners(cloud.state).values()):
        if listener["group_id"] == group_id:
            sync_listener(cloud, listener["listener_id"], drain)


def sync_lb(cloud: Cloud, lb_id: str) -> None:
    for listener in list(listeners(cloud.state).values()):
        if listener["lb_id"] == lb_id:
            sync_listener(cloud, listener["listener_id"])


def close_listener(cloud: Cloud, listener_id: str) -> None:
    running = proxies(cloud)
    for key in [k for k in running if k[0] == listener_id]:
        running.pop(key).close()


def server_health(cloud: Cloud, listener_id: str) -> dict[str, str]:
    """server key -> Healthy / Unhealthy / Initial over every zone's checks: unhealthy if
    any zone's checks say so, healthy once all agree (each zone's node checks for itself)."""
    verdicts: dict[str, list[str]] = {}
    for (owner, _), proxy in proxies(cloud).items():
        if owner != listener_id:
            continue
        for key, status in proxy.health_status().items():
            verdicts.setdefault(key, []).append(status)
    merged = {}
    for key, statuses in verdicts.items():
        if ABNORMAL in statuses:
            merged[key] = "Unhealthy"
        elif statuses and all(s == NORMAL for s in statuses):
            merged[key] = "Healthy"
        else:
            merged[key] = "Initial"
    return merged


def _close_all(cloud: Cloud) -> None:
    running = proxies(cloud)
    while running:
        _, proxy = running.popitem()
        proxy.close()


@NLB.on_start
def restore_listeners(cloud: Cloud) -> None:
    for listener_id in list(listeners(cloud.state)):
        sync_listener(cloud, listener_id)


@NLB.on_stop
def stop_listeners(cloud: Cloud) -> None:
    _close_all(cloud)


@NLB.on_reset
def reset_listeners(cloud: Cloud) -> None:
    _close_all(cloud)


@NLB.resources
def list_resources(cloud: Cloud) -> list[dict[str, Any]]:
    state = cloud.state
    listed: list[dict[str, Any]] = []
    running = proxies(cloud)
    for lb in load_balancers(state).values():
        listed.append({
            "type": "nlb_load_balancer", "id": lb["lb_id"], "state": lb["status"],
            "addresses": addresses(lb), "dns_name": lb["dns_name"],
            "dns_addresses": dns_addresses(lb), "tags": lb["tags"], "pids": [],
            "security_group_ids": list(lb.get("security_group_ids", [])),
            "zones": [{"zone_id": z["zone_id"], "vswitch_id": z["vswitch_id"],
                       "address": z["private_ip"], "public_address": z.get("public_ip", "")}
                      for z in lb["zones"]],
            "ports": sorted(li["port"] for li in listeners(state).values()
                            if li["lb_id"] == lb["lb_id"]),
        })
    for listener in listeners(state).values():
        mine = [p for (owner, _), p in running.items() if owner == listener["listener_id"]]
        listed.append({
            "type": "nlb_listener", "id": listener["listener_id"], "state": listener["status"],
            "load_balancer_id": listener["lb_id"], "server_group_id": listener["group_id"],
            "addresses": sorted(p.address for p in mine), "ports": [listener["port"]],
            "tags": listener["tags"], "listening": bool(mine), "pids": [],
            "health": server_health(cloud, listener["listener_id"]),
            "hairpins": sum(p.hairpins for p in mine),
        })
    for group in server_groups(state).values():
        listed.append({
            "type": "nlb_server_group", "id": group["group_id"], "state": group["status"],
            "addresses": [], "ports": [], "tags": group["tags"], "pids": [],
            "servers": [{"id": s["server_id"], "ip": s["server_ip"], "port": s["port"],
                         "status": s["status"]} for s in group["servers"]],
        })
    for job in jobs(state).values():
        if job["status"] == "Processing":
            listed.append({"type": "nlb_job", "id": job["job_id"], "state": job["status"],
                           "kind": job["kind"], "resource_id": job["resource_id"],
                           "addresses": [], "ports": [], "tags": [], "pids": []})
    return listed
