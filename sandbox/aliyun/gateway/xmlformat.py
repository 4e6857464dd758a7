"""`Format=XML` responses (the API's default when Format is absent; the SDK always asks JSON)."""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import escape


def _render(name: str, value: Any) -> str:
    if isinstance(value, dict):
        inner = "".join(_render(k, v) for k, v in value.items())
        return f"<{name}>{inner}</{name}>"
    if isinstance(value, list):
        return "".join(_render(name, item) for item in value)
    if isinstance(value, bool):
        value = "true" if value else "false"
    if value is None:
        value = ""
    return f"<{name}>{escape(str(value))}</{name}>"


def to_xml(root: str, body: dict[str, Any]) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?>' + _render(root, body)
