"""Declared action parameters: names, types, required-ness and allowed values.

Why: the real API refuses a missing or malformed parameter before doing anything, with a
documented code; declaring parameters once per action lets the framework refuse the same way
for every product, and hands handlers typed values.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.aliyun.gateway import errors

_INTEGER = re.compile(r"^-?\d+$")


@dataclass(frozen=True)
class Param:
    """One request parameter. `kind` is string, integer, boolean, json or float."""

    name: str
    kind: str = "string"
    required: bool = False
    enum: tuple[str, ...] | None = None
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    # json params: also accept a Python repr (what the SDK sends when given a list).
    python_repr_ok: bool = False


def _convert(param: Param, raw: str) -> Any:
    if param.kind == "string":
        if param.max_length is not None and len(raw) > param.max_length:
            raise errors.invalid_parameter(param.name)
        if param.enum is not None and raw not in param.enum:
            raise errors.invalid_parameter(param.name)
        return raw
    if param.kind == "integer":
        if not _INTEGER.match(raw.strip()):
            raise errors.invalid_parameter(param.name)
        value = int(raw)
        if (param.minimum is not None and value < param.minimum) or (
            param.maximum is not None and value > param.maximum
        ):
            raise errors.invalid_parameter(param.name)
        if param.enum is not None and raw not in param.enum:
            raise errors.invalid_parameter(param.name)
        return value
    if param.kind == "float":
        try:
            return float(raw)
        except ValueError as exc:
            raise errors.invalid_parameter(param.name) from exc
    if param.kind == "boolean":
        lowered = raw.strip().lower()
        if lowered not in ("true", "false"):
            raise errors.invalid_parameter(param.name)
        return lowered == "true"
    if param.kind == "json":
        return parse_json_value(param, raw)
    raise ValueError(f"unknown parameter kind {param.kind!r}")


def parse_json_value(param: Param, raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        if param.python_repr_ok:
            try:
                return ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                pass
        raise errors.invalid_parameter(param.name) from None


class Params(Mapping[str, Any]):
    """Typed values of the declared parameters; `raw` keeps every string as sent."""

    def __init__(self, values: dict[str, Any], raw: Mapping[str, str]) -> None:
        self._values = values
        self.raw = dict(raw)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def given(self, key: str) -> bool:
        """True when the caller sent the parameter (blank counts as not sent)."""
        return self.raw.get(key, "") != ""

    def repeat_list(self, prefix: str, fields: tuple[str, ...] = ()) -> list[Any]:
        """`Prefix.N` (fields empty) or `Prefix.N.Field` values, ordered by N."""
        return repeat_list(self.raw, prefix, fields)


def repeat_list(raw: Mapping[str, str], prefix: str, fields: tuple[str, ...] = ()) -> list[Any]:
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)(?:\.(\w+))?$")
    found: dict[int, dict[str, str] | str] = {}
    for key, value in raw.items():
        match = pattern.match(key)
        if not match:
            continue
        index, field = int(match.group(1)), match.group(2)
        if fields and field in fields:
            entry = found.setdefault(index, {})
            if isinstance(entry, dict):
                entry[field] = value
        elif not fields and field is None:
            found[index] = value
    return [found[i] for i in sorted(found)]


MissingStyle = Callable[[str], errors.ApiError]


def validate(
    declared: tuple[Param, ...], raw: Mapping[str, str],
    missing: MissingStyle = errors.missing_parameter,
) -> Params:
    """Check and convert declared parameters, raising the first error the gateway would."""
    values: dict[str, Any] = {}
    for param in declared:
        text = raw.get(param.name)
        if text is None or text == "":
            if param.required:
                raise missing(param.name)
            values[param.name] = param.default
            continue
        values[param.name] = _convert(param, text)
    return Params(values, raw)
