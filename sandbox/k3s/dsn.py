"""K3s's `--datastore-endpoint` for MySQL, parsed exactly as kine + go-sql-driver do.

Why: everything after `mysql://` reaches go-sql-driver's ParseDSN raw (no URL decoding), and
the common mistakes (no `tcp(...)`, over-quoting, wrong scheme) fail with that driver's own
messages. The panel's DSN builder must survive this parser, so the stand-in uses the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

DEFAULT_UNIX_DSN = "root@unix(/var/run/mysqld/mysqld.sock)/"


class DSNError(ValueError):
    """A DSN go-sql-driver (or kine's endpoint switch) rejects; str() is the Go error text."""


@dataclass
class MySQLDSN:
    user: str = ""
    password: str = ""
    net: str = "tcp"
    addr: str = "127.0.0.1:3306"
    dbname: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.addr.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.addr.rsplit(":", 1)[1])


def split_endpoint(endpoint: str) -> tuple[str, str]:
    """kine's util.SchemeAndAddress: ("mysql", "<raw dsn>")."""
    parts = endpoint.split("://", 1)
    if len(parts) != 2:
        return "", endpoint
    return parts[0], parts[1]


def _ensure_port(addr: str) -> str:
    if addr.startswith("["):
        return addr if "]:" in addr else f"{addr}:3306"
    if addr.count(":") == 1:
        return addr
    if ":" in addr:  # bare IPv6
        return f"[{addr}]:3306"
    return f"{addr}:3306"


def _parse_credentials_and_address(left: str, cfg: MySQLDSN) -> None:
    """[user[:password]@][net[(addr)]]: last '@' splits, first ':' splits user/password."""
    at = left.rfind("@")
    if at >= 0:
        creds = left[:at]
        colon = creds.find(":")
        if colon >= 0:
            cfg.user, cfg.password = creds[:colon], creds[colon + 1:]
        else:
            cfg.user = creds
    proto = left[at + 1:]
    paren = proto.find("(")
    if paren < 0:
        cfg.net = proto
        return
    if not proto.endswith(")"):
        if ")" in proto[paren + 1:]:
            raise DSNError("invalid DSN: did you forget to escape a param value?")
        raise DSNError("invalid DSN: network address not terminated (missing closing brace)")
    cfg.addr = proto[paren + 1:-1]
    cfg.net = proto[:paren]


def parse_go_dsn(dsn: str) -> MySQLDSN:
    """go-sql-driver/mysql ParseDSN: [user[:password]@][net[(addr)]]/dbname[?params]."""
    cfg = MySQLDSN(net="", addr="")
    slash = dsn.rfind("/")
    if slash < 0:
        if dsn:
            raise DSNError("invalid DSN: missing the slash separating the database name")
        return _normalize(cfg)
    if dsn[:slash]:
        _parse_credentials_and_address(dsn[:slash], cfg)
    rest = dsn[slash + 1:]
    name, _, query = rest.partition("?")
    cfg.dbname = name
    if query:
        for pair in query.split("&"):
            key, sep, value = pair.partition("=")
            if not sep:
                raise DSNError(f"invalid DSN: invalid param: {pair}")
            cfg.params[key] = value
    return _normalize(cfg)


def _normalize(cfg: MySQLDSN) -> MySQLDSN:
    if not cfg.net:
        cfg.net = "tcp"
    if not cfg.addr:
        if cfg.net == "tcp":
            cfg.addr = "127.0.0.1:3306"
        elif cfg.net == "unix":
            cfg.addr = "/tmp/mysql.sock"  # noqa: S108 - go-sql-driver's own default
        else:
            raise DSNError(f"default addr for network '{cfg.net}' unknown")
    elif cfg.net == "tcp":
        cfg.addr = _ensure_port(cfg.addr)
    # Other networks with an explicit address pass here and fail at dial time, as in Go.
    return cfg


def parse_endpoint(endpoint: str) -> MySQLDSN:
    """`--datastore-endpoint` → DSN, defaulting the database to `kubernetes` like kine."""
    scheme, raw = split_endpoint(endpoint)
    if scheme != "mysql":
        # kine's endpoint switch: unknown or mangled schemes (quoting accidents) end here.
        raise DSNError("storage backend is not defined")
    cfg = parse_go_dsn(raw or DEFAULT_UNIX_DSN)
    if not cfg.dbname:
        cfg.dbname = "kubernetes"
    return cfg


@dataclass
class PostgresDSN:
    """kine's pgsql endpoint, after prepareConfig: `postgres://` + the rest, a URL."""

    user: str = "postgres"
    password: str = "postgres"  # noqa: S105 - kine's defaultDSN, not a secret
    host: str = "localhost"
    port: int = 5432
    dbname: str = "kubernetes"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"


PG_SCHEMES = ("postgres", "postgresql")  # kine pkg/drivers/pgsql: drivers.Register twice


# Go's net/url (src/net/url/url.go), kept here because the sandbox imports nothing of the
# panel: validUserinfo's set (unreserved, sub-delims, ':', '@', and '%' for escapes).
_GO_USERINFO = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
                         "-._~!$&'()*+,;=:@%")
_GO_HEX = frozenset("0123456789abcdefABCDEF")


def _go_unescape(text: str, *, plus_is_space: bool = False) -> str:
    """Go's url.unescape: a '%' not followed by two hex digits is `invalid URL escape "%zz"`
    (the three characters from the '%', as Go quotes them)."""
    for i, char in enumerate(text):
        if char == "%" and not (text[i + 1:i + 2] in _GO_HEX and text[i + 2:i + 3] in _GO_HEX):
            raise DSNError(f"invalid URL escape {_go_quote(text[i:i + 3])}")
    if plus_is_space:
        text = text.replace("+", " ")
    return unquote(text, errors="surrogateescape")


def _go_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _go_url_parse(url: str) -> tuple[str | None, str | None, str, str, str]:
    """url.Parse as kine calls it: (user, password, host, decoded path, raw query). The error
    texts are Go's; the URL in `parse "…"` is left out by the caller (it holds the password)."""
    url, _, fragment = url.partition("#")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise DSNError("net/url: invalid control character in URL")
    _, _, rest = url.partition("://")
    rest, _, raw_query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    at = authority.rfind("@")
    host = authority[at + 1:]
    if host.startswith("["):
        close = host.rfind("]")
        if close < 0:
            raise DSNError("missing ']' in host")
        colon_port = host[close + 1:]
    else:
        colon = host.rfind(":")
        colon_port = host[colon:] if colon >= 0 else ""
    if colon_port and (colon_port[0] != ":" or not all("0" <= c <= "9" for c in colon_port[1:])):
        # Go quotes the "port" here; with a '/' in a raw password it is the password's start.
        raise DSNError('invalid port ":***" after host')
    if "%" in host:
        raise DSNError(f"invalid URL escape {_go_quote(host[host.index('%'):][:3])}")
    user = password = None
    if at >= 0:
        userinfo = authority[:at]
        if not all(c in _GO_USERINFO for c in userinfo):
            raise DSNError("net/url: invalid userinfo")
        raw_user, colon_sep, raw_password = userinfo.partition(":")
        user = _go_unescape(raw_user)
        password = _go_unescape(raw_password) if colon_sep else None
    decoded_path = _go_unescape(slash + path)
    if fragment:
        _go_unescape(fragment)
    return user, password, host, decoded_path, raw_query


def _go_parse_query(raw_query: str) -> dict[str, str]:
    """url.ParseQuery: '&'-separated, ';' refused, keys and values unescaped ('+' a space);
    kine keeps the first value of each key."""
    params: dict[str, str] = {}
    for pair in raw_query.split("&") if raw_query else ():
        if ";" in pair:
            raise DSNError("invalid semicolon separator in query")
        if not pair:
            continue
        key, _, value = pair.partition("=")
        key, value = _go_unescape(key, plus_is_space=True), _go_unescape(value, plus_is_space=True)
        params.setdefault(key, value)
    return params


def parse_pg_endpoint(endpoint: str) -> PostgresDSN:
    """kine pgsql prepareConfig: `postgres://` + what follows the scheme, parsed by Go's
    url.Parse (user info and path percent-decoded, a bad escape or a character outside
    validUserinfo's set refused), then url.ParseQuery; database `kubernetes` when the path
    is empty, lower-cased (kine: "makes quoting database and schema reference the same").
    pgx reads `?password=` after the user information, so it wins."""
    _, raw = split_endpoint(endpoint)
    try:
        user, password, host, path, raw_query = _go_url_parse("postgres://" + raw)
        params = _go_parse_query(raw_query)
    except DSNError as exc:
        # Go prints `parse "<the URL>": …`; the stand-in leaves the URL out (the password).
        raise DSNError(f'parse "postgres://***": {exc}') from None
    cfg = PostgresDSN()
    if user is not None:
        cfg.user = user
        cfg.password = password or ""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port_text = rest[1:]
    elif ":" in host:
        name, _, port_text = host.rpartition(":")
    else:
        name, port_text = host, ""
    cfg.host = name or "localhost"
    if port_text:
        if not 0 < int(port_text) < 65536:  # pgx: strconv.ParseUint(port, 10, 16)
            raise DSNError("cannot parse `postgres://***`: invalid port (outside range)")
        cfg.port = int(port_text)
    cfg.dbname = path.lower().lstrip("/") if path not in ("", "/") else "kubernetes"
    cfg.params = params
    if "password" in params:
        cfg.password = params["password"]
    return cfg


def endpoint_scheme(endpoint: str) -> str:
    return split_endpoint(endpoint)[0]
