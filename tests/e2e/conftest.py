"""The offline world for end-to-end tests: lab hosts, the emulator, the artifact server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.world import World, running_world
from tests.support.world_clusters import (
    TEST_K3S_WARMUP_SECONDS,
    WORLD_TIME_SCALE,
    k3s_warmup,
)


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """A fresh world per test (about 3 s): no K3s, RDS or SLB left over from another test.

    Three lab hosts, or as many as `@pytest.mark.world_hosts(n)` asks for (a test that runs
    several clusters at once); the K3s API warms up in TEST_K3S_WARMUP_SECONDS unless
    `@pytest.mark.world_k3s_warmup(s)` asks for another."""
    marker = request.node.get_closest_marker("world_hosts")
    hosts = marker.args[0] if marker else 3
    with running_world(hosts=hosts, time_scale=WORLD_TIME_SCALE,
                       state_dir=tmp_path / "world") as started:
        k3s_warmup(started, warmup_of(request))
        yield started


def warmup_of(request: pytest.FixtureRequest) -> float:
    """The K3s API's warm-up on this test's hosts: short, unless `world_k3s_warmup(s)` asks."""
    marker = request.node.get_closest_marker("world_k3s_warmup")
    return float(marker.args[0]) if marker else TEST_K3S_WARMUP_SECONDS


@pytest.fixture(autouse=True)
def panel_uses_world(world: World, settings) -> World:
    """This test process talks to the world's emulator too (health checks, views)."""
    settings.ALIYUN_ENDPOINT_OVERRIDE = world.endpoint
    return world
