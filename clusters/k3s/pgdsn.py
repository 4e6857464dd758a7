"""K3s's PostgreSQL datastore endpoint: `postgres://user:pass@host:port/db?sslmode=…`.

Why: unlike MySQL's, kine's pgsql driver reads the endpoint as a URL (k3s-io/kine v0.16
pkg/drivers/pgsql prepareConfig: `postgres://` + the rest, Go's url.Parse, then
pgx.ParseConfig), so the user and password ARE percent-decoded: a password with `@`, `:`,
`/`, `%` or `#` must be percent-encoded or K3s reads another one. kine also lower-cases the
database name ("makes quoting database and schema reference the same unquoted identifier")
and uses `kubernetes` when the path is empty. The builder escapes, the parser reads what
kine reads and names the hand-written mistakes.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from clusters.k3s.dsn import DatastoreEndpointError

SCHEMES = ("postgres", "postgresql")  # kine registers its pgsql driver under both
DEFAULT_PORT = 5432
DEFAULT_DATABASE = "kubernetes"
# libpq/pgx sslmode values (pgx accepts these six).
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


@dataclass(frozen=True)
class PostgresEndpoint:
    """The parts of a PostgreSQL datastore endpoint. `str()` never shows the password."""

    user: str
    password: str = field(repr=False)
    host: str
    port: int = DEFAULT_PORT
    database: str = DEFAULT_DATABASE
    params: tuple[tuple[str, str], ...] = ()

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if _is_ipv6(self.host) else f"{self.host}:{self.port}"

    @property
    def sslmode(self) -> str:
        """What pgx does without `sslmode`: prefer (TLS if offered, unverified)."""
        return dict(self.params).get("sslmode", "prefer")

    def to_k3s(self) -> str:
        return build_pg_endpoint(self.user, self.password, self.host, self.port,
                                 database=self.database, params=dict(self.params))

    def redacted(self) -> str:
        query = "?" + urlencode(self.params) if self.params else ""
        return f"postgres://{quote(self.user, safe='')}:***@{self.address}/{self.database}{query}"

    def __str__(self) -> str:
        return self.redacted()


def _is_ipv6(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False


def build_pg_endpoint(user: str, password: str, host: str, port: int = DEFAULT_PORT, *,
                      database: str = DEFAULT_DATABASE,
                      params: dict[str, str] | None = None) -> str:
    """Compose the endpoint, user and password percent-encoded; raise if kine would read it
    back differently."""
    if not user:
        raise DatastoreEndpointError("The PostgreSQL datastore endpoint needs a user.")
    if not host or any(c in host for c in "@/?#[]") or any(c.isspace() for c in host):
        raise DatastoreEndpointError(f"The database host {host!r} is not a valid address.")
    if not database or database != database.lower() or any(c in database for c in "/?#%"):
        raise DatastoreEndpointError(
            f"The database name {database!r} must be lower case without / ? # % (kine "
            "lower-cases it, so another case would name another database).")
    if "\n" in password or "\r" in password:
        raise DatastoreEndpointError("The database password cannot contain a line break.")
    if params and params.get("sslmode", "prefer") not in SSL_MODES:
        raise DatastoreEndpointError(f"sslmode must be one of {', '.join(SSL_MODES)}.")
    address = f"[{host}]:{port}" if _is_ipv6(host) else f"{host}:{port}"
    query = "?" + urlencode(params) if params else ""
    endpoint = (f"postgres://{quote(user, safe='')}:{quote(password, safe='')}@{address}/"
                f"{quote(database, safe='')}{query}")
    parsed = parse_pg_endpoint(endpoint)
    if (parsed.user, parsed.password, parsed.host, parsed.port, parsed.database) != (
            user, password, host, port, database):
        raise DatastoreEndpointError("These database settings do not survive kine's URL parser.")
    return endpoint


def parse_pg_endpoint(text: str) -> PostgresEndpoint:
    """Read a (user-supplied) endpoint as kine + pgx do, or say what is wrong with it."""
    endpoint = text.strip()
    if endpoint[:1] in "'\"" and endpoint[-1:] == endpoint[:1]:
        raise DatastoreEndpointError(
            "Remove the quotes around the datastore endpoint; K3s would take them literally.")
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme not in SCHEMES:
        raise DatastoreEndpointError(
            "The datastore endpoint must start with postgres://, e.g. "
            "postgres://k3s:PASSWORD@pgm-xxx.pg.rds.aliyuncs.com:5432/k3s?sslmode=verify-full.")
    try:
        parts = urlsplit("postgres://" + rest)
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise DatastoreEndpointError(
            f"The datastore endpoint is not a valid URL ({exc}); percent-encode @ : / # % "
            "in the user and password.") from None
    if not parts.username:
        raise DatastoreEndpointError(
            "The datastore endpoint names no user: write postgres://USER:PASSWORD@host:5432/db.")
    if not parts.hostname:
        raise DatastoreEndpointError("The datastore endpoint names no host.")
    params = tuple(parse_qsl(parts.query, keep_blank_values=True))
    mode = dict(params).get("sslmode", "prefer")
    if mode not in SSL_MODES:
        raise DatastoreEndpointError(
            f"sslmode={mode} is not one pgx knows: use one of {', '.join(SSL_MODES)}.")
    path = unquote(parts.path).lower()
    return PostgresEndpoint(user=unquote(parts.username), password=unquote(parts.password or ""),
                            host=parts.hostname, port=port,
                            database=path.lstrip("/") or DEFAULT_DATABASE, params=params)


def kine_pg_ddl(table: str = "kine") -> list[str]:
    """kine v0.16.4's pgsql schema (pkg/drivers/pgsql/pgsql.go), table renamed for a scratch
    check. PostgreSQL scopes index names to the schema, not the table: a scratch table's
    indexes carry its name so they never meet kine's own."""
    if not table.replace("_", "a").isalnum() or not table[:1].isalpha() or len(table) > 40:
        raise ValueError(f"unsafe table name {table!r}")
    prefix = "kine" if table == "kine" else table
    return [
        f'CREATE TABLE IF NOT EXISTS {table} (id BIGSERIAL PRIMARY KEY, name text COLLATE "C", '
        "created INTEGER, deleted INTEGER, create_revision BIGINT, prev_revision BIGINT, "
        "lease INTEGER, value bytea, old_value bytea)",
        f"CREATE INDEX IF NOT EXISTS {prefix}_name_index ON {table} (name)",
        f"CREATE INDEX IF NOT EXISTS {prefix}_name_id_index ON {table} (name,id)",
        f"CREATE INDEX IF NOT EXISTS {prefix}_id_deleted_index ON {table} (id,deleted)",
        f"CREATE INDEX IF NOT EXISTS {prefix}_prev_revision_index ON {table} (prev_revision)",
        f"CREATE UNIQUE INDEX IF NOT EXISTS {prefix}_name_prev_revision_uindex ON {table} "
        "(name, prev_revision)",
        f"CREATE INDEX IF NOT EXISTS {prefix}_list_query_index on {table}(name, id DESC, "
        "deleted)",
    ]
