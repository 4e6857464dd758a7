"""PageNumber/PageSize paging as the classic Describe* actions do it."""

from __future__ import annotations

from typing import Any

from sandbox.aliyun.gateway.params import Param


def page_params(default_size: int = 10, max_size: int = 100) -> tuple[Param, Param]:
    return (
        Param("PageNumber", "integer", default=1, minimum=1),
        Param("PageSize", "integer", default=default_size, minimum=1, maximum=max_size),
    )


def page(items: list[Any], number: int, size: int) -> list[Any]:
    start = (number - 1) * size
    return items[start:start + size]
