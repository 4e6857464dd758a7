"""Asynchronous jobs: the ticker completes each when due and moves its resource on; the
GetJobStatus action reports Processing or Succeeded (the V2 model's values).

Why a ticker: statuses change on their own in the real cloud while nobody asks, and the
proxies must open (Running) or close (Deleting) at that moment, not at the next call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sandbox.aliyun.gateway import errors, network
from sandbox.aliyun.gateway.cloud import Cloud, RequestContext
from sandbox.aliyun.gateway.control import ControlError
from sandbox.aliyun.gateway.params import Param, Params
from sandbox.aliyun.gateway.registry import control_route
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.nlb.product import (
    NLB,
    addresses,
    jobs,
    listeners,
    load_balancers,
    server_groups,
    tables,
)
from sandbox.aliyun.nlb.runtime import close_listener, sync_group, sync_lb, sync_listener

# A finished job stays answerable for this long (real seconds, not scaled).
KEEP_FINISHED_SECONDS = 3600


def _create_lb(cloud: Cloud, job: dict[str, Any]) -> None:
    lb = load_balancers(cloud.state).get(job["resource_id"])
    if lb is None:
        return
    lb["lock"] = ""
    failures = tables(cloud.state).get("create_failures", 0)
    if failures:
        # "CreateFailed: The system failed to create the NLB instance ... You can only
        # delete the NLB instance." (LoadBalancerStatus, V2 model docstring)
        tables(cloud.state)["create_failures"] = failures - 1
        lb["status"] = "CreateFailed"
        return
    lb["status"] = "Active"
    sync_lb(cloud, lb["lb_id"])


def _delete_lb(cloud: Cloud, job: dict[str, Any]) -> None:
    state = cloud.state
    lb = load_balancers(state).pop(job["resource_id"], None)
    if lb is None:
        return
    for listener_id in [k for k, v in listeners(state).items() if v["lb_id"] == lb["lb_id"]]:
        del listeners(state)[listener_id]
        close_listener(cloud, listener_id)
    for address in addresses(lb):
        cloud.plumbing.take_down(address)
        network.release(state, address)


def _create_group(cloud: Cloud, job: dict[str, Any]) -> None:
    group = server_groups(cloud.state).get(job["resource_id"])
    if group is not None:
        group["status"], group["lock"] = "Available", ""


def _delete_group(cloud: Cloud, job: dict[str, Any]) -> None:
    server_groups(cloud.state).pop(job["resource_id"], None)


def _add_servers(cloud: Cloud, job: dict[str, Any]) -> None:
    group = server_groups(cloud.state).get(job["resource_id"])
    if group is None:
        return
    for server in group["servers"]:
        if server["status"] == "Adding":
            server["status"] = "Available"
    group["status"], group["lock"] = "Available", ""
    sync_group(cloud, group["group_id"])


def _remove_servers(cloud: Cloud, job: dict[str, Any]) -> None:
    group = server_groups(cloud.state).get(job["resource_id"])
    if group is None:
        return
    group["servers"] = [s for s in group["servers"] if s["status"] != "Removing"]
    group["status"], group["lock"] = "Available", ""
    sync_group(cloud, group["group_id"], drain=0)  # the drain is over: what is left is cut


def _update_group(cloud: Cloud, job: dict[str, Any]) -> None:
    group = server_groups(cloud.state).get(job["resource_id"])
    if group is None:
        return
    for server in group["servers"]:
        if server["status"] == "Configuring":
            server["status"] = "Available"
    group["status"], group["lock"] = "Available", ""
    sync_group(cloud, group["group_id"])


def _create_listener(cloud: Cloud, job: dict[str, Any]) -> None:
    listener = listeners(cloud.state).get(job["resource_id"])
    if listener is not None and listener["status"] == "Provisioning":
        listener["status"], listener["lock"] = "Running", ""
        sync_listener(cloud, listener["listener_id"])


def _delete_listener(cloud: Cloud, job: dict[str, Any]) -> None:
    listeners(cloud.state).pop(job["resource_id"], None)
    close_listener(cloud, job["resource_id"])


def _security_groups(join: bool) -> Callable[[Cloud, dict[str, Any]], None]:
    """The NLB's groups change when the job ends; its listeners filter from then on."""
    def finish(cloud: Cloud, job: dict[str, Any]) -> None:
        lb = load_balancers(cloud.state).get(job["resource_id"])
        if lb is None:
            return
        current = lb.setdefault("security_group_ids", [])
        if join:
            current.extend(g for g in job["groups"] if g not in current)
        else:
            lb["security_group_ids"] = [g for g in current if g not in job["groups"]]
        lb["status"], lb["lock"] = "Active", ""
        sync_lb(cloud, lb["lb_id"])
    return finish


def _set_listener(status: str) -> Callable[[Cloud, dict[str, Any]], None]:
    def finish(cloud: Cloud, job: dict[str, Any]) -> None:
        listener = listeners(cloud.state).get(job["resource_id"])
        if listener is not None:
            listener["status"], listener["lock"] = status, ""
            sync_listener(cloud, listener["listener_id"])
    return finish


FINISH: dict[str, Callable[[Cloud, dict[str, Any]], None]] = {
    "create_lb": _create_lb, "delete_lb": _delete_lb,
    "create_group": _create_group, "delete_group": _delete_group,
    "add_servers": _add_servers, "remove_servers": _remove_servers,
    "update_group": _update_group, "update_servers": _update_group,
    "update_listener": lambda cloud, job: _set_listener(job.get("back_to", "Running"))(
        cloud, job),
    "create_listener": _create_listener, "delete_listener": _delete_listener,
    "join_sg": _security_groups(join=True), "leave_sg": _security_groups(join=False),
    "start_listener": _set_listener("Running"), "stop_listener": _set_listener("Stopped"),
}


@NLB.ticker
def advance_jobs(cloud: Cloud) -> None:
    now = cloud.clock.now()
    table = jobs(cloud.state)
    for job in sorted(table.values(), key=lambda j: j["due"]):
        if job["status"] == "Processing" and cloud.clock.is_due(job["due"]):
            FINISH[job["kind"]](cloud, job)
            job["status"], job["finished_at"] = "Succeeded", now
    for job_id in [k for k, j in table.items() if j["status"] == "Succeeded"
                   and now - j.get("finished_at", now) > KEEP_FINISHED_SECONDS]:
        del table[job_id]


@NLB.action("GetJobStatus", (Param("JobId", required=True),))
def get_job_status(state: State, params: Params, ctx: RequestContext) -> dict[str, Any]:
    job = jobs(state).get(params["JobId"])
    if job is None:
        # CHOSEN code: GetJobStatus's metadata names none for an unknown job.
        raise errors.ApiError(404, "ResourceNotFound.job",
                              "The specified resource of job is not found.")
    return {"Status": job["status"]}


@control_route("POST", "nlb/create-failures")
def fail_creates(cloud: Cloud, body: dict[str, Any]) -> tuple[int, Any]:
    """Body {count}: the next `count` NLB creations end CreateFailed instead of Active (the
    cloud could not build them); such an NLB can only be deleted."""
    count = body.get("count", 1)
    if not isinstance(count, int) or count < 0:
        raise ControlError(400, "count must be a non-negative integer")
    with cloud.lock:
        tables(cloud.state)["create_failures"] = count
        cloud.state.save()
    return 200, {"create_failures": count}
