"""The emulator's declared request parameters, every action, against the V2 request models.

Why: the emulator validates what it declares (`Param(...)` in `sandbox/aliyun/*.py`); a
parameter the real API does not have, a wrong kind, or a different "required" would make it
accept what Alibaba refuses or refuse what Alibaba accepts, whatever the panel sends today.
Pure introspection (no emulator process): fast.
"""

from __future__ import annotations

import pytest

from sandbox.aliyun.gateway.registry import load_products
from tests.conformance import v2

# The emulator's kind → the V2 field kinds it is compatible with ("json" = JSON text, which
# V2 types as str or, in its shrink form, as a list/object sent as one string).
COMPATIBLE = {"string": {"str"}, "integer": {"int"}, "boolean": {"bool"}, "float": {"float"},
              "json": {"str", "list", "model", "dict"}}

# Differences that are right, each with the source that says so.
ALLOWED: dict[tuple[str, str, str], str] = {
    ("Rds", "CreateDBInstance", "Port"):
        "V2 types Port as a string, but its value is a port number: 'MySQL: 1000 to 65534' "
        "(CreateDBInstanceRequest.port docstring); the emulator checks that range.",
    ("Rds", "ModifyParameter", "Parameters"):
        "V2 marks neither Parameters nor ParameterGroupId required because one of the two is "
        "(ModifyParameterRequest docstrings); the emulator has no parameter groups, so "
        "Parameters is the one it needs.",
    ("Slb", "AddBackendServers", "BackendServers"):
        "The CLB API reference marks BackendServers required ('BackendServers String Yes', "
        "https://www.alibabacloud.com/help/doc-detail/27632.htm); V2 carries no flag for it.",
    ("Slb", "SetBackendServers", "BackendServers"):
        "As AddBackendServers: required in the CLB API reference, unflagged in V2.",
}

PRODUCTS = sorted(load_products().items(), key=lambda item: item[1].code)
ACTIONS = [(version, product.code, name, action)
           for version, product in PRODUCTS for name, action in sorted(product.actions.items())]


@pytest.mark.parametrize(("version", "product", "name", "action"), ACTIONS,
                         ids=[f"{p}-{n}" for _, p, n, _ in ACTIONS])
def test_emulator_parameters_match_v2(version: str, product: str, name: str,
                                      action: object) -> None:
    model = v2.model_class(product, version, f"{name}Request")
    assert model is not None, f"{product} {name}: V2 has no {name}Request (invented action?)"
    fields = v2.schema_of(model).fields
    declared = {p.name: p for p in action.params}  # type: ignore[attr-defined]
    problems = []
    for param in declared.values():
        known = fields.get(param.name)
        if (product, name, param.name) in ALLOWED:
            continue
        if known is None:
            problems.append(f"parameter {param.name}: V2 {model.__name__} has no such "
                            "parameter (invented or misnamed?)")
            continue
        if known.type.kind not in COMPATIBLE.get(param.kind, set()) | {"any"}:
            problems.append(f"parameter {param.name}: the emulator reads it as {param.kind}, "
                            f"V2 types it {known.type.describe()}")
        if param.required and not known.required and param.name != "RegionId":
            problems.append(f"parameter {param.name}: the emulator requires it, V2 does not")
    for key, known in fields.items():
        # RegionId: aliyunsdkcore adds it to every RPC request, so no SDK call lacks it.
        # Lists (Tag.N, ResourceId.N) are read by handlers from the raw query, not declared.
        if not known.required or key == "RegionId" or known.type.kind in ("list", "model"):
            continue
        if (product, name, key) in ALLOWED:
            continue
        if key not in declared or not declared[key].required:
            problems.append(f"parameter {key}: V2 marks it required, the emulator does not")
    assert not problems, "\n".join(f"{product} {name}: {p}" for p in problems)
