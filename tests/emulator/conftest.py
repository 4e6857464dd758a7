"""Fixtures: one emulator per test module (fast), fresh ones where a test restarts it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def host_ip(emu: Emulator, last_octet: int) -> str:
    """An address of the emulator's first vSwitch (loopback mode: a 127.X.Y.Z address)."""
    return emu.vswitch["cidr"].rsplit(".", 1)[0] + f".{last_octet}"


def call(emu: Emulator, request: Any, **setters: Any) -> dict[str, Any]:
    """Fill an SDK request through its own setters (set_<Name>) and run it."""
    for name, value in setters.items():
        getattr(request, f"set_{name}")(value)
    return emu.call(request)


def as_json(value: Any) -> str:
    return json.dumps(value)
