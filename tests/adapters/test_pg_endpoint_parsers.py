"""The panel's PostgreSQL endpoint parser and the K3s stand-in's, pinned to one table.

The table is Go's, not ours: kine v0.16.4 (pkg/drivers/pgsql prepareConfig) hands
`postgres://` + the rest to net/url's Parse (src/net/url/url.go: validUserinfo, unescape,
validOptionalPort) and url.ParseQuery, and pgx reads `?password=` after the user
information. An endpoint Go refuses must be refused by both, with the panel saying which
part is wrong and never quoting a piece of the password.
"""

from __future__ import annotations

import pytest

from clusters.adapters.datastore_pg import connect
from clusters.core.errors import PermanentError
from clusters.core.redaction import Redactor
from clusters.k3s.dsn import DatastoreEndpointError, parse_endpoint
from clusters.k3s.pgdsn import PostgresEndpoint, build_pg_endpoint, parse_pg_endpoint
from sandbox.k3s.dsn import DSNError
from sandbox.k3s.dsn import parse_pg_endpoint as kine_parse_pg_endpoint

# (endpoint, (user, password, database) when Go accepts it, or None when kine refuses it)
CASES: list[tuple[str, tuple[str, str, str] | None]] = [
    ("postgres://k3s:Plain-Pass_1@db:5432/k3s", ("k3s", "Plain-Pass_1", "k3s")),
    ("postgresql://k3s:x@db/", ("k3s", "x", "kubernetes")),
    ("postgres://k3s:p%40ss%2Fw%25rd%231@db/k3s", ("k3s", "p@ss/w%rd#1", "k3s")),
    # Go accepts these sub-delims and a raw '@' in the password (the last '@' ends it).
    ("postgres://k3s:a!$&'()*+,;=~b@db/k3s", ("k3s", "a!$&'()*+,;=~b", "k3s")),
    ("postgres://k3s:p@ss@db/k3s", ("k3s", "p@ss", "k3s")),
    # The path is percent-decoded as Go does, then lower-cased by kine.
    ("postgres://k3s:x@db/K3s%2Ddb", ("k3s", "x", "k3s-db")),
    # pgx: a query password wins over the user information's.
    ("postgres://k3s:old@db/k3s?password=Query-Pass&sslmode=disable",
     ("k3s", "Query-Pass", "k3s")),
    ("postgres://k3s:x@[::1]:5433/k3s", ("k3s", "x", "k3s")),
    # "net/url: invalid userinfo": outside validUserinfo's set.
    ("postgres://k3s:pass word@db/k3s", None),
    ("postgres://k3s:pa<ss>@db/k3s", None),
    ('postgres://k3s:pa"ss@db/k3s', None),
    ("postgres://k3s:pa^ss@db/k3s", None),
    ("postgres://k3s:pä55@db/k3s", None),
    ("postgres://k3s:pa[ss]@db/k3s", None),
    ("postgres://k3s:pa\\ss@db/k3s", None),
    # "invalid URL escape": a '%' not followed by two hex digits.
    ("postgres://k3s:%zzpass@db/k3s", None),
    ("postgres://k3s:pass%4@db/k3s", None),
    ("postgres://k%g3s:pass@db/k3s", None),
    ("postgres://k3s:x@db/k3s%zz", None),
    ("postgres://k3s:x@db/k3s?sslmode=disable&application_name=a%zz", None),
    # url.ParseQuery: "invalid semicolon separator in query".
    ("postgres://k3s:x@db/k3s?sslmode=disable;connect_timeout=5", None),
    # A '/' or '#' in a raw password ends the authority: "invalid port … after host".
    ("postgres://k3s:Secr3tPa/ss99@db:5432/k3s", None),
    ("postgres://k3s:Secr3tPa#ss99@db:5432/k3s", None),
    # A control character: "net/url: invalid control character in URL".
    ("postgres://k3s:pa\tss@db/k3s", None),
]


@pytest.mark.parametrize(("endpoint", "expected"), CASES, ids=[c[0] for c in CASES])
def test_the_panel_and_the_k3s_stand_in_read_each_endpoint_as_kine(
        endpoint: str, expected: tuple[str, str, str] | None) -> None:
    if expected is None:
        with pytest.raises(DatastoreEndpointError):
            parse_pg_endpoint(endpoint)
        with pytest.raises(DSNError):
            kine_parse_pg_endpoint(endpoint)
        return
    panel = parse_pg_endpoint(endpoint)
    kine = kine_parse_pg_endpoint(endpoint)
    assert (panel.user, panel.password, panel.database) == expected
    assert (kine.user, kine.password, kine.dbname) == expected
    assert (panel.host, panel.port) == (kine.host, kine.port)


@pytest.mark.parametrize("endpoint", [c[0] for c in CASES if c[1] is None])
def test_no_refusal_quotes_the_endpoint(endpoint: str) -> None:
    """Neither the panel's message nor the stand-in's fatal line holds a piece of the
    password (the text between the user's ':' and the last '@')."""
    secret_bits = ["Secr3tPa", "ss99", "pass word", "pa<ss>", "zzpass", "pä55", "pa^ss"]
    with pytest.raises(DatastoreEndpointError) as panel:
        parse_pg_endpoint(endpoint)
    with pytest.raises(DSNError) as kine:
        kine_parse_pg_endpoint(endpoint)
    for text in (str(panel.value), str(kine.value)):
        assert not [bit for bit in secret_bits if bit in text], text


def test_a_password_with_a_slash_gets_a_message_naming_the_part_not_the_password() -> None:
    with pytest.raises(DatastoreEndpointError) as caught:
        parse_pg_endpoint("postgres://k3s:Secr3tPa/ss99@db:5432/k3s")
    message = str(caught.value)
    assert "Secr3tPa" not in message and "ss99" not in message
    assert "password" in message and "%2F" in message


def test_go_refusals_are_explained_with_percent_encoding() -> None:
    with pytest.raises(DatastoreEndpointError, match=r"invalid userinfo.*percent-encode"):
        parse_pg_endpoint("postgres://k3s:pass word@db/k3s")
    with pytest.raises(DatastoreEndpointError, match=r"password has a '%'.*%25"):
        parse_pg_endpoint("postgres://k3s:%zzpass@db/k3s")
    with pytest.raises(DSNError, match="net/url: invalid userinfo"):
        kine_parse_pg_endpoint("postgres://k3s:pass word@db/k3s")
    with pytest.raises(DSNError, match='invalid URL escape "%zz"'):
        kine_parse_pg_endpoint("postgres://k3s:%zzpass@db/k3s")


def test_the_builder_output_always_passes_go() -> None:
    password = "a b<c>\"d^é\\f%g/h?i#j@k:l"
    endpoint = build_pg_endpoint("k3s", password, "db", database="k3s")
    assert kine_parse_pg_endpoint(endpoint).password == password
    assert parse_pg_endpoint(endpoint).password == password


@pytest.mark.parametrize("option", ["sslrootcert=/etc/k3s/ca.pem", "sslcert=/c.pem",
                                    "sslkey=/k.pem"])
def test_files_on_the_k3s_hosts_are_refused_with_a_reason(option: str) -> None:
    with pytest.raises(DatastoreEndpointError, match="files on the K3s servers"):
        parse_pg_endpoint(f"postgres://k3s:x@db/k3s?sslmode=verify-full&{option}")


def test_a_query_password_is_never_shown_and_is_redacted() -> None:
    dsn = "postgres://k3s:x@db/k3s?sslmode=require&password=Query%2BSecret-77"
    endpoint = parse_pg_endpoint(dsn)
    assert endpoint.password == "Query+Secret-77"
    assert "Query" not in endpoint.redacted() and "Query" not in str(endpoint)
    assert "password=***" in endpoint.redacted()
    # Cluster.secret_values() hands the whole DSN to every Redactor: the query's password
    # alone, raw or decoded, is masked too (as a psycopg error or a host's echo shows it).
    redact = Redactor([dsn], remember=False)
    assert redact("auth failed for Query+Secret-77 / Query%2BSecret-77") == (
        "auth failed for *** / ***")


def test_the_mysql_parser_quotes_no_piece_of_the_endpoint_in_its_errors() -> None:
    """go-sql-driver's form: with an '@' in the password and no tcp(), what follows the last
    '@' is the password's end; a malformed option may sit next to a secret."""
    with pytest.raises(DatastoreEndpointError) as caught:
        parse_endpoint("mysql://k3s:Secr3t@Tail99/k3s")
    assert "Tail99" not in str(caught.value) and "tcp(" in str(caught.value)
    with pytest.raises(DatastoreEndpointError) as caught:
        parse_endpoint("mysql://k3s:x@tcp(db:3306)/k3s?tls=true&=Hidden-Value")
    assert "Hidden-Value" not in str(caught.value)


def test_the_check_never_hands_a_k3s_host_path_to_the_panels_libpq() -> None:
    """Defence behind the parser: an endpoint built by hand with a host file is refused
    before any connection (libpq would read the panel's own /etc/… instead)."""
    endpoint = PostgresEndpoint(user="k3s", password="x", host="127.0.0.1", port=1,
                                params=(("sslrootcert", "/etc/k3s/ca.pem"),))
    with pytest.raises(PermanentError, match="files on the K3s servers"), connect(endpoint):
        pass
