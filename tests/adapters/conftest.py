"""Real services for the adapter tests: an OpenSSH server, a scratch MariaDB database."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator

import pymysql
import pytest

from tests.adapters.sshd_server import SshServer, start_sshd
from tests.support.tools import require

MARIADB = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}
SCRATCH_PREFIX = "panel_adapters_"


@pytest.fixture(scope="session")
def sshd() -> Iterator[SshServer]:
    require("sshd", "ssh-keygen", "unshare", "openssl", "sudo")
    server = start_sshd()
    yield server
    server.stop()


def _admin() -> pymysql.connections.Connection:
    try:
        return pymysql.connect(**MARIADB, connect_timeout=5, autocommit=True)
    except pymysql.err.OperationalError as exc:
        require("mariadbd")
        pytest.fail("The datastore tests need the system MariaDB on 127.0.0.1:3306 with a root "
                    f"login without password (start it with `service mariadb start`): {exc}",
                    pytrace=False)


@pytest.fixture(scope="session")
def mariadb_admin() -> Iterator[pymysql.connections.Connection]:
    conn = _admin()
    with conn.cursor() as cur:  # leftovers of crashed runs whose pytest is gone
        cur.execute("SHOW DATABASES LIKE %s", (SCRATCH_PREFIX + "%",))
        for (name,) in cur.fetchall():
            owner = name[len(SCRATCH_PREFIX):].split("_", 1)[0]
            if owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
                cur.execute(f"DROP DATABASE `{name}`")
        cur.execute("SELECT user FROM mysql.user WHERE user LIKE %s", (SCRATCH_PREFIX + "%",))
        for (user,) in cur.fetchall():
            owner = user[len(SCRATCH_PREFIX):].split("_", 1)[0]
            if owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
                cur.execute(f"DROP USER '{user}'@'%'")
    yield conn
    conn.close()


@pytest.fixture
def scratch_db(mariadb_admin: pymysql.connections.Connection) -> Iterator[dict[str, str]]:
    """A database and a user with rights on it only, like the RDS account K3s gets."""
    suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
    name = f"{SCRATCH_PREFIX}{suffix}"
    user = f"{SCRATCH_PREFIX}{suffix}"[:32]
    password = "Db-" + secrets.token_hex(8) + "@:/x"  # DSN-hostile characters on purpose
    with mariadb_admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
        cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (password,))
        cur.execute(f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{user}'@'%'")
    yield {"database": name, "user": user, "password": password}
    with mariadb_admin.cursor() as cur, contextlib.suppress(pymysql.MySQLError):
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"DROP USER IF EXISTS '{user}'@'%'")
