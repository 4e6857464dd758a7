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

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode

from clusters.k3s.dsn import DatastoreEndpointError, is_ipv6

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
        return f"[{self.host}]:{self.port}" if is_ipv6(self.host) else f"{self.host}:{self.port}"

    @property
    def sslmode(self) -> str:
        """What pgx does without `sslmode`: prefer (TLS if offered, unverified)."""
        return dict(self.params).get("sslmode", "prefer")

    def to_k3s(self) -> str:
        return build_pg_endpoint(self.user, self.password, self.host, self.port,
                                 database=self.database, params=dict(self.params))

    def redacted(self) -> str:
        """The endpoint for pages and logs: the password masked, wherever it is given (the
        user information or pgx's `?password=`)."""
        shown = [(key, "***" if key in SECRET_PARAMS else value) for key, value in self.params]
        query = "?" + urlencode(shown, safe="*") if shown else ""
        return f"postgres://{quote(self.user, safe='')}:***@{self.address}/{self.database}{query}"

    def __str__(self) -> str:
        return self.redacted()


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
    address = f"[{host}]:{port}" if is_ipv6(host) else f"{host}:{port}"
    query = "?" + urlencode(params) if params else ""
    endpoint = (f"postgres://{quote(user, safe='')}:{quote(password, safe='')}@{address}/"
                f"{quote(database, safe='')}{query}")
    parsed = parse_pg_endpoint(endpoint)
    if (parsed.user, parsed.password, parsed.host, parsed.port, parsed.database) != (
            user, password, host, port, database):
        raise DatastoreEndpointError("These database settings do not survive kine's URL parser.")
    return endpoint


# Go's net/url validUserinfo (src/net/url/url.go): unreserved, sub-delims, ':' and '@' (Go
# accepts '@' there, go.dev/issue/3439), and '%' for escapes (checked by its unescape).
_USERINFO_OK = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                         "-._~!$&'()*+,;=:@%")
_HEX = frozenset("0123456789abcdefABCDEF")
#: pgx's query parameters that carry a password: never shown, always redacted.
SECRET_PARAMS = ("password", "sslpassword")
#: Files on the K3s servers: the panel's check cannot open them, nor does it put them there.
HOST_FILE_PARAMS = ("sslrootcert", "sslcert", "sslkey")


class GoURLError(ValueError):
    """Go's url.Parse (or kine's url.ParseQuery) rejects the endpoint. `part` names where:
    control, port, host, userinfo, user, password, path or query (never the text itself,
    which may be a piece of the password)."""

    def __init__(self, part: str) -> None:
        super().__init__(part)
        self.part = part


@dataclass(frozen=True)
class GoURL:
    """What Go's url.Parse makes of `postgres://…`, decoded as Go decodes it."""

    user: str | None
    password: str | None
    host: str  # with its port, as Go's u.Host
    path: str
    raw_query: str
    authority_has_at: bool
    after_authority_has_at: bool


def go_unescape(text: str, part: str) -> str:
    """Go's url.unescape for userinfo and paths: every '%' starts two hex digits, or the
    whole URL is refused ("invalid URL escape"). Python's unquote keeps a bad escape as
    text, which is how a '%zz' used to pass the panel and fail K3s."""
    for i, char in enumerate(text):
        if char == "%" and not (text[i + 1:i + 2] in _HEX and text[i + 2:i + 3] in _HEX):
            raise GoURLError(part)
    return unquote(text, errors="surrogateescape")


def parse_go_url(endpoint: str) -> GoURL:
    """Go's net/url Parse of `endpoint` (a `postgres://` URL), step by step: the fragment
    cut at the first '#', control characters refused, the query cut at the first '?', the
    authority up to the first '/', the user information before its LAST '@' (validUserinfo,
    then split at the first ':'), a port of digits only, then each part unescaped."""
    url, _, _fragment = endpoint.partition("#")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise GoURLError("control")
    _, _, rest = url.partition("://")
    rest, _, raw_query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    path = slash + path
    at = authority.rfind("@")
    host = authority[at + 1:]
    if host.startswith("["):
        close = host.rfind("]")
        if close < 0:
            raise GoURLError("host")
        colon_port = host[close + 1:]
    else:
        colon = host.rfind(":")
        colon_port = host[colon:] if colon >= 0 else ""
    if colon_port and (colon_port[0] != ":" or not colon_port[1:].isascii()
                       or not (colon_port[1:].isdigit() or colon_port == ":")):
        raise GoURLError("port")
    if "%" in host:
        raise GoURLError("host")  # Go allows only %25 and non-ASCII escapes there
    user = password = None
    if at >= 0:
        userinfo = authority[:at]
        if not all(c in _USERINFO_OK for c in userinfo):
            raise GoURLError("userinfo")
        raw_user, colon_sep, raw_password = userinfo.partition(":")
        user = go_unescape(raw_user, "user")
        password = go_unescape(raw_password, "password") if colon_sep else None
    decoded_path = go_unescape(path, "path")
    for pair in raw_query.split("&") if raw_query else ():
        if ";" in pair:
            raise GoURLError("query")  # url.ParseQuery: "invalid semicolon separator"
        key, _, value = pair.partition("=")
        go_unescape(key, "query")
        go_unescape(value, "query")
    return GoURL(user=user, password=password, host=host, path=decoded_path,
                 raw_query=raw_query, authority_has_at=at >= 0,
                 after_authority_has_at="@" in path + "?" + raw_query + "#" + _fragment)


_ENCODE_HINT = ("percent-encode every character of the user and password outside letters, "
                "digits and - . _ ~ ! $ & ' ( ) * + , ; = (for example @ as %40, : as %3A, "
                "/ as %2F, ? as %3F, # as %23, % as %25, a space as %20)")


def _go_url_message(exc: GoURLError, rest: str) -> str:
    """What to tell the user for each of Go's refusals, naming the part, never its text."""
    part = exc.part
    authority = rest.partition("#")[0].partition("?")[0].partition("/")[0]
    if part == "port" and "@" in rest and "@" not in authority:
        return ("K3s would read the datastore endpoint's password as the host and port: a "
                "'/', '?' or '#' in the password ends the address part of the URL; "
                + _ENCODE_HINT + ".")
    messages = {
        "control": "The datastore endpoint contains a control character (a tab or line "
                   "break?): K3s refuses it.",
        "port": "The datastore endpoint's port (after the host's ':') is not a number.",
        "host": "The datastore endpoint's host is not a valid address (no '%' escapes or "
                "unclosed '[').",
        "userinfo": "K3s (Go's URL parser: \"net/url: invalid userinfo\") refuses a "
                    "character in the datastore endpoint's user or password: " + _ENCODE_HINT
                    + ".",
        "user": "The datastore endpoint's user has a '%' that does not start a valid "
                "escape (like %40): write % itself as %25.",
        "password": "The datastore endpoint's password has a '%' that does not start a valid "
                    "escape (like %40): write % itself as %25.",
        "path": "The datastore endpoint's database name has a '%' that does not start a "
                "valid escape: write % itself as %25.",
        "query": "An option after '?' in the datastore endpoint is malformed: K3s refuses a "
                 "';' there and a '%' that does not start a valid escape (separate options "
                 "with '&', write % as %25).",
    }
    return messages[part]


def parse_pg_endpoint(text: str) -> PostgresEndpoint:
    """Read a (user-supplied) endpoint as kine + pgx do, or say what is wrong with it.

    kine v0.16.4 hands `postgres://` + the rest to Go's url.Parse; Python's urlsplit and
    unquote accept what Go refuses (a raw space, `<`, `é` or `%zz` in the password), so the
    parts are found with Go's own rules (parse_go_url). No message quotes the parser's text:
    with a '/' in a password the "port" Go complains about is a piece of that password."""
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
        url = parse_go_url("postgres://" + rest)
    except GoURLError as exc:
        raise DatastoreEndpointError(_go_url_message(exc, rest)) from None
    if not url.authority_has_at and url.after_authority_has_at:
        raise DatastoreEndpointError(
            "K3s would not find the datastore endpoint's user: a '/', '?' or '#' in the "
            "password ends the address part of the URL; " + _ENCODE_HINT + ".")
    if not url.user:
        raise DatastoreEndpointError(
            "The datastore endpoint names no user: write postgres://USER:PASSWORD@host:5432/db.")
    host, port = _split_host_port(url.host)
    if not host:
        raise DatastoreEndpointError("The datastore endpoint names no host.")
    params = tuple(parse_qsl(url.raw_query, keep_blank_values=True))
    given = dict(params)
    mode = given.get("sslmode", "prefer")
    if mode not in SSL_MODES:
        raise DatastoreEndpointError(
            f"sslmode={mode} is not one pgx knows: use one of {', '.join(SSL_MODES)}.")
    files = [key for key in HOST_FILE_PARAMS if key in given]
    if files:
        raise DatastoreEndpointError(
            f"Remove {', '.join(files)} from the datastore endpoint: these options name files "
            "on the K3s servers, which the panel neither puts there nor can read to check the "
            "connection (it would look for them on its own machine). sslmode=verify-full "
            "checks the server against the servers' system CA bundle; a client certificate "
            "is not supported for your own PostgreSQL.")
    # pgx reads `?password=` after the URL's user information, so it wins (pgconn's
    # parseURLSettings): the check must log in with the password K3s will use.
    password = given.get("password", url.password or "")
    return PostgresEndpoint(user=url.user, password=password, host=host, port=port,
                            database=url.path.lower().lstrip("/") or DEFAULT_DATABASE,
                            params=params)


def _split_host_port(host: str) -> tuple[str, int]:
    """Go's u.Hostname() and u.Port(), the port checked the way pgx does (1 to 65535)."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port_text = rest[1:]
    else:
        name, _, port_text = host.rpartition(":") if ":" in host else (host, "", "")
    if not port_text:
        return name, DEFAULT_PORT
    if not 0 < int(port_text) < 65536:
        raise DatastoreEndpointError(
            "The datastore endpoint's port is out of range (1 to 65535).")
    return name, int(port_text)


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
