"""The datastore health queries against the system MariaDB, as an RDS account runs them."""

from __future__ import annotations

import pymysql

from clusters.adapters.datastore import check_datastore, connect
from clusters.adapters.datastore_health import measure
from clusters.k3s import kine_ddl
from tests.adapters.test_datastore import NEW_K3S, endpoint_for

INSERT = ("INSERT INTO kine (name, created, deleted, create_revision, prev_revision, lease, "
          "value, old_value) VALUES (%s, %s, 0, 0, %s, 0, %s, NULL)")


def test_measure_reads_kines_revisions_rows_and_connections(scratch_db: dict[str, str]) -> None:
    endpoint = endpoint_for(scratch_db)
    with connect(endpoint) as conn:
        before = measure(conn)
        assert before.newest_revision is None and before.rows is None
        assert "no kine table" in before.unreadable["compaction"]
        assert before.max_connections and before.connections_in_use, "the server still answers"

        with conn.cursor() as cur:
            for statement in kine_ddl(NEW_K3S):
                cur.execute(statement)
            cur.execute(INSERT, ("compact_rev_key", 1, 0, b""))
            for revision in range(2, 12):  # one key written ten times
                cur.execute(INSERT, ("/registry/leases/n1", 0, revision - 1, b"x"))
            cur.execute("UPDATE kine SET prev_revision = 6 WHERE name = 'compact_rev_key'")
        found = measure(conn)
    assert found.unreadable == {}
    assert (found.rows, found.newest_revision, found.compacted_revision) == (11, 11, 6)
    assert found.compaction_gap == 5
    assert found.table_bytes is not None and found.table_bytes > 0
    assert 1 <= found.connections_in_use <= found.max_connections
    with connect(endpoint) as conn:
        capped = measure(conn, rows_cap=7)
    assert (capped.rows, capped.rows_capped) == (8, True), "counting stops past the limit"


def test_the_datastore_proof_reports_max_connections(
        scratch_db: dict[str, str], mariadb_admin: pymysql.connections.Connection) -> None:
    report = check_datastore(endpoint_for(scratch_db), NEW_K3S)
    with mariadb_admin.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.max_connections, @@GLOBAL.max_user_connections")
        instance, per_account = cur.fetchone()
    expected = min(instance, per_account) if per_account else instance
    assert report.max_connections == int(expected) > 0
