"""Lab hosts for the offline world: OpenSSH servers in their own namespaces.

Imports are lazy so the host-side tools (`sandbox.lab.hostctl`) start fast and need nothing
but the standard library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.lab.lab import Lab, LabError
    from sandbox.lab.state import Host

__all__ = ["Host", "Lab", "LabError"]


def __getattr__(name: str) -> Any:
    if name in ("Lab", "LabError"):
        from sandbox.lab import lab  # noqa: PLC0415  lazy: see the module docstring

        return getattr(lab, name)
    if name == "Host":
        from sandbox.lab.state import Host  # noqa: PLC0415  lazy: see the module docstring

        return Host
    raise AttributeError(name)
