"""The least-privilege RAM policy the README hands to operators (deploy/ram/panel-policy.json)
allows every action the panel's adapter calls: an action missing there is a create that fails
with "lacks the permission" for every user who followed the README."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conformance.adapter_actions import adapter_actions

POLICY = Path(__file__).resolve().parents[2] / "deploy" / "ram" / "panel-policy.json"
# The SDK's product code -> RAM's service prefix (Alibaba's RAM action names).
RAM_PREFIX = {"Rds": "rds", "Slb": "slb", "Ecs": "ecs", "Vpc": "vpc", "Nlb": "nlb",
              "BssOpenApi": "bssapi", "Sts": "sts"}
# Called with the operator's own identity to become the role, not by the role: the policy
# that allows it is the caller's (README, "RAM role via AssumeRole").
NOT_THE_ROLES = {"sts:AssumeRole"}


def _allowed() -> set[str]:
    allowed: set[str] = set()
    for statement in json.loads(POLICY.read_text())["Statement"]:
        assert statement["Effect"] == "Allow"
        action = statement["Action"]
        allowed |= {action} if isinstance(action, str) else set(action)
    return allowed


def test_the_policy_allows_every_action_the_adapter_calls() -> None:
    actions, problems = adapter_actions()
    assert not problems
    called = {f"{RAM_PREFIX[a.product]}:{a.action}" for a in actions} - NOT_THE_ROLES
    missing = sorted(called - _allowed())
    assert not missing, f"deploy/ram/panel-policy.json lacks {missing}"


def test_the_policy_allows_nothing_the_adapter_never_calls() -> None:
    actions, _problems = adapter_actions()
    called = {f"{RAM_PREFIX[a.product]}:{a.action}" for a in actions}
    assert sorted(_allowed() - called) == []
