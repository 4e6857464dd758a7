"""The operator's dashboard: every cluster, run and resource, with secrets never shown.

Why the admin changes almost nothing by hand: it writes rows without the operations' rules,
so a field edited here is a run the owner never asked for. An owner reassigned, a node's IP
repointed, a host key blanked, the install URL changed: each sends the cluster's tokens and
SSH passwords to someone's host, or runs someone's script as root on every node. So:

* every field that decides who owns, reaches or runs what is read-only for everyone, and
  each secret is shown only as "set" / "not set", even to superusers. What an owner must be
  able to change has an audited page of its own (a node's new host key: the "Host key"
  button, clusters/operations/host_keys.py);
* staff who are not superusers view and use the actions (retry, cancel, check health),
  which go through clusters.operations and write an AuditEvent naming them;
* superusers may also change the few fields listed in `superuser_editable` (names), saved
  alone (`update_fields`, so a worker's newer status is not written back) and recorded in
  Django's LogEntry and in our AuditEvent. They may delete a cluster for which nothing was
  ever started (a run, a node or a ledger row is history nobody deletes here, and the
  database refuses a cluster with ledger rows: CloudResource.cluster is PROTECT), or an
  unused cloud account;
* nobody adds rows here, and nobody deletes nodes, runs, steps, log lines or ledger rows.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db.models import Count, Model, Q, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from clusters import operations
from clusters.interface import audit
from clusters.models import (
    AuditAction,
    AuditEvent,
    CloudAccount,
    CloudResource,
    Cluster,
    KubeCredential,
    LogLine,
    Node,
    NodeRole,
    Run,
    RunQuerySet,
    Step,
)

RECENT = 200


def cluster_of(obj: Model) -> Cluster | None:
    """The cluster an admin row belongs to, for the audit trail (an account has none)."""
    if isinstance(obj, Cluster):
        return obj
    if isinstance(obj, (Node, CloudResource, Run)):
        return obj.cluster
    if isinstance(obj, Step):
        return obj.run.cluster
    if isinstance(obj, LogLine):
        return obj.step.run.cluster
    return None


class WholeRowForm(ModelForm):
    """Checks the model's unique constraints on the whole row. Why: Django leaves out each
    constraint naming a field the form lacks, so a rename clashing with another cluster of
    the same (read-only) owner would reach the database as an IntegrityError."""

    def validate_unique(self) -> None:
        try:
            self.instance.validate_unique()
            self.instance.validate_constraints()
        except ValidationError as exc:
            self.add_error(None, exc.messages)  # the fields named may not be on the form


class GuardedAdmin(admin.ModelAdmin):
    """Read-only but for `superuser_editable`; secrets shown as set / not set; changes and
    deletes audited. Each admin below says which of its fields are secret and which a
    superuser may edit; every other field of the model is read-only."""

    form = WholeRowForm
    secret_fields: tuple[str, ...] = ()
    superuser_editable: tuple[str, ...] = ()
    superuser_may_delete = False
    shown_readonly: tuple[str, ...] = ()  # display methods shown after the fields

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return self.secret_fields

    def _model_fields(self) -> list[str]:
        opts = self.model._meta
        return [field.name for field in [*opts.fields, *opts.many_to_many]
                if not field.primary_key and field.name not in self.secret_fields]

    def shown_fields(self) -> list[str]:
        """The change form's fields: the model's, the secrets' state, the display methods."""
        fields = self._model_fields()
        if self.secret_fields:
            fields.append("stored_secrets")
        return [*fields, *self.shown_readonly]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:  # stub: field groups
        return self.shown_fields()

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        editable = self.superuser_editable if request.user.is_superuser else ()
        return [name for name in self.shown_fields() if name not in editable]

    @admin.display(description=_("secrets"))
    def stored_secrets(self, obj: Model) -> str:
        """Whether each secret is stored, never its value (nor its length)."""
        rows = ((self.model._meta.get_field(name).verbose_name,
                 _("set") if getattr(obj, name) else _("not set"))
                for name in self.secret_fields)
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}: {}</li>", rows))

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Only superusers edit, and only `superuser_editable`; staff see the form read-only
        (a POST of it is refused before anything is saved)."""
        return (bool(self.superuser_editable) and request.user.is_superuser
                and super().has_change_permission(request, obj))

    def has_operate_permission(self, request: HttpRequest) -> bool:
        """May use this admin's actions: Django's "change" permission of the model, staff or
        superuser (the actions are the operations' own, with their rules and audit)."""
        return super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (self.superuser_may_delete and request.user.is_superuser
                and super().has_delete_permission(request, obj))

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        changed = [name for name in form.changed_data if name in self.superuser_editable]
        if not changed:
            return
        # Only what was edited: a full save would write back what a worker changed since the
        # form was loaded (status, kubeconfig, tokens).
        obj.save(update_fields=changed)
        audit.record(request, AuditAction.ADMIN_CHANGE, cluster_of(obj),
                     model=self.model._meta.model_name, object=obj.pk, fields=changed)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self._audit_delete(request, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            self.delete_model(request, obj)

    def _audit_delete(self, request: HttpRequest, obj: Any) -> None:
        cluster = cluster_of(obj)
        audit.record(request, AuditAction.ADMIN_DELETE, None if cluster is obj else cluster,
                     model=self.model._meta.model_name, object=obj.pk, name=str(obj)[:100])


class ReadOnlyInline(admin.TabularInline):
    """Inlines show history; they are never edited by hand."""

    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CloudAccount)
class CloudAccountAdmin(GuardedAdmin):
    list_display = ("name", "credential_kind", "access_key_id", "role_arn", "default_region",
                    "owner", "created_at")
    list_select_related = ("owner",)
    search_fields = ("name", "access_key_id", "role_arn", "owner__username")
    list_filter = ("default_region", "credential_kind")
    secret_fields = ("access_key_secret", "security_token")
    superuser_editable = ("name",)
    superuser_may_delete = True  # only an unused one: clusters PROTECT their account


class NodeInline(ReadOnlyInline):
    model = Node
    fields = ("role", "name", "private_ip", "public_ip", "ssh_user", "ecs_instance_id", "status",
              "k3s_version")
    readonly_fields = fields


class RunInline(ReadOnlyInline):
    model = Run
    fields = ("kind", "status", "created_at", "finished_at")
    readonly_fields = fields
    ordering = ("-created_at",)


class ResourceInline(ReadOnlyInline):
    model = CloudResource
    fields = ("kind", "provider_id", "state", "region", "created_at", "deleted_at")
    readonly_fields = fields


# Every EncryptedTextField of the model (tests/ui/test_admin_guard.py checks it): the generated
# SSH key's only way out is the owner's audited download (web/views.py), never this page.
CLUSTER_SECRETS = ("k3s_token", "k3s_agent_token", "kubeconfig", "datastore_password",
                   "external_dsn", "generated_ssh_key")
NODE_SECRETS = ("ssh_private_key", "ssh_password", "ssh_key_passphrase")


@admin.register(Cluster)
class ClusterAdmin(GuardedAdmin):
    list_display = ("name", "status", "health", "region", "k3s_version", "servers", "agents",
                    "slb_address", "owner", "created_at")
    list_filter = ("status", "health", "region", "datastore_kind", "datastore_engine",
                   "install_source")
    search_fields = ("name", "code", "slb_address", "vpc_id", "owner__username",
                     "nodes__private_ip")
    list_select_related = ("owner",)
    secret_fields = CLUSTER_SECRETS
    superuser_editable = ("name",)
    superuser_may_delete = True
    inlines = (NodeInline, ResourceInline, RunInline)
    actions = ("refresh_health",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Cluster]:
        return super().get_queryset(request).annotate(
            server_count=Count("nodes", filter=Q(nodes__role=NodeRole.SERVER), distinct=True),
            agent_count=Count("nodes", filter=Q(nodes__role=NodeRole.AGENT), distinct=True),
        )

    @admin.display(description=_("servers"), ordering="server_count")
    def servers(self, obj: Any) -> int:
        return obj.server_count

    @admin.display(description=_("agents"), ordering="agent_count")
    def agents(self, obj: Any) -> int:
        return obj.agent_count

    @admin.action(description=_("Refresh health now"), permissions=("operate",))
    def refresh_health(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> None:
        queued = 0
        for cluster in queryset:
            if operations.request_health_check(cluster):
                audit.record(request, AuditAction.HEALTH_CHECK, cluster)
                queued += 1
        self.message_user(request, _("%(n)d health check(s) queued; a cluster whose check is "
                                     "already queued or running is not queued again.")
                          % {"n": queued}, messages.SUCCESS)


@admin.register(Node)
class NodeAdmin(GuardedAdmin):
    """Nothing of a node is edited here: its address, user, port and keys decide which host
    gets the cluster's secrets. A changed host key is accepted by the owner on the cluster
    page (the "Host key" button), audited."""

    list_display = ("__str__", "cluster", "role", "private_ip", "ecs_instance_id", "status")
    list_filter = ("role", "status")
    search_fields = ("name", "private_ip", "public_ip", "ecs_instance_id", "cluster__name")
    list_select_related = ("cluster",)
    secret_fields = NODE_SECRETS


@admin.register(CloudResource)
class CloudResourceAdmin(GuardedAdmin):
    """The ledger: what destroy deletes and what the bill says. Never edited, never deleted."""

    list_display = ("kind", "provider_id", "state", "cluster", "region", "created_at",
                    "deleted_at")
    list_filter = ("kind", "state", "region")
    search_fields = ("provider_id", "client_token", "cluster__name")
    list_select_related = ("cluster",)


class StepInline(ReadOnlyInline):
    model = Step
    fields = ("position", "key", "title", "status", "attempts", "wait_reason", "error",
              "started_at", "finished_at")
    readonly_fields = fields
    ordering = ("position",)


@admin.register(Run)
class RunAdmin(GuardedAdmin):
    list_display = ("__str__", "cluster", "kind", "status", "created_by", "created_at",
                    "finished_at")
    list_filter = ("kind", "status")
    search_fields = ("cluster__name", "cluster__code")
    list_select_related = ("cluster", "created_by")
    inlines = (StepInline,)
    actions = ("retry_runs", "cancel_runs")

    @admin.action(description=_("Retry from the failed step"), permissions=("operate",))
    def retry_runs(self, request: HttpRequest, queryset: RunQuerySet) -> None:
        """The same rule and the same audit trail as the Retry button on the cluster page."""
        retried = 0
        for run in queryset.stopped().select_related("cluster"):
            try:
                operations.retry(run)
            except operations.OperationRefused as exc:
                audit.record(request, AuditAction.RUN_RETRY_REFUSED, run.cluster, run=run.pk,
                             reason=str(exc))
                self.message_user(request, f"{run}: {exc}", messages.WARNING)
                continue
            audit.record(request, AuditAction.RUN_RETRY, run.cluster, run=run.pk)
            retried += 1
        self.message_user(request, _("%(n)d run(s) resumed.") % {"n": retried}, messages.SUCCESS)

    @admin.action(description=_("Cancel between steps"), permissions=("operate",))
    def cancel_runs(self, request: HttpRequest, queryset: RunQuerySet) -> None:
        """Like the Cancel button: only an active run, audited."""
        for run in queryset.active().select_related("cluster"):
            operations.cancel(run)
            audit.record(request, AuditAction.RUN_CANCEL, run.cluster, run=run.pk)
        self.message_user(request, _("Cancellation requested."), messages.SUCCESS)


@admin.register(Step)
class StepAdmin(GuardedAdmin):
    list_display = ("key", "run", "status", "attempts", "wait_reason", "started_at",
                    "finished_at")
    list_filter = ("status",)
    search_fields = ("key", "run__cluster__name")
    list_select_related = ("run", "run__cluster")
    shown_readonly = ("recent_log",)

    @admin.display(description=_("last log lines"))
    def recent_log(self, obj: Step) -> str:
        lines = reversed(obj.log_lines.order_by("-seq").values_list("text", flat=True)[:RECENT])
        return format_html("<pre>{}</pre>", "\n".join(lines))


@admin.register(LogLine)
class LogLineAdmin(GuardedAdmin):
    """What a step wrote (already redacted): evidence, so never written or deleted here."""

    list_display = ("step", "seq", "time", "stream", "text")
    list_filter = ("stream",)
    list_select_related = ("step", "step__run")
    show_full_result_count = False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """The audit trail is read-only, even for superusers: it is evidence."""

    list_display = ("time", "username", "action", "cluster_name", "ip_address")
    list_filter = ("action",)
    search_fields = ("username", "cluster_name", "ip_address")
    date_hierarchy = "time"
    readonly_fields = ("time", "user", "username", "action", "cluster", "cluster_name",
                       "ip_address", "user_agent", "details")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(KubeCredential)
class KubeCredentialAdmin(admin.ModelAdmin):
    """Personal kubeconfigs issued, for operators to look at; read-only for everyone. Only
    the cluster's owner revokes (on the cluster page, through clusters.operations), and a
    row is what Revoke needs to find the ServiceAccount again, so nobody edits or deletes it."""

    list_display = ("created_at", "cluster", "username", "name", "status", "expires_at")
    list_filter = ("status",)
    list_select_related = ("cluster",)
    search_fields = ("username", "name", "token_id")
    readonly_fields = ("cluster", "issued_to", "username", "namespace", "name", "role",
                       "service_account_uid", "token_id", "status", "created_at",
                       "expires_at", "revoked_at", "revoked_by", "error")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- users and groups: a staff member who may edit users could make themselves a superuser --


class GuardedUserAdmin(UserAdmin):
    """Only superusers add, change or delete users (and so grant staff, superuser or
    permissions, or set a password); other staff see the list."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)


class GuardedGroupAdmin(GroupAdmin):
    """Only superusers change groups: a group's permissions are its members'."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser and super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)


User = get_user_model()
for model, model_admin in ((User, GuardedUserAdmin), (Group, GuardedGroupAdmin)):
    if admin.site.is_registered(model):
        admin.site.unregister(model)
    admin.site.register(model, model_admin)
