"""Follow a run to its end: each step's status as it changes (with a count of finished
steps), its wait reason and error, and its log lines as they come (the API's ?after=
cursor)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from panelctl.client import Client

STEP_DONE = frozenset({"succeeded", "failed", "errored", "skipped", "cancelled"})
RUN_DONE = frozenset({"succeeded", "failed", "cancelled"})


def follow(client: Client, code: str, run_id: int, echo: Callable[[str], None], *,
           interval: float = 1.0, logs: bool = True, timeout: float | None = None) -> str:
    """Print the run's progress until it ends; its final status."""
    shown: dict[int, tuple[str, str]] = {}
    cursor: dict[int, int] = {}
    finished_logs: set[int] = set()
    deadline = time.monotonic() + timeout if timeout else None
    while True:
        run = client.get(f"clusters/{code}/runs/{run_id}/")
        steps: list[dict[str, Any]] = run["steps"]
        done = sum(step["status"] in STEP_DONE for step in steps)
        for step in steps:
            state = (step["status"], step.get("wait_reason") or "")
            if shown.get(step["id"]) != state:
                shown[step["id"]] = state
                if step["status"] != "pending" or step["id"] in cursor:
                    line = f"[{done}/{len(steps)}] {step['title']}: {step['status']}"
                    if step["status"] == "waiting" and state[1]:
                        line += f" ({state[1]})"
                    echo(line)
            if logs and step["status"] != "pending" and step["id"] not in finished_logs:
                _print_log(client, code, run_id, step, cursor=cursor, echo=echo)
                if step["status"] in STEP_DONE:
                    finished_logs.add(step["id"])
            if step["status"] in ("failed", "errored") and step.get("error") and \
                    shown.get(-step["id"]) != (step["error"], ""):
                shown[-step["id"]] = (step["error"], "")
                echo(f"    error: {step['error']}")
        if run["status"] in RUN_DONE:
            echo(f"run #{run_id} ({run['kind']}) {run['status']}")
            return str(run["status"])
        if deadline and time.monotonic() > deadline:
            echo(f"run #{run_id} still {run['status']} after {timeout:.0f} s")
            return str(run["status"])
        time.sleep(interval)


def _print_log(client: Client, code: str, run_id: int, step: dict[str, Any], *,
               cursor: dict[int, int], echo: Callable[[str], None]) -> None:
    while True:
        after = cursor.get(step["id"], 0)
        page = client.get(f"clusters/{code}/runs/{run_id}/steps/{step['id']}/log/",
                          after=after)
        omitted = page.get("omitted")
        if omitted and omitted["from"] <= after < omitted["to"]:
            # Past the marker already: lines after the cursor were trimmed before this
            # follower read them. Say so, rather than jump over them in silence.
            echo(f"    [lines {after + 1}-{omitted['to']} were trimmed from the stored log "
                 f"while following; it omits {omitted['lines']:,} lines "
                 f"({omitted['bytes']:,} bytes) in all]")
        for line in page["lines"]:
            echo(render_line(line))
        cursor[step["id"]] = max(page["next"], omitted["to"] if omitted and after >=
                                 omitted["from"] else 0)
        if not page["lines"]:
            return


def render_line(line: dict[str, Any]) -> str:
    """One log line as watch prints it: the marker row and a cut line in words."""
    if line.get("stream") == "omitted":
        return (f"    [... {line.get('omitted_lines', 0):,} lines "
                f"({line.get('omitted_bytes', 0):,} bytes) omitted here: the stored log "
                "keeps a step's first and newest lines ...]")
    text = f"    | {line['text']}"
    if line.get("cut_chars"):
        text += f" [cut {line['cut_chars']:,} characters]"
    return text
