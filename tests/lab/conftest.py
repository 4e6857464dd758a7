"""One lab of three hosts shared by the lab tests (starting hosts is the slow part)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from sandbox.lab.lab import Lab
from sandbox.lab.testing import running_lab


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    started = time.monotonic()
    with running_lab(3) as lab:
        print(f"\nlab up 3 took {time.monotonic() - started:.2f}s")
        yield lab
