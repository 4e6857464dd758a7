"""The operator's dashboard: every cluster, run and resource, with secrets never shown."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from clusters import operations
from clusters.models import (
    AuditAction,
    AuditEvent,
    CloudAccount,
    CloudResource,
    Cluster,
    LogLine,
    Node,
    NodeRole,
    Run,
    RunQuerySet,
    Step,
)
from clusters.operations import health
from clusters.web import audit

RECENT = 200
SECRET_FIELDS = (
    "access_key_secret", "security_token", "k3s_token", "k3s_agent_token", "kubeconfig",
    "datastore_password", "external_dsn",
    "ssh_private_key", "ssh_password", "ssh_key_passphrase",
)


class ReadOnlyInline(admin.TabularInline):
    """Inlines show history; they are never edited by hand."""

    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(CloudAccount)
class CloudAccountAdmin(admin.ModelAdmin):
    list_display = ("name", "credential_kind", "access_key_id", "role_arn", "default_region",
                    "owner", "created_at")
    list_select_related = ("owner",)
    search_fields = ("name", "access_key_id", "role_arn", "owner__username")
    list_filter = ("default_region", "credential_kind")
    exclude = ("access_key_secret", "security_token")
    readonly_fields = ("created_at",)


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


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ("name", "status", "health", "region", "k3s_version", "servers", "agents",
                    "slb_address", "owner", "created_at")
    list_filter = ("status", "health", "region", "datastore_kind", "install_source")
    search_fields = ("name", "code", "slb_address", "vpc_id", "owner__username",
                     "nodes__private_ip")
    list_select_related = ("owner",)
    exclude = SECRET_FIELDS
    readonly_fields = ("code", "status", "health", "health_reasons", "health_checked_at",
                       "slb_address", "kubeconfig_expires_at", "created_at", "updated_at")
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

    @admin.action(description=_("Refresh health now"))
    def refresh_health(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> None:
        for cluster_id in queryset.values_list("pk", flat=True):
            health.refresh_health.delay(cluster_id)
        self.message_user(request, _("Health checks queued."), messages.SUCCESS)


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ("__str__", "cluster", "role", "private_ip", "ecs_instance_id", "status")
    list_filter = ("role", "status")
    search_fields = ("name", "private_ip", "public_ip", "ecs_instance_id", "cluster__name")
    list_select_related = ("cluster",)
    exclude = ("ssh_private_key", "ssh_password", "ssh_key_passphrase")


@admin.register(CloudResource)
class CloudResourceAdmin(admin.ModelAdmin):
    list_display = ("kind", "provider_id", "state", "cluster", "region", "created_at",
                    "deleted_at")
    list_filter = ("kind", "state", "region")
    search_fields = ("provider_id", "client_token", "cluster__name")
    list_select_related = ("cluster",)
    readonly_fields = ("client_token", "token_generation", "created_at", "updated_at")


class StepInline(ReadOnlyInline):
    model = Step
    fields = ("position", "key", "title", "status", "attempts", "wait_reason", "error",
              "started_at", "finished_at")
    readonly_fields = fields
    ordering = ("position",)


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("__str__", "cluster", "kind", "status", "created_by", "created_at",
                    "finished_at")
    list_filter = ("kind", "status")
    search_fields = ("cluster__name", "cluster__code")
    list_select_related = ("cluster", "created_by")
    readonly_fields = ("cluster", "kind", "status", "params", "created_by", "cancel_requested",
                       "created_at", "started_at", "finished_at")
    inlines = (StepInline,)
    actions = ("retry_runs", "cancel_runs")

    @admin.action(description=_("Retry from the failed step"))
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

    @admin.action(description=_("Cancel between steps"))
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        for run in queryset:
            operations.cancel(run)
        self.message_user(request, _("Cancellation requested."), messages.SUCCESS)


@admin.register(Step)
class StepAdmin(admin.ModelAdmin):
    list_display = ("key", "run", "status", "attempts", "wait_reason", "started_at",
                    "finished_at")
    list_filter = ("status",)
    search_fields = ("key", "run__cluster__name")
    list_select_related = ("run", "run__cluster")
    readonly_fields = ("run", "key", "title", "handler", "depends_on", "args", "status",
                       "attempts", "transient_failures", "not_before", "lease_until",
                       "wait_reason", "error", "result", "started_at", "finished_at",
                       "recent_log")

    @admin.display(description=_("last log lines"))
    def recent_log(self, obj: Step) -> str:
        lines = reversed(obj.log_lines.order_by("-seq").values_list("text", flat=True)[:RECENT])
        return format_html("<pre>{}</pre>", "\n".join(lines))


@admin.register(LogLine)
class LogLineAdmin(admin.ModelAdmin):
    list_display = ("step", "seq", "time", "stream", "text")
    list_filter = ("stream",)
    list_select_related = ("step", "step__run")
    readonly_fields = ("step", "seq", "time", "stream", "text")
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
