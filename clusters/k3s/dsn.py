"""K3s's MySQL datastore endpoint: `mysql://user:pass@tcp(host:port)/db`.

Why: kine hands everything after `mysql://` raw to go-sql-driver's ParseDSN, which does NOT
URL-decode the user or password (`%40` stays `%40`): percent-encoding would silently change
the password. ParseDSN splits on the LAST `/`, then the LAST `@` before it, then the FIRST `:`
of the user part; so any password survives verbatim, but a user may not contain `:`, `@` or
`/`, and the host may not contain `@`, `/` or `()`. The builder refuses what would not
round-trip, and the parser gives a plain reason for the common hand-written mistakes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from clusters.core.errors import PermanentError

SCHEME = "mysql://"
DEFAULT_PORT = 3306
DEFAULT_DATABASE = "kubernetes"  # what kine uses when the DSN names none


class DatastoreEndpointError(PermanentError):
    """A datastore endpoint K3s would reject or misread; the message says how to fix it."""


@dataclass(frozen=True)
class MySQLEndpoint:
    """The parts of a MySQL datastore endpoint. `str()` never shows the password."""

    user: str
    password: str = field(repr=False)
    host: str
    port: int = DEFAULT_PORT
    database: str = DEFAULT_DATABASE
    params: tuple[tuple[str, str], ...] = ()

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if is_ipv6(self.host) else self.host
        return f"{host}:{self.port}"

    def to_k3s(self) -> str:
        """The `datastore-endpoint` value, exactly as K3s must receive it."""
        return build_endpoint(self.user, self.password, self.host, self.port,
                              database=self.database, params=dict(self.params))

    def redacted(self) -> str:
        """For logs and pages: the endpoint with the password replaced by ***."""
        query = "?" + "&".join(f"{k}={v}" for k, v in self.params) if self.params else ""
        return f"{SCHEME}{self.user}:***@tcp({self.address})/{self.database}{query}"

    def __str__(self) -> str:
        return self.redacted()


def is_ipv6(host: str) -> bool:
    """Whether `host` is an IPv6 literal (written in brackets in an address, by both engines)."""
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False


def build_endpoint(user: str, password: str, host: str, port: int = DEFAULT_PORT, *,
                   database: str = DEFAULT_DATABASE, params: dict[str, str] | None = None) -> str:
    """Compose the endpoint; raise if go-sql-driver would read it back differently."""
    if not user or any(c in user for c in ":@/()?"):
        raise DatastoreEndpointError(
            f"The database user {user!r} cannot be used in a K3s DSN (no : @ / ( ) ? allowed).")
    if not host or any(c in host for c in "@/()?") or any(c.isspace() for c in host):
        raise DatastoreEndpointError(f"The database host {host!r} is not a valid address.")
    if not database or any(c in database for c in "/?"):
        raise DatastoreEndpointError(f"The database name {database!r} cannot contain / or ?.")
    if "\n" in password or "\r" in password:
        raise DatastoreEndpointError("The database password cannot contain a line break.")
    address = f"[{host}]:{port}" if is_ipv6(host) else f"{host}:{port}"
    query = ""
    if params:
        query = "?" + "&".join(f"{k}={v}" for k, v in params.items())
    endpoint = f"{SCHEME}{user}:{password}@tcp({address})/{database}{query}"
    parsed = parse_endpoint(endpoint)
    if (parsed.user, parsed.password, parsed.host, parsed.port, parsed.database) != (
            user, password, host, port, database):
        raise DatastoreEndpointError("These database settings do not survive K3s's DSN parser.")
    return endpoint


def parse_endpoint(text: str) -> MySQLEndpoint:
    """Read a (user-supplied) endpoint the way kine + go-sql-driver do, or say what is wrong."""
    endpoint = text.strip()
    if endpoint[:1] in "'\"" and endpoint[-1:] == endpoint[:1]:
        raise DatastoreEndpointError(
            "Remove the quotes around the datastore endpoint; K3s would take them literally.")
    if not endpoint.startswith(SCHEME):
        scheme = endpoint.split("://", 1)[0] if "://" in endpoint else ""
        hint = f" (it starts with {scheme}://)" if scheme else ""
        raise DatastoreEndpointError(
            f"The datastore endpoint must start with mysql://{hint}, "
            "e.g. mysql://k3s:PASSWORD@tcp(rm-xxx.mysql.rds.aliyuncs.com:3306)/k3s.")
    dsn = endpoint[len(SCHEME):]
    slash = dsn.rfind("/")
    if slash < 0:
        raise DatastoreEndpointError(
            "The datastore endpoint is missing the /<database> part after tcp(host:port).")
    left, right = dsn[:slash], dsn[slash + 1:]
    at = left.rfind("@")
    creds, target = (left[:at], left[at + 1:]) if at >= 0 else ("", left)
    user, _, password = creds.partition(":")
    if not user:
        raise DatastoreEndpointError(
            "The datastore endpoint names no user: write mysql://USER:PASSWORD@tcp(host:3306)/db.")
    paren = target.find("(")
    if paren < 0:
        # Not quoting what follows the '@': with an '@' in the password and no tcp(), that
        # text is the password's end.
        raise DatastoreEndpointError(
            "The datastore endpoint is missing tcp(...) around the address after the '@': "
            "write mysql://USER:PASSWORD@tcp(host:3306)/db (K3s would fail with \"default "
            "addr for network … unknown\").")
    if not target.endswith(")"):
        raise DatastoreEndpointError(
            "The address in the datastore endpoint is not closed: write tcp(host:3306)/db.")
    net, address = target[:paren], target[paren + 1:-1]
    if net != "tcp":
        raise DatastoreEndpointError(
            f"The datastore endpoint uses {net or 'no'} network; use tcp(host:port).")
    host, port = _split_address(address)
    database, _, query = right.partition("?")
    params: list[tuple[str, str]] = []
    if query:
        for number, pair in enumerate(query.split("&"), 1):
            key, sep, value = pair.partition("=")
            if not sep or not key:
                # Not the pair itself: `?=…` or a stray '&' may sit in front of a secret.
                raise DatastoreEndpointError(
                    f"Option {number} after '?' in the datastore endpoint is malformed: write "
                    "name=value pairs separated by '&'.")
            params.append((key, value))
    return MySQLEndpoint(user=user, password=password, host=host, port=port,
                         database=database or DEFAULT_DATABASE, params=tuple(params))


def _split_address(address: str) -> tuple[str, int]:
    if not address:
        raise DatastoreEndpointError("The datastore endpoint has an empty tcp() address.")
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif address.count(":") == 1:
        host, port_text = address.split(":")
    elif ":" in address:  # a bare IPv6 address, as go-sql-driver accepts
        host, port_text = address, ""
    else:
        host, port_text = address, ""
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise DatastoreEndpointError(f"The datastore port {port_text!r} is not a valid port.")
    return host, int(port_text)
