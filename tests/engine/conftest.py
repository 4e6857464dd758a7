"""Fixtures the engine and migration tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


@pytest.fixture
def back_to_latest() -> Iterator[None]:
    """Whatever a migration test does, leave the database fully migrated for the next one."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
