"""What the panel reads of each answer, observed at the client boundary.

`RecordingClient` is an `AliyunClient` (used only by this suite) whose `call` performs the real
call to the emulator and hands the adapter the parsed JSON wrapped in `ReadDict`/`ReadList`,
which note every key the adapter looks up (`get`, `[]`, `in`, iteration). The adapter code
runs unmodified; nothing of ours is mocked. A path is a tuple of keys, "[]" standing for
"any element of this list": ("Items", "DBInstance", "[]", "DBInstanceId").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aliyunsdkcore.request import AcsRequest

from clusters.adapters.aliyun.client import AliyunClient

Path = tuple[str, ...]


@dataclass
class Observation:
    """One successful call: which action, the raw answer, and what the adapter read of it."""

    product: str
    version: str
    action: str
    body: dict[str, Any]
    reads: set[Path] = field(default_factory=set)


def wrap(value: Any, path: Path, reads: set[Path]) -> Any:
    if isinstance(value, dict):
        return ReadDict(value, path, reads)
    if isinstance(value, list):
        return ReadList(value, path, reads)
    return value


class ReadDict(dict):  # type: ignore[type-arg]
    """A dict that records the path of every key read through it."""

    def __init__(self, data: dict[str, Any], path: Path, reads: set[Path]) -> None:
        super().__init__(data)
        self._path, self._reads = path, reads

    def _child(self, key: str) -> Path:
        path = (*self._path, str(key))
        self._reads.add(path)
        return path

    def __getitem__(self, key: str) -> Any:
        path = self._child(key)
        return wrap(super().__getitem__(key), path, self._reads)

    def get(self, key: str, default: Any = None) -> Any:
        path = self._child(key)
        if dict.__contains__(self, key):
            return wrap(dict.__getitem__(self, key), path, self._reads)
        return default

    def __contains__(self, key: object) -> bool:
        self._child(str(key))
        return dict.__contains__(self, key)

    def __iter__(self) -> Iterator[str]:
        for key in dict.__iter__(self):
            self._child(key)
            yield key

    def items(self) -> Iterable[tuple[str, Any]]:  # type: ignore[override]
        return [(k, self[k]) for k in dict.keys(self)]

    def values(self) -> Iterable[Any]:  # type: ignore[override]
        return [self[k] for k in dict.keys(self)]


class ReadList(list):  # type: ignore[type-arg]
    """A list whose elements are wrapped with the path `<list>[]`."""

    def __init__(self, data: list[Any], path: Path, reads: set[Path]) -> None:
        super().__init__(data)
        self._path, self._reads = (*path, "[]"), reads

    def __iter__(self) -> Iterator[Any]:
        for item in list.__iter__(self):
            yield wrap(item, self._path, self._reads)

    def __getitem__(self, index: Any) -> Any:  # type: ignore[override]
        value = list.__getitem__(self, index)
        if isinstance(index, slice):
            return [wrap(v, self._path, self._reads) for v in value]
        return wrap(value, self._path, self._reads)


class RecordingClient(AliyunClient):
    """The real client, plus a record of every successful answer and what was read of it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.observations: list[Observation] = []

    def call(self, request: AcsRequest, *, secrets: Iterable[str] = ()) -> dict[str, Any]:
        body = super().call(request, secrets=secrets)
        observation = Observation(request.get_product(), request.get_version(),
                                  request.get_action_name(), json.loads(json.dumps(body)))
        self.observations.append(observation)
        return wrap(body, (), observation.reads)
