"""The hosts page's rows before they are saved: a blank row, add one, remove one, or add the
instances picked from the VPC's list.

Why here and not in the view: the same rules hold wherever rows are edited, and they know
nothing of HTTP; the view hands in the POSTed picks and flashes what comes back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext as _

from clusters.adapters.aliyun.models import Instance
from clusters.interface import wizard
from clusters.interface.forms.wizard_instances import PICK_PREFIX, pick_instances
from clusters.models import NodeRole

ROW_ACTIONS = ("add_server", "add_agent", "pick")


def blank_row(role: str) -> dict[str, Any]:
    """A new row: port 22 as root with a key, and its own reference for its secrets."""
    return {"role": role, "ssh_port": 22, "ssh_user": "root", "auth": "key",
            "secret_ref": wizard.new_secret_ref()}


def is_row_action(action: str) -> bool:
    return action in ROW_ACTIONS or action.startswith("remove-")


@dataclass
class Edited:
    """The rows after the edit, and what to tell the person about it."""

    rows: list[dict[str, Any]]
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def edit_rows(action: str, rows: list[dict[str, Any]], posted: Mapping[str, Any],
              instances: list[Instance]) -> Edited:
    """Add a blank row, remove one (never the last), or add the instances picked from the
    VPC's list (`posted`: the form's `pick-<InstanceId>` fields; judged again against
    `instances`, the fresh list)."""
    if action in ("add_server", "add_agent"):
        rows.append(blank_row(NodeRole.SERVER if action == "add_server" else NodeRole.AGENT))
    elif action.startswith("remove-") and action[7:].isdigit() and len(rows) > 1:
        rows.pop(min(int(action[7:]), len(rows) - 1))
    elif action == "pick":
        picks = {key[len(PICK_PREFIX):]: str(value) for key, value in posted.items()
                 if key.startswith(PICK_PREFIX)}
        rows, problems = pick_instances(instances, rows, picks, blank_row)
        warnings = [] if problems or any(picks.values()) else [
            _("Choose Server or Agent for at least one instance first.")]
        return Edited(rows, problems, warnings)
    return Edited(rows)
