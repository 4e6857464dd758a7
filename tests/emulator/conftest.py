"""Fixtures: one emulator per test module (fast), fresh ones where a test restarts it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.aliyun.testing import Emulator


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with Emulator(tmp_path_factory.mktemp("emulator"), time_scale=0.01) as emulator:
        yield emulator


@pytest.fixture
def fresh_emu(tmp_path: Path) -> Iterator[Emulator]:
    with Emulator(tmp_path / "state", time_scale=0.01) as emulator:
        yield emulator
