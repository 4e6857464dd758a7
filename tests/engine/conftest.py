"""Fixtures the engine and migration tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from sandbox.aliyun.testing import Emulator
from tests.support.engine_specs import InProcessEngine, in_process_engine
from tests.support.factories import factories_emulator


@pytest.fixture(scope="module")
def emu(request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """One emulator per test module (its state directory named after the module)."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    with factories_emulator(Path(tmp_path_factory.mktemp(name))) as emulator:
        yield emulator


@pytest.fixture
def engine(db: Any) -> Iterator[InProcessEngine]:
    """The engine driven in this process: each message a step sends is delivered by hand."""
    with in_process_engine() as driven:
        yield driven


@pytest.fixture
def back_to_latest() -> Iterator[None]:
    """Whatever a migration test does, leave the database fully migrated for the next one."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
