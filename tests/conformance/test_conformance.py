"""Every Alibaba Cloud action the adapter calls, judged by Alibaba's V2 SDK models.

For each action found in `clusters/adapters/aliyun/` (see `adapter_actions`), its scenario
(`scenarios.py`) drives the real adapter against the loopback emulator, then:
- request: every parameter the panel sent (the emulator's call log, i.e. the wire) exists on
  `<Action>Request` with a compatible type (flattened `Tag.N.Key` lists, JSON-string
  parameters), and every parameter V2 marks required is sent;
- response: every field the panel read (recorded at the client boundary) exists in
  `<Action>ResponseBody` at the same nesting with a compatible type and survives V2's
  `from_map`→`to_map`; every field the emulator returns is known to V2 (invented or misnamed
  fields fail, unless allowed with a source in `checks.EXTRA_FIELDS_ALLOWED`).
Adding an action: see the docstring of `scenarios.py`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.aliyun.testing import Emulator
from tests.conformance import checks, v2
from tests.conformance.adapter_actions import AdapterAction, adapter_actions
from tests.conformance.scenarios import SCENARIOS, World

ACTIONS, UNREADABLE = adapter_actions()


def _param(action: AdapterAction) -> object:
    found = SCENARIOS.get(action.key)
    marks = [pytest.mark.xfail(strict=True, reason=found.xfail)] if found and found.xfail else []
    return pytest.param(action, id=f"{action.product}-{action.action}", marks=marks)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with Emulator(Path(tmp_path_factory.mktemp("conformance")), time_scale=0.01) as emulator:
        yield World.start(emulator)


def test_the_adapter_actions_are_found() -> None:
    """The discovery itself works: a broken parser must not make the suite vacuous."""
    assert not UNREADABLE, "\n".join(UNREADABLE)
    keys = {a.key for a in ACTIONS}
    assert {("Rds", "CreateDBInstance"), ("Slb", "CreateLoadBalancer"),
            ("Ecs", "DescribeInstances"), ("Vpc", "DescribeVSwitches")} <= keys


def test_every_adapter_action_has_a_scenario() -> None:
    missing = checks.missing_scenarios(ACTIONS, SCENARIOS)
    assert not missing, ("actions the adapter calls without a conformance scenario "
                         "(add one in tests/conformance/scenarios.py):\n" + "\n".join(missing))


def test_every_adapter_action_has_a_v2_model() -> None:
    missing = []
    for action in ACTIONS:
        try:
            request = v2.model_class(action.product, action.version, f"{action.action}Request")
        except ImportError:
            missing.append(f"{action.product} {action.action}: V2 package "
                           f"{v2.package_for(action.product, action.version)} is not installed"
                           " (add it to requirements-dev.txt)")
            continue
        if request is None:
            missing.append(f"{action.product} {action.action}: no {action.action}Request in "
                           f"{v2.package_for(action.product, action.version)}")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize("action", [_param(a) for a in ACTIONS])
def test_action_conforms_to_v2(world: World, action: AdapterAction) -> None:
    found = SCENARIOS.get(action.key)
    if found is None:
        pytest.fail(f"{action.product} {action.action}: no conformance scenario")
    calls_before = len(world.emulator.control.calls())
    observed_before = len(world.client.observations)
    found.run(world)
    calls = [c for c in world.emulator.control.calls()[calls_before:]
             if c["action"] == action.action and c["version"] == action.version]
    succeeded = [c for c in calls if c["status"] == 200]
    observations = [o for o in world.client.observations[observed_before:]
                    if o.action == action.action and o.version == action.version]
    assert succeeded and observations, (
        f"{action.product} {action.action}: the scenario made no successful call of it "
        f"({[(c['status'], c['code']) for c in calls]})")
    problems = checks.dedupe(
        checks.check_requests(action.product, action.version, action.action, succeeded)
        + checks.check_answers(action.product, action.version, action.action, observations))
    assert not problems, "\n".join(f"{action.product} {action.action}: {p}" for p in problems)
