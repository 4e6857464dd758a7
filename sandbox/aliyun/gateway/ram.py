"""RAM policies as the gateway enforces them: who may call which action.

Why: a panel that runs with a least-privilege RAM user or an assumed role must see the same
refusal the real cloud gives when a permission is missing, naming the action, so that its
preflight can tell the person which permission to add. The gateway authorises every call
(products only declare their RAM namespace), so an STS token's session policy is enforced
the same way for every product.

What is modelled (RAM policy language, help doc "Policy elements" 93738 / "Policy structure
and syntax" 93739): `Version` "1", `Statement` list of `Effect` Allow|Deny, `Action` (string or
list, `*`/`?` wildcards, case-insensitive), `Resource`. An explicit Deny wins; no Allow means
an implicit deny. What is not modelled, a choice: `Resource` is not matched (every call is
taken to be on "*"), `Condition` blocks are accepted but only `sts:ExternalId` of a role's
trust policy is evaluated (by the STS product), and `NotAction`/`NotResource` are refused as a
grammar error.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

EFFECTS = ("Allow", "Deny")
MAX_POLICY_LENGTH = 2048  # AssumeRole Policy: 1 to 2,048 characters (V2 model docstring)


class PolicyGrammarError(ValueError):
    """The document is not a RAM policy we can evaluate."""


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise PolicyGrammarError("Action and Resource must be a string or a list of strings")


def parse_policy(document: str | dict[str, Any]) -> dict[str, Any]:
    """A checked policy document (dict); PolicyGrammarError when RAM would refuse it."""
    if isinstance(document, str):
        try:
            parsed = json.loads(document)
        except ValueError as exc:
            raise PolicyGrammarError("not JSON") from exc
    else:
        parsed = document
    if not isinstance(parsed, dict) or str(parsed.get("Version", "")) != "1":
        raise PolicyGrammarError('a policy is an object with "Version": "1"')
    statements = parsed.get("Statement")
    if not isinstance(statements, list) or not statements:
        raise PolicyGrammarError("Statement must be a non-empty list")
    for statement in statements:
        if not isinstance(statement, dict) or statement.get("Effect") not in EFFECTS:
            raise PolicyGrammarError("each statement needs Effect Allow or Deny")
        if "NotAction" in statement or "NotResource" in statement:
            raise PolicyGrammarError("NotAction/NotResource are not supported here")
        _as_list(statement.get("Action"))
        if "Resource" in statement:
            _as_list(statement["Resource"])
        if "Condition" in statement and not isinstance(statement["Condition"], dict):
            raise PolicyGrammarError("Condition must be an object")
    return parsed


def _matches(pattern: str, action: str) -> bool:
    return fnmatch.fnmatchcase(action.lower(), pattern.lower())


def decision(policy: dict[str, Any], action: str) -> str:
    """"Allow", "ExplicitDeny" or "ImplicitDeny" for `action` ("rds:CreateDBInstance")."""
    allowed = False
    for statement in policy["Statement"]:
        if not any(_matches(p, action) for p in _as_list(statement["Action"])):
            continue
        if statement["Effect"] == "Deny":
            return "ExplicitDeny"
        allowed = True
    return "Allow" if allowed else "ImplicitDeny"


def evaluate(policies: list[dict[str, Any]], action: str) -> str:
    """Every policy must allow (a role's policy ∩ its session policy); the first refusal wins."""
    for policy in policies:
        verdict = decision(policy, action)
        if verdict != "Allow":
            return verdict
    return "Allow"
