"""Calling the emulator through the SDK's own request classes (imported by emulator tests)."""

from __future__ import annotations

import json
from typing import Any

from sandbox.aliyun.testing import Emulator


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
