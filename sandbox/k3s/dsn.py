"""K3s's `--datastore-endpoint` for MySQL, parsed exactly as kine + go-sql-driver do.

Why: everything after `mysql://` reaches go-sql-driver's ParseDSN raw (no URL decoding), and
the common mistakes (no `tcp(...)`, over-quoting, wrong scheme) fail with that driver's own
messages. The panel's DSN builder must survive this parser, so the stand-in uses the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

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


def parse_pg_endpoint(endpoint: str) -> PostgresDSN:
    """kine pgsql prepareConfig: `postgres://` + what follows the scheme, parsed as a URL
    (user info percent-decoded, as Go's url.Parse does), database `kubernetes` when the path
    is empty, lower-cased (kine: "makes quoting database and schema reference the same")."""
    _, raw = split_endpoint(endpoint)
    try:
        parts = urlsplit("postgres://" + raw)
        port = parts.port
    except ValueError as exc:
        raise DSNError(f"parse \"postgres://{raw.split('@')[-1]}\": {exc}") from None
    cfg = PostgresDSN()
    if parts.username is not None:
        cfg.user = unquote(parts.username)
        cfg.password = unquote(parts.password or "")
    cfg.host = parts.hostname or "localhost"
    cfg.port = port or 5432
    path = parts.path.lower()
    cfg.dbname = path.lstrip("/") if path not in ("", "/") else "kubernetes"
    cfg.params = dict(parse_qsl(parts.query, keep_blank_values=True))
    return cfg


def endpoint_scheme(endpoint: str) -> str:
    return split_endpoint(endpoint)[0]
