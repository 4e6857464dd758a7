"""Names of everything a lab creates, derived from its prefix.

Why: `down` must find leftovers of a crashed run by name alone, and must never touch
another engineer's namespaces or links, so every name is an exact function of the prefix
and the matchers are anchored regular expressions, not loose `startswith` checks.
"""

from __future__ import annotations

import re

# Linux interface names hold 15 characters: "<prefix>-v99" must fit.
PREFIX_PATTERN = re.compile(r"[a-z](?:[a-z0-9-]{0,8}[a-z0-9])?")
MAX_HOSTS = 99
HOST_IP_OFFSET = 10  # node1 is .11, node2 .12, ...
CLOUD_IP_OFFSET = 2
GATEWAY_IP_OFFSET = 1
CLOUD_DEV = "cloud0"
HOST_DEV = "eth0"


def check_prefix(prefix: str) -> str:
    if not PREFIX_PATTERN.fullmatch(prefix):
        raise ValueError(
            f"lab prefix {prefix!r} must be 1-10 lowercase letters, digits or hyphens, "
            "start with a letter and not end with a hyphen (it becomes part of hostnames "
            "and 15-character interface names)"
        )
    return prefix


def bridge(prefix: str) -> str:
    return f"{prefix}-br"


def host_name(index: int) -> str:
    return f"node{index}"


def host_netns(prefix: str, index: int) -> str:
    """Also the host's hostname: valid as both."""
    return f"{prefix}-node{index}"


def host_veth(prefix: str, index: int) -> str:
    return f"{prefix}-v{index}"


def cloud_netns(prefix: str) -> str:
    return f"{prefix}-cloud"


def cloud_veth(prefix: str) -> str:
    return f"{prefix}-vc"


def netns_matcher(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(prefix)}-(?:node\d+|cloud)")


def link_matcher(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(prefix)}-(?:br|vc|v\d+)")
