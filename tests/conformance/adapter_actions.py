"""Which Alibaba Cloud actions the adapter calls, read from its code (not a hand-kept list).

Two forms are recognised in `clusters/adapters/aliyun/**.py`:
- `from aliyunsdk<product>.request.v<yyyymmdd>.<Action>Request import <Action>Request`:
  the request class is imported and asked for its product, version and action;
- `CommonRequest`: in each function that builds one, the string constants given to
  `CommonRequest(product=, version=, action_name=)` or to `set_product`/`set_version`/
  `set_action_name` (module-level string constants are resolved). A CommonRequest whose
  action cannot be read that way is reported, so it cannot slip past the suite.
"""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass
from pathlib import Path

ADAPTER_DIR = Path(__file__).resolve().parents[2] / "clusters" / "adapters" / "aliyun"
_REQUEST_MODULE = re.compile(r"^aliyunsdk\w+\.request\.v\d{8}\.\w+Request$")
_COMMON_KEYWORDS = {"product": "product", "version": "version", "action_name": "action"}
_COMMON_SETTERS = {"set_product": "product", "set_version": "version",
                   "set_action_name": "action"}


@dataclass(frozen=True, order=True)
class AdapterAction:
    product: str   # the SDK's product code, e.g. "Rds", "BssOpenApi"
    version: str   # e.g. "2014-08-15"
    action: str
    source: str    # where the adapter uses it (file:line)

    @property
    def key(self) -> tuple[str, str]:
        return self.product, self.action


def adapter_actions(directory: Path = ADAPTER_DIR) -> tuple[list[AdapterAction], list[str]]:
    """(actions, problems): every action found, and every use that could not be read."""
    found: dict[tuple[str, str, str], AdapterAction] = {}
    problems: list[str] = []
    for path in sorted(directory.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(directory.parents[2])  # <repo>/clusters/adapters/aliyun
        for action in _sdk_request_imports(tree, where):
            found.setdefault((action.product, action.version, action.action), action)
        actions, unreadable = _common_requests(tree, where)
        for action in actions:
            found.setdefault((action.product, action.version, action.action), action)
        problems += unreadable
    return sorted(found.values()), problems


def _sdk_request_imports(tree: ast.Module, where: Path) -> list[AdapterAction]:
    actions = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and \
                _REQUEST_MODULE.match(node.module):
            module = importlib.import_module(node.module)
            for alias in node.names:
                request = getattr(module, alias.name)()
                actions.append(AdapterAction(request.get_product(), request.get_version(),
                                             request.get_action_name(),
                                             f"{where}:{node.lineno}"))
    return actions


def _constants(tree: ast.Module) -> dict[str, str]:
    return {target.id: node.value.value
            for node in tree.body if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            for target in node.targets if isinstance(target, ast.Name)}


def _common_requests(tree: ast.Module, where: Path) -> tuple[list[AdapterAction], list[str]]:
    constants = _constants(tree)

    def text(node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return constants.get(node.id)
        return None

    actions, problems = [], []
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        builds = [n for n in ast.walk(function) if isinstance(n, ast.Call)
                  and _name(n.func) == "CommonRequest"]
        if not builds:
            continue
        seen: dict[str, str | None] = {}
        for call in (n for n in ast.walk(function) if isinstance(n, ast.Call)):
            if call in builds:
                for keyword in call.keywords:
                    if keyword.arg in _COMMON_KEYWORDS:
                        seen[_COMMON_KEYWORDS[keyword.arg]] = text(keyword.value)
            elif _name(call.func) in _COMMON_SETTERS and call.args:
                seen[_COMMON_SETTERS[_name(call.func)]] = text(call.args[0])
        if all(seen.get(k) for k in ("product", "version", "action")) and len(builds) == 1:
            actions.append(AdapterAction(str(seen["product"]), str(seen["version"]),
                                         str(seen["action"]), f"{where}:{function.lineno}"))
        else:
            problems.append(f"{where}:{function.lineno} {function.name}: a CommonRequest whose "
                            "product, version and action are not string constants (one "
                            "CommonRequest per function, please), so the suite cannot see it")
    return actions, problems


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""
