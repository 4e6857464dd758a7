"""The engine's hot read queries, compiled by the ORM once per process and then executed with
new parameters (issue 18).

Why: a trivial step's engine cost was a handful of queries, and most of each query's time was
the ORM building it again (cloning the queryset, resolving lookups and joins, compiling the
WHERE tree), not the database answering. The SQL of a fixed queryset whose only varying
inputs are ids does not change between calls, so it is compiled once, with sentinel ids whose
places in the parameter list are remembered, and later calls put their ids in those places.

Why it stays the ORM's SQL (not hand-written): the model's columns, joins, quoting and the
backend's converters (JSON, datetimes, encrypted fields) all come from Django, as before.
The guard (`CompiledQuery.check`, run by tests/engine/test_compiled_queries.py for every
query registered here) compiles the queryset afresh for other ids and asserts that the SQL
is the cached one and the parameters are the cached ones with those ids in their places: a
Django upgrade that made the SQL depend on the values would fail the suite, not the engine.

Only values_list() querysets whose varying inputs are integers (ids): a row comes back as a
tuple of converted values, exactly as values_list() would give it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.db.models import QuerySet

#: Ids no real row has, so each is found exactly once among the compiled parameters.
_SENTINEL = 7_300_000_000_001


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple[Any, ...]
    slots: tuple[int, ...]  # where each argument goes in `params`
    converters: tuple[tuple[int, tuple[Callable[..., Any], ...], Any], ...]


class CompiledQuery:
    """A values_list() queryset of `arity` integer arguments, compiled once per database."""

    def __init__(self, name: str, build: Callable[..., QuerySet[Any, Any]], arity: int) -> None:
        self.name = name
        self.build = build
        self._arity = arity
        self._cache: dict[str, _Compiled] = {}
        self._lock = threading.Lock()
        REGISTRY.append(self)

    def _orm_sql(self, using: str, args: tuple[int, ...]) -> tuple[str, tuple[Any, ...], Any]:
        compiler = self.build(*args).query.get_compiler(using=using)
        sql, params = compiler.as_sql()
        return sql, tuple(params), compiler

    def compiled(self, using: str = "default") -> _Compiled:
        found = self._cache.get(using)
        if found is not None:
            return found
        with self._lock:
            sentinels = tuple(_SENTINEL + i for i in range(self._arity))
            sql, params, compiler = self._orm_sql(using, sentinels)
            slots = []
            for sentinel in sentinels:
                places = [i for i, value in enumerate(params) if value == sentinel]
                if len(places) != 1:
                    raise AssertionError(f"{self.name}: argument found {len(places)} times in "
                                         "the compiled parameters; it cannot be cached")
                slots.append(places[0])
            expressions = [column for column, _, _ in compiler.select]
            converters = tuple(
                (index, tuple(functions), expression)
                for index, (functions, expression) in compiler.get_converters(expressions).items()
            )
            found = _Compiled(sql, params, tuple(slots), converters)
            self._cache[using] = found
            return found

    def params(self, args: tuple[int, ...], using: str = "default") -> list[Any]:
        compiled = self.compiled(using)
        params = list(compiled.params)
        for slot, value in zip(compiled.slots, args, strict=True):
            params[slot] = int(value)
        return params

    def rows(self, *args: int, using: str = "default") -> list[tuple[Any, ...]]:
        """The rows the queryset built from `args` would give, as tuples."""
        compiled = self.compiled(using)
        connection = connections[using]
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, self.params(args, using))
            rows = cursor.fetchall()
        if not compiled.converters:
            return [tuple(row) for row in rows]
        converted = []
        for row in rows:
            values = list(row)
            for index, functions, expression in compiled.converters:
                value = values[index]
                for function in functions:
                    value = function(value, expression, connection)
                values[index] = value
            converted.append(tuple(values))
        return converted

    def check(self, *args: int, using: str = "default") -> None:
        """Raise AssertionError unless the ORM compiles the queryset for `args` to the cached
        SQL with `args` in the cached places (the guard; see the module docstring)."""
        sql, params, _ = self._orm_sql(using, tuple(args))
        cached = self.compiled(using)
        if sql != cached.sql:
            raise AssertionError(f"{self.name}: the ORM's SQL changed:\n{sql}\n!=\n{cached.sql}")
        if list(params) != self.params(tuple(args), using):
            raise AssertionError(f"{self.name}: the ORM's parameters {params} are not the "
                                 f"cached ones with {args} in their places")


#: Every compiled query, for the guard test.
REGISTRY: list[CompiledQuery] = []


def concrete_attnames(model: Any) -> list[str]:
    """The model's own stored columns, in field order (what `Model.from_db` takes)."""
    return [field.attname for field in model._meta.concrete_fields]
