"""The REST API over HTTP (urllib, no third-party HTTP library): JSON in, JSON out, errors
as the API shapes them ({"detail", "code", "fields"})."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

USER_AGENT = "panelctl/1"
TIMEOUT = 60.0


@dataclass
class ApiError(Exception):
    """An answer other than 2xx: its status and the API's detail, code and field errors."""

    status: int
    detail: str
    code: str = ""
    fields: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.detail} (HTTP {self.status}{', ' + self.code if self.code else ''})"]
        lines += [f"  {name}: {' '.join(messages)}" for name, messages in self.fields.items()]
        return "\n".join(lines)


class Client:
    def __init__(self, url: str, token: str, timeout: float = TIMEOUT) -> None:
        if not url.startswith(("http://", "https://")):
            raise ApiError(0, f"the panel's URL must start with https:// or http://: {url}",
                           "bad_url")
        self.base = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def url(self, path: str, query: dict[str, Any] | None = None) -> str:
        if path.startswith(("http://", "https://")):
            full = path
        elif path.startswith("/api/"):
            full = self.base + path
        else:
            full = f"{self.base}/api/v1/{path.lstrip('/')}"
        if query:
            clean = {k: v for k, v in query.items() if v is not None}
            full += ("&" if "?" in full else "?") + urllib.parse.urlencode(clean)
        return full

    def request(self, method: str, path: str, body: Any = None,
                query: dict[str, Any] | None = None, *, raw: bool = False) -> Any:
        data = None if body is None else json.dumps(body).encode()
        # http(s) only: the base URL is checked above and `next` links are the API's own.
        request = urllib.request.Request(  # noqa: S310
            self.url(path, query), data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", USER_AGENT)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                payload = response.read()
        except urllib.error.HTTPError as exc:
            raise _error(exc.code, exc.read()) from None
        except urllib.error.URLError as exc:
            raise ApiError(0, f"cannot reach {self.base}: {exc.reason}", "unreachable") from None
        if raw:
            return payload
        return json.loads(payload) if payload else None

    def get(self, path: str, **query: Any) -> Any:
        return self.request("GET", path, query=query or None)

    def post(self, path: str, body: Any = None, **query: Any) -> Any:
        return self.request("POST", path, body if body is not None else {}, query=query or None)

    def every(self, path: str, **query: Any) -> list[Any]:
        """Every item of a paged list, following `next`."""
        page = self.get(path, **query)
        items = list(page["results"])
        while page.get("next"):
            page = self.get(page["next"])
            items += page["results"]
        return items

    def cluster(self, name: str) -> dict[str, Any]:
        """One of the user's clusters, by name (the API's id is its code)."""
        found = self.get("clusters/", name=name)["results"]
        if not found:
            raise ApiError(404, f"no cluster named {name}", "not_found")
        return dict(self.get(f"clusters/{found[0]['id']}/"))


def _error(status: int, payload: bytes) -> ApiError:
    try:
        body = json.loads(payload)
    except ValueError:
        return ApiError(status, payload.decode(errors="replace")[:300] or "error")
    if not isinstance(body, dict):
        return ApiError(status, str(body)[:300])
    return ApiError(status, str(body.get("detail", "")), str(body.get("code", "")),
                    body.get("fields") or {}, body.get("warnings") or [])
