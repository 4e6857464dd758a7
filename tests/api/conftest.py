"""Fixtures of the API tests: the emulator and the K3s artifact server, as the wizard's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sandbox.aliyun.testing import Emulator
from sandbox.k3s.artifacts import ArtifactServer


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    with Emulator(tmp_path_factory.mktemp("api-emulator")) as emu:
        yield emu


@pytest.fixture(scope="session")
def artifacts() -> Iterator[ArtifactServer]:
    with ArtifactServer("127.0.0.1", 0) as server:
        yield server


@pytest.fixture
def cloud(emulator: Emulator, settings: Any) -> Emulator:
    settings.ALIYUN_ENDPOINT_OVERRIDE = emulator.endpoint
    return emulator
