"""The spec tier runs the engine in this process (tests/support/engine_specs.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.engine_specs import InProcessEngine, in_process_engine


@pytest.fixture
def engine(db: Any) -> Iterator[InProcessEngine]:
    with in_process_engine() as driven:
        yield driven
