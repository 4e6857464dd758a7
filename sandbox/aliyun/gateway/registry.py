"""The product registry: which (Version, Action) pairs exist and who handles them.

Why: the gateway routes on Version + Action; a product module declares its actions once with
the `@PRODUCT.action(...)` decorator and the server finds them here, together with the hooks
that start, tick, report and stop whatever the product runs for real (sockets, processes).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sandbox.aliyun.gateway import errors
from sandbox.aliyun.gateway.params import MissingStyle, Param

if TYPE_CHECKING:
    from sandbox.aliyun.gateway.cloud import Cloud, RequestContext
    from sandbox.aliyun.gateway.params import Params
    from sandbox.aliyun.gateway.state import State

Handler = Callable[["State", "Params", "RequestContext"], dict[str, Any]]
Hook = Callable[["Cloud"], None]
ResourceLister = Callable[["Cloud"], list[dict[str, Any]]]


@dataclass(frozen=True)
class ClientTokenPolicy:
    """Same ClientToken + same parameters: the first result again; other parameters: `conflict`."""

    conflict: errors.ApiError


@dataclass(frozen=True)
class Action:
    name: str
    handler: Handler
    params: tuple[Param, ...]
    client_token: ClientTokenPolicy | None = None


@dataclass
class Product:
    """One API product and version, e.g. Slb 2014-05-15."""

    code: str
    version: str
    host_id: str
    missing: MissingStyle = errors.missing_parameter
    # RAM authorises `<ram_namespace>:<Action>`; "" = the code in lower case (rds, ecs, slb).
    ram_namespace: str = ""
    # How this product says RAM refused a call (STS answers NoPermission instead).
    forbidden: Callable[[str, str, str], errors.ApiError] = errors.forbidden_ram
    actions: dict[str, Action] = field(default_factory=dict)
    tickers: list[Hook] = field(default_factory=list)
    start_hooks: list[Hook] = field(default_factory=list)
    stop_hooks: list[Hook] = field(default_factory=list)
    reset_hooks: list[Hook] = field(default_factory=list)
    resource_listers: list[ResourceLister] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.ram_namespace = self.ram_namespace or self.code.lower()

    def action(
        self, name: str, params: tuple[Param, ...] = (),
        client_token: ClientTokenPolicy | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register `handler(state, params, ctx) -> response dict` (RequestId is added for you)."""

        def register(handler: Handler) -> Handler:
            if name in self.actions:
                raise ValueError(f"{self.code} {name} registered twice")
            self.actions[name] = Action(name, handler, tuple(params), client_token)
            return handler

        return register

    def ticker(self, hook: Hook) -> Hook:
        """Called every tick (under the state lock) to advance things that happen on their own."""
        self.tickers.append(hook)
        return hook

    def on_start(self, hook: Hook) -> Hook:
        """Called once when the server starts, after state is loaded: restart what was running."""
        self.start_hooks.append(hook)
        return hook

    def on_stop(self, hook: Hook) -> Hook:
        """Called when the server shuts down: stop processes and close sockets, keep state."""
        self.stop_hooks.append(hook)
        return hook

    def on_reset(self, hook: Hook) -> Hook:
        """Called by POST /_emulator/reset before state is wiped: stop and delete everything."""
        self.reset_hooks.append(hook)
        return hook

    def resources(self, lister: ResourceLister) -> ResourceLister:
        """Contributes entries to GET /_emulator/resources."""
        self.resource_listers.append(lister)
        return lister


PRODUCTS: dict[str, Product] = {}

ControlHandler = Callable[["Cloud", dict[str, Any]], tuple[int, Any]]
# Extra control-API routes a product may add: (method, path under /_emulator/) -> handler.
CONTROL_ROUTES: dict[tuple[str, str], ControlHandler] = {}


PathHandler = Callable[["Cloud", str, str, dict[str, str], str], tuple[int, dict[str, str], bytes]]
# Plain HTTP paths outside the RPC API that a product serves, by prefix: handler(cloud, method,
# path, headers, client address) -> (status, headers, body). The ECS metadata stand-in.
PATH_ROUTES: dict[str, PathHandler] = {}


def path_route(prefix: str) -> Callable[[PathHandler], PathHandler]:
    def register(handler: PathHandler) -> PathHandler:
        PATH_ROUTES[prefix] = handler
        return handler

    return register


def control_route(method: str, path: str) -> Callable[[ControlHandler], ControlHandler]:
    """Add `METHOD /_emulator/<path>`; the handler gets (cloud, json_body) -> (status, json)."""

    def register(handler: ControlHandler) -> ControlHandler:
        CONTROL_ROUTES[(method.upper(), path.strip("/"))] = handler
        return handler

    return register


# Modules that define products; a module not present is skipped.
PRODUCT_MODULES = ("sandbox.aliyun.ecs", "sandbox.aliyun.vpc", "sandbox.aliyun.slb",
                   "sandbox.aliyun.nlb", "sandbox.aliyun.rds.instances",
                   "sandbox.aliyun.rds.price", "sandbox.aliyun.bss", "sandbox.aliyun.sts")
# ALIYUN_EMULATOR_PRODUCTS names products by their short names (as before RDS became a
# package): these two live deeper than sandbox.aliyun.<name>.
_SHORT_NAMES = {"rds": "sandbox.aliyun.rds.instances", "rds_price": "sandbox.aliyun.rds.price"}


def register_product(product: Product) -> Product:
    if product.version in PRODUCTS and PRODUCTS[product.version] is not product:
        raise ValueError(f"version {product.version} already belongs to another product")
    PRODUCTS[product.version] = product
    return product


def load_products() -> dict[str, Product]:
    """Import every product module present; `ALIYUN_EMULATOR_PRODUCTS=ecs,vpc` narrows it."""
    only = os.environ.get("ALIYUN_EMULATOR_PRODUCTS", "")
    names = [m.strip() for m in only.split(",") if m.strip()]
    modules = [_SHORT_NAMES.get(m, f"sandbox.aliyun.{m}") for m in names] or list(PRODUCT_MODULES)
    for module in modules:
        if importlib.util.find_spec(module) is not None:
            importlib.import_module(module)
    return PRODUCTS
