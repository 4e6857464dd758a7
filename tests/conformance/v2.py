"""Alibaba's V2 SDK models (`alibabacloud_<product><version>`) read as a schema oracle.

Why: Alibaba generates these packages from its OpenAPI metadata, so their request and
response models record each action's parameters and answer shapes independently of anything
the team wrote. This module turns a model class into a schema (wire key → field type) and
checks a captured request and a parsed answer against it.

How the schema is read (darabonba 1.0.x generated models):
- field types: the `__init__` annotations (`typing.get_type_hints`);
- wire keys: `to_map()` of an instance with only that field set, compared with an empty one
  (the generated `to_map` is the only place that names the wire key of each attribute);
- required fields: the generator of these versions emits no `validate_required` calls (grep
  finds none in the six packages); Alibaba's "required" flag survives as the line
  `# This parameter is required.` in the field's comment block, read from the source of
  `__init__`. A `validate_required` in an older package is honoured too (`validate()`).
- JSON-string parameters: a `str` field whose comment says "JSON" (e.g. ECS DescribeInstances
  PrivateIpAddresses "The value is a JSON array", RDS ModifyParameter Parameters "The JSON
  string ...") must carry text that parses as JSON (a Python repr would not).
"""

from __future__ import annotations

import importlib
import inspect
import json
import re
import sys
import typing
from dataclasses import dataclass, field
from importlib.metadata import version as dist_version
from typing import Any

from darabonba.model import DaraModel

ROOT = "$"  # how a path to the whole body prints


@dataclass(frozen=True)
class FieldType:
    """One field's type: kind is str/int/float/bool/any/dict/list/model."""

    kind: str
    item: FieldType | None = None          # kind == "list"
    model: type[DaraModel] | None = None   # kind == "model"

    def describe(self) -> str:
        if self.kind == "list" and self.item:
            return f"list of {self.item.describe()}"
        if self.kind == "model" and self.model:
            return f"object {self.model.__name__}"
        return self.kind


@dataclass(frozen=True)
class Field:
    key: str
    attr: str
    type: FieldType
    required: bool = False
    json_text: bool = False  # a string whose V2 description says it holds JSON


@dataclass
class Schema:
    model: type[DaraModel]
    fields: dict[str, Field] = field(default_factory=dict)  # wire key → field


def package_for(product: str, version: str) -> str:
    """("Rds", "2014-08-15") → "alibabacloud_rds20140815" (the V2 package's import name)."""
    return f"alibabacloud_{product.lower()}{version.replace('-', '')}"


def models_module(product: str, version: str) -> Any:
    return importlib.import_module(package_for(product, version) + ".models")


def package_version(product: str, version: str) -> str:
    return dist_version(package_for(product, version).replace("_", "-"))


def model_class(product: str, version: str, name: str) -> type[DaraModel] | None:
    return getattr(models_module(product, version), name, None)


# ---- schema introspection ------------------------------------------------------------------

_SCALARS = {bool: "bool", int: "int", float: "float", str: "str"}


def _field_type(annotation: Any) -> FieldType:
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin is typing.Union:  # Optional[X]
        kind = _field_type(args[0]) if len(args) == 1 else FieldType("any")
    elif origin is list:  # typing.List[X] in the generated code
        kind = FieldType("list", item=_field_type(args[0]) if args else FieldType("any"))
    elif origin is dict:
        kind = FieldType("dict")
    elif inspect.isclass(annotation) and issubclass(annotation, DaraModel):
        kind = FieldType("model", model=annotation)
    else:
        kind = FieldType(_SCALARS.get(annotation, "any"))
    return kind


def _dummy(kind: FieldType) -> Any:
    if kind.kind == "list":
        return [_dummy(kind.item or FieldType("any"))]
    if kind.kind == "model" and kind.model:
        return kind.model()
    return {"str": "x", "int": 1, "float": 1.5, "bool": True, "dict": {"k": "v"}}.get(
        kind.kind, "x")


_REQUIRED_LINE = "# This parameter is required."


def _comments(model: type[DaraModel]) -> dict[str, list[str]]:
    """Each attribute's comment block (the lines right above `self.x = x` in `__init__`)."""
    try:
        source = inspect.getsource(model.__init__)
    except (OSError, TypeError):
        return {}
    comments: dict[str, list[str]] = {}
    block: list[str] = []
    for line in source.splitlines():
        text = line.strip()
        if text.startswith("#"):
            block.append(text)
            continue
        assigned = re.match(r"self\.(\w+) = \w+$", text)
        if assigned:
            comments[assigned.group(1)] = block
        block = []
    return comments


def doc_of(model: type[DaraModel], attr: str) -> str:
    """One attribute's V2 comment as one line of text (the `# ` markers dropped)."""
    return " ".join(line.lstrip("#").strip() for line in _comments(model).get(attr, []))


_SCHEMAS: dict[type, Schema] = {}


def schema_of(model: type[DaraModel]) -> Schema:
    """The schema of one model class (computed once per class)."""
    if model not in _SCHEMAS:
        _SCHEMAS[model] = _build_schema(model)
    return _SCHEMAS[model]


def _build_schema(model: type[DaraModel]) -> Schema:
    module = sys.modules[model.__module__]
    hints = typing.get_type_hints(model.__init__, globalns=vars(module))
    hints.pop("return", None)
    baseline = model().to_map() or {}
    comments = _comments(model)
    schema = Schema(model)
    for attr, annotation in hints.items():
        kind = _field_type(annotation)
        probe = model(**{attr: _dummy(kind)}).to_map() or {}
        changed = [k for k, v in probe.items() if baseline.get(k, _MISSING) != v]
        if len(changed) != 1:
            raise AssertionError(f"{model.__name__}.{attr}: cannot tell its wire key "
                                 f"({changed})")
        block = comments.get(attr, [])
        schema.fields[changed[0]] = Field(
            changed[0], attr, kind, required=_REQUIRED_LINE in block,
            json_text=kind.kind == "str" and any("JSON" in line for line in block))
    return schema


_MISSING = object()


def field_at(model: type[DaraModel], path: tuple[str, ...]) -> tuple[FieldType | None, str]:
    """The V2 type at `path` ("[]" = a list element) or (None, why not)."""
    current = FieldType("model", model=model)
    for depth, segment in enumerate(path):
        where = dotted(path[:depth]) or ROOT
        if current.kind in ("any", "dict"):
            return current, ""
        if segment == "[]":
            if current.kind != "list" or current.item is None:
                return None, f"V2 has {current.describe()} at {where}, not a list"
            current = current.item
            continue
        if current.kind != "model" or current.model is None:
            return None, f"V2 has {current.describe()} at {where}, not an object"
        found = schema_of(current.model).fields.get(segment)
        if found is None:
            return None, f"V2 {current.model.__name__} has no field {segment!r}"
        current = found.type
    return current, ""


def dotted(path: tuple[str, ...]) -> str:
    text = ""
    for segment in path:
        text += "[]" if segment == "[]" else (f".{segment}" if text else segment)
    return text


# ---- type compatibility --------------------------------------------------------------------

def json_type_matches(value: Any, kind: FieldType) -> bool:
    """Does a value of the parsed JSON answer fit the V2 field type? (null always does)"""
    if value is None or kind.kind == "any":
        return True
    return {
        "str": lambda: isinstance(value, str),
        "int": lambda: isinstance(value, int) and not isinstance(value, bool),
        "float": lambda: isinstance(value, int | float) and not isinstance(value, bool),
        "bool": lambda: isinstance(value, bool),
        "dict": lambda: isinstance(value, dict),
        "model": lambda: isinstance(value, dict),
        "list": lambda: isinstance(value, list),
    }[kind.kind]()


def json_type_name(value: Any) -> str:
    return {str: "string", bool: "boolean", int: "integer", float: "number", dict: "object",
            list: "array"}.get(type(value), type(value).__name__)


_INT = re.compile(r"-?\d+")
_FLOAT = re.compile(r"-?\d+(\.\d+)?")


def query_value_problem(value: str, kind: FieldType) -> str:
    """Why a query-string value cannot be that V2 type ('' when it can)."""
    if kind.kind in ("str", "any"):
        return ""
    if kind.kind == "int" and not _INT.fullmatch(value):
        return f"V2 types it int, the panel sends {value!r}"
    if kind.kind == "float" and not _FLOAT.fullmatch(value):
        return f"V2 types it float, the panel sends {value!r}"
    if kind.kind == "bool" and value.lower() not in ("true", "false"):
        return f"V2 types it bool, the panel sends {value!r}"
    if kind.kind in ("list", "model", "dict"):
        flattened = "Name.1" if kind.kind == "list" else "Name.Key"
        return (f"V2 types it {kind.describe()} (sent flattened as {flattened}...), the panel "
                f"sends one value {value!r}")
    return ""


def typed_query_value(value: str, kind: FieldType) -> Any:
    if kind.kind == "int" and _INT.fullmatch(value):
        return int(value)
    if kind.kind == "float" and _FLOAT.fullmatch(value):
        return float(value)
    if kind.kind == "bool" and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return value


# ---- requests ------------------------------------------------------------------------------

# Added by the transport to every RPC request, never part of an action's model.
COMMON_QUERY = frozenset({
    "Action", "Version", "Format", "AccessKeyId", "Signature", "SignatureMethod",
    "SignatureVersion", "SignatureNonce", "SignatureType", "Timestamp", "SecurityToken",
})


def _unflatten(params: dict[str, str]) -> dict[str, Any]:
    """{"Tag.1.Key": "a"} → {"Tag": {"1": {"Key": "a"}}} (digit segments stay keys)."""
    tree: dict[str, Any] = {}
    for key, value in params.items():
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):  # "A" and "A.1" both sent
                child = node[part] = {"": child}
            node = child
        node[parts[-1]] = value
    return tree


def check_request(model: type[DaraModel], shrink: type[DaraModel] | None,
                  params: dict[str, str]) -> list[str]:
    """Problems of one captured query against the V2 request model (and its wire form).

    `shrink` is the `<Action>ShrinkRequest` when V2 has one: the V2 client sends such
    fields as one JSON string under the same key, so that string is the wire form.
    """
    sent = {k: v for k, v in params.items() if k not in COMMON_QUERY}
    if "RegionId" not in schema_of(model).fields:
        # aliyunsdkcore adds RegionId to every RPC request it signs (request.py,
        # `RpcRequest._get_sign_params`), whether the action takes one or not.
        sent.pop("RegionId", None)
    problems: list[str] = []
    tree = _unflatten(sent)
    problems += _check_tree(model, shrink, tree, ())
    problems += _missing_required(model, tree, ())
    return problems


def _check_tree(model: type[DaraModel], shrink: type[DaraModel] | None, tree: dict[str, Any],
                prefix: tuple[str, ...]) -> list[str]:
    problems: list[str] = []
    fields = schema_of(model).fields
    shrink_fields = schema_of(shrink).fields if shrink else {}
    for key, value in tree.items():
        name = ".".join((*prefix, key))
        known = fields.get(key)
        if known is None:
            problems.append(f"parameter {name}: V2 {model.__name__} has no such parameter")
            continue
        wire = shrink_fields.get(key)
        if isinstance(value, str) and wire is not None and wire.type.kind == "str" \
                and known.type.kind != "str":
            if not _is_json(value):
                problems.append(f"parameter {name}: V2 sends it as a JSON string, the panel "
                                f"sends {value!r}")
            continue
        if known.json_text and isinstance(value, str) and not _is_json(value):
            problems.append(f"parameter {name}: V2 describes it as JSON text, the panel sends "
                            f"{value!r}")
            continue
        problems += _check_value(known.type, value, name)
    return problems


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _check_value(kind: FieldType, value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        why = query_value_problem(value, kind)
        return [f"parameter {name}: {why}"] if why else []
    # a flattened form: Name.1, Name.1.Key, Name.Key
    if kind.kind in ("any", "dict"):
        return []
    if kind.kind == "list" and kind.item is not None:
        problems = []
        for index, item in value.items():
            if not index.isdigit() or int(index) < 1:
                problems.append(f"parameter {name}.{index}: V2 types {name} as a list "
                                "(Name.N, N from 1)")
                continue
            problems += _check_value(kind.item, item, f"{name}.{index}")
        return problems
    if kind.kind == "model" and kind.model is not None:
        if not isinstance(value, dict):
            return [f"parameter {name}: V2 types it {kind.describe()}"]
        problems = _check_tree(kind.model, None, value, tuple(name.split(".")))
        return problems + _missing_required(kind.model, value, tuple(name.split(".")))
    return [f"parameter {name}: V2 types it {kind.describe()}, the panel sends a flattened "
            f"form ({', '.join(sorted(value))})"]


def _missing_required(model: type[DaraModel], tree: dict[str, Any],
                      prefix: tuple[str, ...]) -> list[str]:
    problems = [f"parameter {'.'.join((*prefix, f.key))}: V2 marks it required, the panel "
                "does not send it"
                for f in schema_of(model).fields.values() if f.required and f.key not in tree]
    problems += _validate(model, tree, prefix)
    return problems


def _validate(model: type[DaraModel], tree: dict[str, Any], prefix: tuple[str, ...]) -> list[str]:
    """Run the model's own validate() on the top-level scalars the panel sent."""
    if prefix:
        return []
    fields = schema_of(model).fields
    typed = {k: typed_query_value(v, fields[k].type) for k, v in tree.items()
             if k in fields and isinstance(v, str) and fields[k].type.kind not in
             ("list", "model", "dict")}
    instance = model()
    for key, value in typed.items():
        setattr(instance, fields[key].attr, value)
    try:
        instance.validate()
    except Exception as exc:
        return [f"V2 {model.__name__}.validate() refuses the request: {exc}"]
    return []


# ---- responses -----------------------------------------------------------------------------

def unknown_fields(model: type[DaraModel], body: Any, path: tuple[str, ...] = ()) -> list[str]:
    """Every field of the answer V2 does not know, or knows with another JSON type."""
    problems: list[str] = []
    _walk(FieldType("model", model=model), body, path, problems)
    return problems


def _walk(kind: FieldType, value: Any, path: tuple[str, ...], problems: list[str]) -> None:
    where = dotted(path) or ROOT
    if not json_type_matches(value, kind):
        problems.append(f"response field {where}: V2 types it {kind.describe()}, the emulator "
                        f"returns {json_type_name(value)} {_short(value)}")
        return
    if kind.kind == "list" and kind.item and isinstance(value, list):
        for item in value:
            _walk(kind.item, item, (*path, "[]"), problems)
    elif kind.kind == "model" and kind.model and isinstance(value, dict):
        fields = schema_of(kind.model).fields
        for key, item in value.items():
            known = fields.get(key)
            if known is None:
                problems.append(f"response field {dotted((*path, key))}: V2 "
                                f"{kind.model.__name__} has no such field (invented or "
                                "misnamed by the emulator?)")
                continue
            _walk(known.type, item, (*path, key), problems)


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def values_at(body: Any, path: tuple[str, ...]) -> list[Any]:
    """All values at `path` ("[]" fans out over list elements); absent → nothing."""
    current = [body]
    for segment in path:
        following: list[Any] = []
        for node in current:
            if segment == "[]":
                if isinstance(node, list):
                    following.extend(node)
            elif isinstance(node, dict) and segment in node:
                following.append(node[segment])
        current = following
    return current


def round_trip(model: type[DaraModel], body: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """`Model().from_map(body).to_map()`, or (None, why it failed)."""
    try:
        return model().from_map(json.loads(json.dumps(body))).to_map(), ""
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"
