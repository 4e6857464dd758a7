"""The NLB product (Nlb 2022-04-30) and what its modules share: error answers, tables, jobs.

Sources: the V2 SDK models (alibabacloud_nlb20220430 4.1.3) for parameters and answers;
Alibaba's API metadata for Nlb 2022-04-30 (its `errorCodes` per action) for the codes and
messages below; Terraform's alicloud/resource_alicloud_nlb_*.go for the statuses it waits on
(LoadBalancerStatus Active, ServerGroupStatus Available, ListenerStatus Running, server Status
Available, GetJobStatus Succeeded) and the codes it retries (IncorrectStatus.serverGroup,
OperationFailed.ResourceIsConfiguring, Conflict.Lock, SystemBusy).

Every write is asynchronous, as on the real service: the resource moves to a transitional
status (Provisioning, Creating, Configuring, Adding, Removing, Deleting) and a job
(`GetJobStatus`) completes after a realistic time, scaled by the clock. While a job holds a
resource, other writes to it are refused (`Conflict.Lock` / `IncorrectStatus.*`).
"""

from __future__ import annotations

from typing import Any

from sandbox.aliyun.gateway import errors, ids
from sandbox.aliyun.gateway.cloud import RequestContext
from sandbox.aliyun.gateway.registry import ClientTokenPolicy, Product, register_product
from sandbox.aliyun.gateway.state import State


def missing(name: str) -> errors.ApiError:
    """`MissingParam.<name>`: how NLB names a missing parameter (its metadata's
    `MissingParam.%s` / "The parameter of %s is missing.")."""
    return errors.ApiError(400, f"MissingParam.{name}", f"The parameter of {name} is missing.")


NLB = register_product(Product("Nlb", "2022-04-30", "nlb.aliyuncs.com", missing=missing))
DNS_SUFFIX = "nlb.aliyuncsslb.com"  # <id>.<region>.nlb.aliyuncsslb.com, as real NLBs answer

# Realistic durations (seconds, before the time scale): what a console user waits.
CREATE_LB_SECONDS = 60
DELETE_LB_SECONDS = 30
SERVER_GROUP_SECONDS = 3
SERVERS_SECONDS = 10
LISTENER_SECONDS = 10


def _error(status: int, code: str, message: str) -> errors.ApiError:
    return errors.ApiError(status, code, message)


def not_found(kind: str, code_kind: str | None = None) -> errors.ApiError:
    """`ResourceNotFound.<kind>` (404), as the metadata spells it per action."""
    return _error(404, f"ResourceNotFound.{code_kind or kind}",
                  f"The specified resource of {kind} is not found.")


LB_NOT_FOUND = not_found("loadbalancer", "loadBalancer")
LISTENER_NOT_FOUND = _error(404, "ResourceNotFound.listener",
                            "The specified resource listener is not found.")
SERVER_GROUP_NOT_FOUND = _error(404, "ResourceNotFound.serverGroup",
                                "The specified resource serverGroup is not found.")
TOKEN_CONFLICT = _error(400, "IdempotenceSignatureMismatch",
                        "The idempotence token of request is same with the prev one, but the "
                        "signature is different.")
CLIENT_TOKEN = ClientTokenPolicy(TOKEN_CONFLICT)
DRY_RUN = _error(400, "DryRunOperation", "Request validation has been passed with DryRun flag set.")


def illegal(name: str) -> errors.ApiError:
    """`IllegalParam.<name>` (CreateLoadBalancer/CreateListener metadata)."""
    return _error(400, f"IllegalParam.{name}", f"The param of {name} is illegal.")


def incorrect_status(kind: str, resource_id: str) -> errors.ApiError:
    """The resource is not in a status the operation accepts (e.g. still Provisioning)."""
    return _error(400, f"IncorrectStatus.{kind}", f"The status of {kind} [{resource_id}] is "
                  "incorrect.")


def lock_conflict(resource_id: str) -> errors.ApiError:
    """Another job holds the resource (it is Configuring): `Conflict.Lock`."""
    return _error(400, "Conflict.Lock", f"The Lock [{resource_id}] is conflict.")


def tables(state: State) -> dict[str, Any]:
    return state.bucket("nlb")


def load_balancers(state: State) -> dict[str, Any]:
    return state.table("nlb", "load_balancers")


def server_groups(state: State) -> dict[str, Any]:
    return state.table("nlb", "server_groups")


def listeners(state: State) -> dict[str, Any]:
    return state.table("nlb", "listeners")


def jobs(state: State) -> dict[str, Any]:
    return state.table("nlb", "jobs")


def lb_or_error(state: State, ctx: RequestContext, lb_id: str) -> dict[str, Any]:
    lb = load_balancers(state).get(lb_id)
    if lb is None or lb["region_id"] != ctx.region_id or lb["status"] == "Deleted":
        raise LB_NOT_FOUND
    return lb


def group_or_error(state: State, ctx: RequestContext, group_id: str) -> dict[str, Any]:
    group = server_groups(state).get(group_id)
    if group is None or group["region_id"] != ctx.region_id:
        raise SERVER_GROUP_NOT_FOUND
    return group


def listener_or_error(state: State, ctx: RequestContext, listener_id: str) -> dict[str, Any]:
    listener = listeners(state).get(listener_id)
    if listener is None or listener["region_id"] != ctx.region_id:
        raise LISTENER_NOT_FOUND
    return listener


def new_job(state: State, ctx: RequestContext, kind: str, resource_id: str,
            realistic_seconds: float, **details: Any) -> str:
    """A job that completes `realistic_seconds` (scaled) from now; jobs.py applies it."""
    job_id = ids.request_id().lower()
    jobs(state)[job_id] = {
        "job_id": job_id, "kind": kind, "resource_id": resource_id, "status": "Processing",
        "due": ctx.clock.after(realistic_seconds), "created_at": ctx.clock.now(), **details,
    }
    return job_id


def dry_run(params: Any) -> None:
    """DryRun=true: every check passed, nothing done (the documented DryRunOperation)."""
    if params.get("DryRun"):
        raise DRY_RUN


def addresses(lb: dict[str, Any]) -> list[str]:
    """Every address the NLB answers on (private per zone, public per zone if Internet)."""
    found = [z["private_ip"] for z in lb["zones"]]
    found += [z["public_ip"] for z in lb["zones"] if z.get("public_ip")]
    return found


def dns_addresses(lb: dict[str, Any]) -> list[str]:
    """What the DNS name resolves to: the public addresses of an Internet NLB, the private
    ones of an Intranet NLB (GetLoadBalancerAttribute AddressType docs)."""
    if lb["address_type"] == "Internet":
        return [z["public_ip"] for z in lb["zones"]]
    return [z["private_ip"] for z in lb["zones"]]
