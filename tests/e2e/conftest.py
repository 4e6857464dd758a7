"""The offline world for end-to-end tests: lab hosts, the emulator, the artifact server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.world import World, running_world


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """A fresh world per test (about 3 s): no K3s, RDS or SLB left over from another test.

    Three lab hosts, or as many as `@pytest.mark.world_hosts(n)` asks for (a test that runs
    several clusters at once)."""
    marker = request.node.get_closest_marker("world_hosts")
    hosts = marker.args[0] if marker else 3
    with running_world(hosts=hosts, time_scale=0.01, state_dir=tmp_path / "world") as started:
        yield started


@pytest.fixture(autouse=True)
def panel_uses_world(world: World, settings) -> World:
    """This test process talks to the world's emulator too (health checks, views)."""
    settings.ALIYUN_ENDPOINT_OVERRIDE = world.endpoint
    return world
