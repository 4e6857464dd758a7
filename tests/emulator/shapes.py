"""Checks a response against JSON paths and types taken from the API reference.

Why: the panel reads fields by path (`Items.DBInstanceAttribute[0].DBInstanceStatus`); a
missing wrapper or a number where the real API sends a string breaks it at the first real
call, so each action's response is checked path by path.
"""

from __future__ import annotations

from typing import Any

Spec = dict[str, type | tuple[type, ...]]


def _walk(value: Any, parts: list[str], path: str, expected: type | tuple[type, ...]) -> None:
    if not parts:
        if expected is int:
            assert isinstance(value, int) and not isinstance(value, bool), (
                f"{path}: expected int, got {value!r}")
        else:
            assert isinstance(value, expected), f"{path}: expected {expected}, got {value!r}"
        return
    head, rest = parts[0], parts[1:]
    is_list = head.endswith("[]")
    key = head[:-2] if is_list else head
    assert isinstance(value, dict) and key in value, f"{path}: missing {key!r} in {value!r}"[:300]
    child = value[key]
    if is_list:
        assert isinstance(child, list), f"{path}.{key}: expected a list, got {child!r}"
        assert child, f"{path}.{key}: expected a non-empty list"
        for index, item in enumerate(child):
            _walk(item, rest, f"{path}.{key}[{index}]", expected)
    else:
        _walk(child, rest, f"{path}.{key}", expected)


def assert_shape(body: dict[str, Any], spec: Spec) -> None:
    """Every `a.b[].c` path exists with the given type; RequestId is always required."""
    _walk(body, ["RequestId"], "$", str)
    for path, expected in spec.items():
        _walk(body, path.split("."), "$", expected)
