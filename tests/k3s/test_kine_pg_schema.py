"""kine's PostgreSQL DDL, written twice by design, against each other and against kine itself.

Why: the panel's datastore proof (`clusters.k3s.pgdsn.kine_pg_ddl`) must run exactly what K3s
will run on the customer's database, and the K3s stand-in (`sandbox.k3s.kine_pg.SCHEMA`) must
run it too; the sandbox may not import the panel (.importlinter), so the two lists are copies.
This test (tests/ may import both) is what keeps the copies from drifting apart. Both were
written from kine v0.16.4's `schema` list (pkg/drivers/pgsql/pgsql.go at tag v0.16.4, commit
caf32704a06bacda37aec4db49ec432eda567241); kine's code is not copied into this repository, so
the pin on kine itself is the facts a reader checks there: seven statements, the table first
with `name text COLLATE "C"`, then its indexes.
"""

from __future__ import annotations

import re

import pytest

from clusters.k3s.pgdsn import kine_pg_ddl
from sandbox.k3s.kine_pg import SCHEMA

SCRATCH = "kine_panel_check_1"


def _normalise(statement: str) -> str:
    """Whitespace only, as PostgreSQL's parser sees it: runs of blanks collapse, none next to
    parentheses, and the trailing `;` (database/sql Exec runs one statement either way) goes."""
    text = " ".join(statement.split())
    text = re.sub(r"\(\s+", "(", text)
    text = re.sub(r"\s+\)", ")", text)
    return text.rstrip(";").rstrip()


def _kine_source() -> list[str]:
    """The stand-in's list, normalised: the copy the panel's must equal."""
    return [_normalise(s) for s in SCHEMA]


def _unscratch(statement: str, table: str) -> str:
    """A scratch table's DDL with kine's names put back: `<table>` → `kine` (its index names
    carry the table's name as a prefix, so `<table>_name_index` → `kine_name_index`)."""
    return re.sub(rf"\b{re.escape(table)}(?=\b|_)", "kine", statement)


def test_the_schema_is_kines_seven_statements_table_first() -> None:
    kine = _kine_source()
    assert len(kine) == 7
    assert kine[0].startswith("CREATE TABLE IF NOT EXISTS kine (id BIGSERIAL PRIMARY KEY,")
    assert 'name text COLLATE "C"' in kine[0]
    assert all(s.startswith("CREATE ") and " INDEX IF NOT EXISTS " in s for s in kine[1:])


def test_panel_ddl_is_kines_statement_for_statement() -> None:
    assert [_normalise(s) for s in kine_pg_ddl()] == _kine_source()


@pytest.mark.parametrize("table", [SCRATCH, "kine_panel_check_42"])
def test_panel_scratch_ddl_is_kines_but_for_the_names(table: str) -> None:
    ddl = kine_pg_ddl(table)
    assert not [s for s in ddl if re.search(r"\bkine\b", s)], "a scratch statement names kine's own"
    assert [_normalise(_unscratch(s, table)) for s in ddl] == _kine_source()


def test_panel_and_stand_in_agree() -> None:
    assert ([_normalise(_unscratch(s, SCRATCH)) for s in kine_pg_ddl(SCRATCH)]
            == [_normalise(s) for s in SCHEMA])
