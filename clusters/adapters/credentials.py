"""Credentials the panel generates, and the name rules RDS enforces on what it creates.

Why: an RDS password must satisfy RDS's complexity rule *and* survive every place it travels
unchanged (a go-sql-driver DSN that is never URL-decoded, YAML, a Redactor); a K3s token must
be identical on every server and never need quoting. Checking names here, before any money is
spent, turns RDS's `InvalidAccountName.Format` an hour into provisioning into a form error.
"""

from __future__ import annotations

import re
import secrets
import string

from clusters.core.errors import PermanentError

# RDS accepts `! @ # $ % ^ & * ( ) _ + - =` as specials. We generate from the two that mean
# nothing to a DSN (`@ : / ( ) ?`), a shell (`$ ! * & ( )`), YAML (`# ! & *`), URL decoding
# (`% +`) or a systemd EnvironmentFile (`$ %`): a generated password never needs escaping.
RDS_SPECIALS = "!@#$%^&*()_+-="
GENERATED_SPECIALS = "-_"
RDS_PASSWORD_MIN, RDS_PASSWORD_MAX = 8, 32
GENERATED_PASSWORD_LENGTH = 24

K3S_TOKEN_BYTES = 24  # 48 hex characters; hex never collides with the `K10…::server:` syntax

# Names RDS rejects as account names (InvalidAccountName.Forbid); the doc list is longer,
# these are the ones a person is likely to type.
RESERVED_ACCOUNT_NAMES = frozenset({
    "root", "admin", "administrator", "mysql", "sys", "system", "aliyun_root", "replicator",
    "aurora", "xtrabak", "eagleye", "information_schema", "performance_schema", "test",
})
RESERVED_DB_NAMES = frozenset({"mysql", "information_schema", "performance_schema", "sys", "test"})

_ACCOUNT_NAME = re.compile(r"^[a-z][a-z0-9_]*[a-z0-9]$")
_DB_NAME = re.compile(r"^[a-z][a-z0-9_]*[a-z0-9]$")


def generate_rds_password(length: int = GENERATED_PASSWORD_LENGTH) -> str:
    """A password RDS accepts (all four classes) that is safe verbatim inside a K3s DSN."""
    if not RDS_PASSWORD_MIN <= length <= RDS_PASSWORD_MAX:
        raise ValueError(f"RDS passwords are {RDS_PASSWORD_MIN}-{RDS_PASSWORD_MAX} characters")
    classes = [string.ascii_uppercase, string.ascii_lowercase, string.digits, GENERATED_SPECIALS]
    alphabet = "".join(classes)
    chars = [secrets.choice(group) for group in classes]
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    # Shuffle with a CSPRNG; start with a letter so no tool mistakes it for an option.
    for i in range(len(chars) - 1, 0, -1):
        j = secrets.randbelow(i + 1)
        chars[i], chars[j] = chars[j], chars[i]
    first = next(i for i, c in enumerate(chars) if c.isalpha())
    chars[0], chars[first] = chars[first], chars[0]
    return "".join(chars)


def rds_password_problem(password: str) -> str | None:
    """Why RDS would reject a (user-supplied) password, or None if it is acceptable."""
    if not RDS_PASSWORD_MIN <= len(password) <= RDS_PASSWORD_MAX:
        return f"must be {RDS_PASSWORD_MIN} to {RDS_PASSWORD_MAX} characters long"
    allowed = set(string.ascii_letters + string.digits + RDS_SPECIALS)
    bad = sorted(set(password) - allowed)
    if bad:
        return f"may only use letters, digits and {' '.join(RDS_SPECIALS)} (not {''.join(bad)!r})"
    kinds = [
        any(c.isupper() for c in password), any(c.islower() for c in password),
        any(c.isdigit() for c in password), any(c in RDS_SPECIALS for c in password),
    ]
    if sum(kinds) < 3:
        return "needs three of: upper-case letters, lower-case letters, digits, special characters"
    return None


def generate_k3s_token() -> str:
    """The shared secret every server gets; it also encrypts K3s's bootstrap data in the DB."""
    return secrets.token_hex(K3S_TOKEN_BYTES)


def account_name_problem(name: str, engine_version: str = "8.0") -> str | None:
    """Why RDS would reject `name` as a MySQL account name, or None."""
    limit = 16 if engine_version in ("5.5", "5.6") else 32
    if not 2 <= len(name) <= limit:
        return f"must be 2 to {limit} characters long for MySQL {engine_version}"
    if not _ACCOUNT_NAME.match(name):
        return ("may only use lower-case letters, digits and _, must start with a letter and "
                "end with a letter or digit")
    if name in RESERVED_ACCOUNT_NAMES:
        return f"{name!r} is reserved by RDS"
    return None


def database_name_problem(name: str) -> str | None:
    """Why `name` is not usable as the K3s database, or None.

    RDS also allows `-`, but kine before v0.13 runs `create database if not exists <name>`
    unquoted, where a `-` is a syntax error; so we do not allow it.
    """
    if not 2 <= len(name) <= 64:
        return "must be 2 to 64 characters long"
    if not _DB_NAME.match(name):
        return ("may only use lower-case letters, digits and _, must start with a letter and "
                "end with a letter or digit")
    if name in RESERVED_DB_NAMES:
        return f"{name!r} is reserved by MySQL"
    return None


def name_from_cluster(cluster_name: str, prefix: str = "k3s", limit: int = 16) -> str:
    """A valid account/database name derived from a cluster name, e.g. `k3s_prod_eu`."""
    slug = re.sub(r"[^a-z0-9]+", "_", cluster_name.lower()).strip("_")
    name = f"{prefix}_{slug}" if slug else prefix
    name = name[:limit].rstrip("_")
    return name if len(name) >= 2 else f"{prefix}db"


def require_valid(kind: str, problem: str | None) -> None:
    """Raise a PermanentError a person can act on when a name or password is rejected."""
    if problem:
        raise PermanentError(f"The {kind} {problem}.")
