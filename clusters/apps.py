"""The one Django app of the panel; ready() wires the engine to the operations."""

from django.apps import AppConfig


class ClustersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "clusters"
    verbose_name = "K3s clusters"

    def ready(self) -> None:
        # Imported here, not at module level: Django must load the models before these
        # import them. Importing them also registers their Celery tasks (the engine's in
        # pipeline, the health checks in operations.health, the diagnostics on request in
        # operations.diagnostics) for worker and web alike.
        from clusters import operations  # noqa: PLC0415  the models must be loaded first
        from clusters.engine import pipeline  # noqa: PLC0415  the models must be loaded first
        from clusters.operations import health  # noqa: PLC0415, F401  registers its tasks

        pipeline.run_finished.connect(operations.on_run_finished,
                                      dispatch_uid="cluster-status-after-run")

        # Every failed sign-in (the login page and the admin's) goes to the audit trail. axes
        # is listed before this app, so its receiver has already marked a lockout.
        from django.contrib.auth.signals import user_login_failed  # noqa: PLC0415

        from clusters.web import login_guard  # noqa: PLC0415  the models must be loaded first

        user_login_failed.connect(login_guard.on_login_failed, dispatch_uid="audit-login-failed")
