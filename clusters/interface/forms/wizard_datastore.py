"""Wizard page 3: the datastore (RDS MySQL or PostgreSQL as sold in the zone, your own DSN of
either, or K3s's embedded etcd with no database at all)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from clusters.adapters import credentials, datastore_engines, datastore_tls, wizard_checks
from clusters.core.errors import PermanentError
from clusters.core.redaction import MASK, dsn_password
from clusters.interface.forms.common import (
    RDS_DEFAULT_VERSION,
    RDS_PG_DEFAULT_VERSION,
    RDS_PG_VERSIONS,
    RDS_VERSIONS,
    SecretTextInput,
    WizardForm,
    keep_saved_secrets,
    secret_widget,
)
from clusters.k3s import etcd
from clusters.models import DatastoreEngine, DatastoreKind

SECRET_FIELDS = ("rds_password", "external_dsn")

# The page's one choice → (what the panel does, which engine). "rds"/"external" keep their
# values from before PostgreSQL; a later kind (embedded etcd) is one more entry here.
RDS_PG, EXTERNAL_PG = "rds_postgresql", "external_postgresql"
DATASTORES: dict[str, tuple[str, str]] = {
    DatastoreKind.RDS: (DatastoreKind.RDS, DatastoreEngine.MYSQL),
    RDS_PG: (DatastoreKind.RDS, DatastoreEngine.POSTGRESQL),
    DatastoreKind.EXTERNAL: (DatastoreKind.EXTERNAL, DatastoreEngine.MYSQL),
    EXTERNAL_PG: (DatastoreKind.EXTERNAL, DatastoreEngine.POSTGRESQL),
    # The engine is unused for etcd (the cluster keeps the field's default).
    DatastoreKind.ETCD: (DatastoreKind.ETCD, DatastoreEngine.MYSQL),
}
DATASTORE_CHOICES = (
    (DatastoreKind.RDS, _("Create an RDS MySQL instance")),
    (RDS_PG, _("Create an RDS PostgreSQL instance")),
    (DatastoreKind.EXTERNAL, _("Bring your own MySQL")),
    (EXTERNAL_PG, _("Bring your own PostgreSQL")),
    (DatastoreKind.ETCD, _("Embedded etcd on the servers (no RDS)")),
)
ENGINE_LABELS: dict[str, str] = {DatastoreEngine.MYSQL: "MySQL",
                                 DatastoreEngine.POSTGRESQL: "PostgreSQL"}
DEFAULT_VERSIONS: dict[str, str] = {DatastoreEngine.MYSQL: RDS_DEFAULT_VERSION,
                                    DatastoreEngine.POSTGRESQL: RDS_PG_DEFAULT_VERSION}
VERSIONS: dict[str, list[str]] = {DatastoreEngine.MYSQL: [v for v, _label in RDS_VERSIONS],
                                  DatastoreEngine.POSTGRESQL: [v for v, _l in RDS_PG_VERSIONS]}


CRON_FIELDS = (_("minute"), _("hour"), _("day of month"), _("month"), _("day of week"))


def datastore_of(choice: str | None) -> tuple[str, str]:
    """(DatastoreKind, DatastoreEngine) of the page's choice (RDS MySQL when unknown)."""
    return DATASTORES.get(choice or "", DATASTORES[DatastoreKind.RDS])


def datastore_choice(kind: str, engine: str) -> str:
    """The page's choice for a cluster's (DatastoreKind, DatastoreEngine): datastore_of's
    inverse, so a cluster's spec names the choice it was made from."""
    return next((choice for choice, pair in DATASTORES.items() if pair == (kind, engine)), kind)


def is_etcd(choice: str | None) -> bool:
    """The page's choice is K3s's embedded etcd (nothing to ask RDS about)."""
    return datastore_of(choice)[0] == DatastoreKind.ETCD


def version_for(choice: str | None, version: str | None) -> str:
    """The RDS version to ask about: the one picked when it is the engine's, else its
    default (the picker was on the other engine)."""
    engine = datastore_of(choice)[1]
    return version if version in VERSIONS[engine] else DEFAULT_VERSIONS[engine]


class DatastoreStepForm(WizardForm):
    """The datastore: an RDS instance of a class the zone sells today, or your own MySQL.

    `rds` is what RDS said it sells in the cluster's zone for the chosen version (None with
    `rds_error` when it could not be asked); the class list and the storage range come
    from it, not from a list in the panel.
    """

    kind = forms.ChoiceField(label=_("Datastore"), choices=DATASTORE_CHOICES,
                             initial=DatastoreKind.RDS,
                             widget=forms.RadioSelect(attrs={"data-refresh": "refresh"}))
    rds_engine_version = forms.ChoiceField(
        label=_("Engine version"), choices=RDS_VERSIONS + RDS_PG_VERSIONS,
        initial=RDS_DEFAULT_VERSION,
        required=False, widget=forms.Select(attrs={"data-refresh": "refresh"}))
    rds_instance_class = forms.ChoiceField(
        label=_("Instance class"), required=False,
        help_text=_("The classes RDS sells in this zone for this version (High-availability "
                    "edition, ESSD), with their storage range."),
        error_messages={"invalid_choice": _(
            "RDS does not sell %(value)s in this zone for this engine version; pick one "
            "from the list.")})
    rds_storage_gb = forms.IntegerField(label=_("Storage (GB)"), initial=20, required=False,
                                        min_value=1)
    rds_password = forms.CharField(
        label=_("Database account password"), required=False, max_length=64, strip=False,
        widget=secret_widget(autocomplete="new-password"),
        help_text=_("Leave empty to have a strong one generated. RDS requires 8 to 32 "
                    "characters and three of: upper case, lower case, digits, !@#$%^&*()_+-="))
    datastore_tls = forms.BooleanField(
        label=_("Encrypt the connection (TLS, the RDS certificate verified)"), required=False,
        help_text=_("Turns SSL on for the instance and refuses unencrypted connections; K3s "
                    "and the panel verify RDS's certificate against the ApsaraDB CA "
                    "(PANEL_RDS_CA_BUNDLE). The instance restarts once while SSL is applied."))
    external_dsn = forms.CharField(
        label=_("Datastore DSN"), required=False, max_length=1000, strip=True,
        widget=SecretTextInput(attrs={"autocomplete": "off", "spellcheck": "false",
                                      "placeholder": "mysql://k3s:PASSWORD@tcp(host:3306)/k3s"}),
        help_text=_("As K3s reads it: mysql://user:password@tcp(host:port)/database, or "
                    "postgres://user:password@host:5432/database?sslmode=verify-full (the "
                    "user and password percent-encoded)"))
    etcd_snapshot_cron = forms.CharField(
        label=_("Snapshot schedule (cron)"), required=False, max_length=64,
        initial=etcd.DEFAULT_SNAPSHOT_CRON,
        help_text=_("Five fields: minute hour day-of-month month day-of-week, in the servers' "
                    "time. K3s's default, 0 */12 * * *, is 00:00 and 12:00."))
    etcd_snapshot_retention = forms.IntegerField(
        label=_("Snapshots kept per server"), required=False, min_value=1, max_value=1000,
        initial=etcd.DEFAULT_SNAPSHOT_RETENTION,
        help_text=_("K3s deletes the oldest scheduled snapshots beyond this count (default 5)."))
    etcd_single_server = forms.BooleanField(
        label=_("I understand that one etcd server is not highly available"), required=False,
        help_text=_("Embedded etcd needs 3 or 5 servers for HA (a majority must stay up). "
                    "Tick this only to run a single server on purpose."))

    def __init__(self, *args: Any, rds: wizard_checks.RdsChoices | None = None,
                 rds_error: str = "", saved: Mapping[str, str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rds, self.rds_error = rds, rds_error
        # The engine's own versions (the page reloads when the datastore choice changes).
        choice = (self.data.get(self.add_prefix("kind")) if self.is_bound
                  else self.initial.get("kind"))
        engine = datastore_of(choice)[1]
        cast(forms.ChoiceField, self.fields["rds_engine_version"]).choices = (
            RDS_PG_VERSIONS if engine == DatastoreEngine.POSTGRESQL else RDS_VERSIONS)
        self.fields["rds_engine_version"].initial = DEFAULT_VERSIONS[engine]
        if not self.is_bound and self.initial.get("rds_engine_version") not in VERSIONS[engine]:
            self.initial["rds_engine_version"] = DEFAULT_VERSIONS[engine]
        # On by default, where the panel has the CA to verify RDS against.
        self.fields["datastore_tls"].initial = datastore_tls.bundle_configured()
        saved = saved or {}
        keep_saved_secrets(self, SECRET_FIELDS, saved,
                           shown={"external_dsn": _redacted_dsn(saved.get("external_dsn", ""))})
        offered = rds.classes if rds is not None else []
        cast(forms.ChoiceField, self.fields["rds_instance_class"]).choices = [
            (c.instance_class, str(_("%(class)s · %(min)d to %(max)d GB") % {
                "class": c.instance_class, "min": c.storage_min, "max": c.storage_max}))
            for c in offered]
        if offered and not self.is_bound and not self.initial.get("rds_instance_class"):
            self.initial["rds_instance_class"] = offered[0].instance_class

    def clean_rds_password(self) -> str:
        password = self.cleaned_data.get("rds_password") or ""
        kind = datastore_of(self.data.get(self.add_prefix("kind")))[0]
        if password and kind == DatastoreKind.RDS:
            problem = credentials.rds_password_problem(password)
            if problem:
                raise ValidationError(_("RDS would reject this password: it %(problem)s.")
                                      % {"problem": problem})
        return password

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        kind, engine = datastore_of(data.get("kind"))
        if kind == DatastoreKind.RDS:
            if self.rds is None:
                self.add_error("rds_instance_class", _(
                    "The panel could not ask RDS which classes this zone sells: %(error)s")
                    % {"error": self.rds_error})
                return data
            for name in ("rds_engine_version", "rds_instance_class", "rds_storage_gb"):
                if data.get(name) in (None, "") and name not in self.errors:
                    self.add_error(name, _("This field is required."))
            self._clean_rds(data, engine)
            if engine != DatastoreEngine.MYSQL:
                # Verified TLS is set up for RDS MySQL only (the field is not shown).
                data["datastore_tls"] = False
            elif data.get("datastore_tls") and not datastore_tls.bundle_configured():
                self.add_error("datastore_tls", _(
                    "The panel has no ApsaraDB CA to verify RDS with: download it from the RDS "
                    "console and set PANEL_RDS_CA_BUNDLE to its ApsaraDB-CA-Chain.pem, or "
                    "leave TLS off."))
        elif kind == DatastoreKind.EXTERNAL:
            self._clean_external(data, engine)
        elif kind == DatastoreKind.ETCD:
            self._clean_etcd(data)
        return data

    def _clean_etcd(self, data: dict[str, Any]) -> None:
        """The schedule must be one K3s's cron parser takes: K3s ignores a bad one silently
        (no scheduled snapshot at all), so it is refused here (clusters.k3s.etcd)."""
        data["datastore_tls"] = False
        cron = " ".join((data.get("etcd_snapshot_cron") or "").split())
        if not cron:
            cron = etcd.DEFAULT_SNAPSHOT_CRON
        problem = etcd.cron_problem(cron)
        if problem is None:
            pass
        elif problem.kind == "fields":
            self.add_error("etcd_snapshot_cron", _(
                "A schedule has 5 fields (minute hour day-of-month month day-of-week); "
                "%(cron)s has %(count)s. Example: 0 */12 * * * (00:00 and 12:00).")
                % {"cron": cron, "count": problem.part})
        elif problem.kind == "descriptor":
            self.add_error("etcd_snapshot_cron", _(
                "%(part)s is not a schedule K3s knows: use @yearly, @monthly, @weekly, @daily, "
                "@hourly, @every with a duration such as @every 6h, or 5 fields.")
                % {"part": problem.part})
        elif problem.kind == "timezone":
            self.add_error("etcd_snapshot_cron", _(
                "In %(cron)s, the time zone %(zone)s is unknown or has no schedule after it: "
                "write TZ=<zone> followed by the schedule, e.g. TZ=Asia/Shanghai 0 3 * * *.")
                % {"cron": cron, "zone": problem.part or "-"})
        else:
            self.add_error("etcd_snapshot_cron", _(
                "In %(cron)s, %(part)s is not a valid %(field)s: use *, a number from %(low)d "
                "to %(high)d, a range a-b, a step */n or a list a,b.") % {
                    "cron": cron, "part": problem.part, "field": CRON_FIELDS[problem.field or 0],
                    "low": problem.low, "high": problem.high})
        data["etcd_snapshot_cron"] = cron
        if data.get("etcd_snapshot_retention") is None \
                and "etcd_snapshot_retention" not in self.errors:
            data["etcd_snapshot_retention"] = etcd.DEFAULT_SNAPSHOT_RETENTION

    def _clean_rds(self, data: dict[str, Any], engine: str) -> None:
        """The version, class and storage must be what RDS sells in the zone right now."""
        rds = self.rds
        assert rds is not None  # checked by clean()
        version = data.get("rds_engine_version")
        if version and version not in rds.versions and "rds_engine_version" not in self.errors:
            self.add_error("rds_engine_version", _(
                "RDS sells no %(engine)s %(version)s (High-availability, ESSD) in zone "
                "%(zone)s. It sells: %(versions)s.") % {
                    "engine": ENGINE_LABELS[engine], "version": version, "zone": rds.zone,
                    "versions": ", ".join(rds.versions) or "-"})
            return
        offer = rds.find(data.get("rds_instance_class") or "")
        storage = data.get("rds_storage_gb")
        if offer is None or storage is None or "rds_storage_gb" in self.errors:
            return
        problem = offer.storage_problem(storage)
        if problem == "range":
            self.add_error("rds_storage_gb", _(
                "%(class)s takes %(min)d to %(max)d GB of storage.") % {
                "class": offer.instance_class, "min": offer.storage_min,
                "max": offer.storage_max})
        elif problem == "step":
            self.add_error("rds_storage_gb", _(
                "Storage for %(class)s goes in steps of %(step)d GB from %(min)d GB.") % {
                "class": offer.instance_class, "step": offer.storage_step,
                "min": offer.storage_min})

    def _clean_external(self, data: dict[str, Any], engine: str) -> None:
        dsn = data.get("external_dsn") or ""
        label = ENGINE_LABELS[engine]
        if not dsn:
            self.add_error("external_dsn", _("Enter the DSN of your %(engine)s database.")
                           % {"engine": label})
            return
        try:
            endpoint = datastore_engines.ENGINES[engine].parse(dsn)
        except PermanentError as exc:
            self.add_error("external_dsn", exc.message)
            return
        try:
            version = wizard_checks.LOGIN_CHECKS[engine](endpoint)
        except wizard_checks.CheckFailed as exc:
            self.add_error("external_dsn", str(exc))
            return
        if version is None:
            self.warnings.append(str(_(
                "The panel could not reach %(address)s; the servers will check it again during "
                "preflight.") % {"address": endpoint.address}))
        else:
            self.warnings.append(str(_("Connected to %(engine)s %(version)s.") %
                                     {"engine": label, "version": version}))


def _redacted_dsn(dsn: str) -> str:
    """The saved DSN as the page may show it: its password part replaced by ***."""
    password = dsn_password(dsn) if dsn else None
    return dsn.replace(password, MASK) if password else (MASK if dsn else "")
