from django.apps import AppConfig


class ClustersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "clusters"
    verbose_name = "K3s clusters"

    def ready(self) -> None:
        from clusters import operations, pipeline

        pipeline.run_finished.connect(operations.on_run_finished,
                                      dispatch_uid="cluster-status-after-run")
