"""The RDS product object (2014-08-15), its realistic durations and shared record helpers.

Why: the action modules (instances, accounts, configuration) register on one `Product` and
share the same way of finding an instance and refusing calls in the wrong state.
"""

from __future__ import annotations

from typing import Any

from sandbox.aliyun.gateway import errors
from sandbox.aliyun.gateway.registry import Product, register_product
from sandbox.aliyun.gateway.state import State
from sandbox.aliyun.rds import rules

PRODUCT = register_product(Product(
    code="Rds", version="2014-08-15", host_id="rds.aliyuncs.com", missing=errors.missing_named,
))

# Realistic durations in seconds (multiplied by the emulator's time scale).
CREATE_SECONDS = 300.0
DELETE_SECONDS = 120.0
ACCOUNT_SECONDS = 5.0
DATABASE_SECONDS = 5.0
PARAMETER_SECONDS = 60.0
RESTART_SECONDS = 120.0
BACKUP_SECONDS = 60.0

ACCOUNT_QUOTA = 500
DB_QUOTA = 500
DEFAULT_IP_ARRAY = "default"


def instances(state: State) -> dict[str, Any]:
    return state.table("rds", "instances")


def find_instance(state: State, instance_id: str) -> dict[str, Any]:
    found = instances(state).get(instance_id)
    if found is None:
        raise rules.INSTANCE_NOT_FOUND
    return found


def running_instance(state: State, instance_id: str) -> dict[str, Any]:
    """The instance, which must be Running for a mutating call."""
    record = find_instance(state, instance_id)
    if record["status"] != "Running":
        raise rules.INCORRECT_STATE
    return record


def whitelist_of(record: dict[str, Any]) -> list[str]:
    """Every address of every group: groups only organise, all grant the same access."""
    entries: list[str] = []
    for group in record["security_groups"].values():
        for entry in group["ips"]:
            if entry not in entries:
                entries.append(entry)
    return entries
