"""The datastore page's PostgreSQL choices: RDS PostgreSQL as the zone sells it, and a
PostgreSQL of one's own, its DSN read as kine reads it."""

from __future__ import annotations

import re
from typing import Any

from django.test import Client

from clusters.interface.forms.wizard_datastore import datastore_of
from clusters.interface.wizard import WizardState, billed_resources
from clusters.models import DatastoreEngine, DatastoreKind
from tests.ui.test_wizard import field_errors, step_url


def _options(response: Any, name: str) -> list[str]:
    select = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>',
                       response.content.decode(), re.S)
    assert select, f"no {name} select"
    return re.findall(r'<option value="([^"]*)"', select.group(1))


def test_the_page_offers_four_datastores() -> None:
    assert datastore_of("rds") == (DatastoreKind.RDS, DatastoreEngine.MYSQL)
    assert datastore_of("rds_postgresql") == (DatastoreKind.RDS, DatastoreEngine.POSTGRESQL)
    assert datastore_of("external") == (DatastoreKind.EXTERNAL, DatastoreEngine.MYSQL)
    assert datastore_of("external_postgresql") == (DatastoreKind.EXTERNAL,
                                                   DatastoreEngine.POSTGRESQL)


def test_rds_postgresql_offers_what_the_zone_sells_for_postgresql(at_datastore: Client) -> None:
    page = at_datastore.get(step_url("datastore"))
    for choice in ("rds", "rds_postgresql", "external", "external_postgresql"):
        assert f'value="{choice}"' in page.content.decode()
    refreshed = at_datastore.post(step_url("datastore"), {
        "kind": "rds_postgresql", "rds_engine_version": "8.0", "action": "refresh"})
    classes = _options(refreshed, "rds_instance_class")
    assert "pg.n2.2c.2m" in classes and not any(c.startswith("mysql.") for c in classes)
    # The MySQL version the picker still had gives way to PostgreSQL's default.
    assert re.search(r'<option value="17.0"[^>]*selected', refreshed.content.decode())
    wrong = at_datastore.post(step_url("datastore"), {
        "kind": "rds_postgresql", "rds_engine_version": "16.0",
        "rds_instance_class": "mysql.n2.medium.2c", "rds_storage_gb": 20})
    assert "does not sell mysql.n2.medium.2c" in " ".join(
        field_errors(wrong, "rds_instance_class"))
    done = at_datastore.post(step_url("datastore"), {
        "kind": "rds_postgresql", "rds_engine_version": "16.0",
        "rds_instance_class": "pg.n2.2c.2m", "rds_storage_gb": 20, "datastore_tls": "on"})
    assert done["Location"] == step_url("hosts")
    saved = WizardState(at_datastore.session).get("datastore")
    assert saved["kind"] == "rds_postgresql" and saved["datastore_tls"] is False
    (rds, _slb) = billed_resources(WizardState(at_datastore.session))
    assert "PostgreSQL 16.0 · pg.n2.2c.2m" in rds.detail


def test_own_postgresql_dsn_is_read_as_kine_reads_it(at_datastore: Client) -> None:
    mysql_form = at_datastore.post(step_url("datastore"), {
        "kind": "external_postgresql", "external_dsn": "mysql://k3s:x@tcp(db:3306)/k3s"})
    assert "must start with postgres://" in " ".join(field_errors(mysql_form, "external_dsn"))
    # A name the panel cannot resolve: accepted with a warning (the hosts may reach it).
    dsn = "postgres://k3s:Secret%40123@db.invalid:5432/k3s?sslmode=require"
    passed = at_datastore.post(step_url("datastore"), {
        "kind": "external_postgresql", "external_dsn": dsn}, follow=True)
    assert passed.redirect_chain[-1][0] == step_url("hosts")
    assert "could not reach db.invalid:5432" in passed.content.decode()
    assert "Secret@123" not in passed.content.decode()
    assert WizardState(at_datastore.session).get("datastore")["external_dsn"] == dsn


def test_own_postgresql_dsn_that_k3s_would_refuse_is_refused_with_no_piece_of_it(
        at_datastore: Client) -> None:
    """Go's url.Parse refuses these at K3s's start; the wizard refuses them first, naming
    the part and the fix, quoting nothing of the password."""
    for dsn, hint in (("postgres://k3s:Secr3tPa/ss99@db.invalid:5432/k3s", "%2F"),
                      ("postgres://k3s:Pass word99@db.invalid/k3s", "invalid userinfo"),
                      ("postgres://k3s:%zzSecret99@db.invalid/k3s", "%25"),
                      ("postgres://k3s:x@db.invalid/k3s?sslrootcert=/etc/ca.pem",
                       "files on the K3s servers")):
        refused = at_datastore.post(step_url("datastore"), {
            "kind": "external_postgresql", "external_dsn": dsn})
        errors = " ".join(field_errors(refused, "external_dsn"))
        assert hint in errors, (dsn, errors)
        page = refused.content.decode()
        assert "Secr3tPa" not in page and "ss99" not in page and "Secret99" not in page, dsn
        saved = WizardState(at_datastore.session).get("datastore")
        assert saved.get("external_dsn") != dsn, dsn
