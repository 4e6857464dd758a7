"""Generated secrets and RDS name rules."""

from __future__ import annotations

import string

import pytest

from clusters.adapters.credentials import (
    account_name_problem,
    database_name_problem,
    generate_k3s_token,
    generate_rds_password,
    name_from_cluster,
    rds_password_problem,
    require_valid,
)
from clusters.core.errors import PermanentError
from clusters.core.redaction import Redactor
from clusters.k3s import build_endpoint, parse_endpoint


def test_generated_passwords_satisfy_rds_and_need_no_escaping() -> None:
    seen = set()
    for _ in range(500):
        password = generate_rds_password()
        seen.add(password)
        assert rds_password_problem(password) is None
        assert len(password) == 24 and password[0].isalpha()
        assert set(password) <= set(string.ascii_letters + string.digits + "-_")
        assert all(any(c in group for c in password) for group in (
            string.ascii_uppercase, string.ascii_lowercase, string.digits, "-_"))
        endpoint = build_endpoint("k3s", password, "rm-x", 3306, database="k3s")
        assert parse_endpoint(endpoint).password == password
        assert Redactor([password])(f"dsn {endpoint}") == "dsn mysql://k3s:***@tcp(rm-x:3306)/k3s"
    assert len(seen) == 500
    assert len(generate_rds_password(8)) == 8
    with pytest.raises(ValueError, match="8-32"):
        generate_rds_password(40)


@pytest.mark.parametrize(("password", "problem"), [
    ("Short1!", "8 to 32"),
    ("alllowercase", "three of"),
    ("Has space 123", "may only use"),
    ("UPPER-lower-1", None),
    ("Ab1!" * 8, None),
])
def test_user_supplied_passwords_are_checked_like_rds(password: str, problem: str | None) -> None:
    found = rds_password_problem(password)
    assert (found is None) if problem is None else (problem in (found or ""))


def test_k3s_tokens_are_long_random_and_plain() -> None:
    tokens = {generate_k3s_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(len(t) == 48 and set(t) <= set(string.hexdigits.lower()) for t in tokens)


def test_account_and_database_names() -> None:
    assert account_name_problem("k3s") is None
    assert "reserved" in (account_name_problem("root") or "")
    assert "start with a letter" in (account_name_problem("1k3s") or "")
    assert "2 to 16" in (account_name_problem("a" * 17, "5.6") or "")
    assert account_name_problem("a" * 17, "8.0") is None
    assert database_name_problem("k3s_prod") is None
    assert database_name_problem("k3s-prod") is not None  # old kine: unquoted CREATE DATABASE
    assert "reserved" in (database_name_problem("mysql") or "")
    name = name_from_cluster("Prod EU / West!")
    assert name == "k3s_prod_eu_west" and account_name_problem(name, "5.6") is None
    assert database_name_problem(name_from_cluster("---")) is None
    with pytest.raises(PermanentError, match="The account name must be"):
        require_valid("account name", account_name_problem("x"))
