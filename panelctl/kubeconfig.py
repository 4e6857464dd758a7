"""Merge a cluster's kubeconfig into ~/.kube/config without losing anything.

Safe means: the file is read and parsed first (a file that is not a kubeconfig is left alone
and the merge refused); a copy of it is kept next to it (`config.panelctl-<time>.bak`, 0600)
before anything changes; entries of the same name (cluster, user, context) are replaced and
every other entry is kept; the new file is written 0600 under another name and renamed over
the old one, so a crash leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import yaml

SECTIONS = ("clusters", "users", "contexts")


class MergeError(Exception):
    pass


def default_path() -> Path:
    first = (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0]
    return Path(first).expanduser() if first else Path.home() / ".kube" / "config"


def _parse(text: str, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise MergeError(f"{what} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise MergeError(f"{what} is not a kubeconfig (no mapping at the top)")
    for section in SECTIONS:
        if not isinstance(data.get(section) or [], list):
            raise MergeError(f"{what}: {section} is not a list")
    return data


def merge(existing: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    merged = dict(existing)
    merged.setdefault("apiVersion", "v1")
    merged.setdefault("kind", "Config")
    for section in SECTIONS:
        incoming = list(new.get(section) or [])
        names = {entry.get("name") for entry in incoming}
        kept = [e for e in existing.get(section) or [] if e.get("name") not in names]
        merged[section] = kept + incoming
    if not merged.get("current-context") and new.get("current-context"):
        merged["current-context"] = new["current-context"]
    return merged


def merge_into(target: Path, text: str, *, use_context: bool = False) -> Path | None:
    """Merge `text` into `target`; the backup's path (None when there was no file)."""
    new = _parse(text, "the downloaded kubeconfig")
    backup = None
    existing: dict[str, Any] = {}
    if target.exists():
        original = target.read_bytes()
        existing = _parse(original.decode(errors="replace"), str(target))
        backup = target.with_name(f"{target.name}.panelctl-{time.strftime('%Y%m%d%H%M%S')}"
                                  f"-{os.getpid()}.bak")
        _write(backup, original)
    merged = merge(existing, new)
    if use_context and new.get("current-context"):
        merged["current-context"] = new["current-context"]
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = target.with_name(f".{target.name}.panelctl-{os.getpid()}.tmp")
    _write(temporary, yaml.safe_dump(merged, sort_keys=False).encode())
    os.replace(temporary, target)
    return backup


def write_new(target: Path, text: str) -> None:
    _parse(text, "the downloaded kubeconfig")
    _write(target, text.encode())


def _write(target: Path, data: bytes) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(target, 0o600)
