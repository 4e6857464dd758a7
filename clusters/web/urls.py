from django.urls import path

from clusters.web import log_views, node_views, upgrade_views, views, wizard_views

app_name = "clusters"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("cloud-accounts/", views.cloud_accounts, name="cloud-accounts"),
    path("clusters/new/", wizard_views.wizard_start, name="wizard"),
    path("clusters/new/<slug:step>/", wizard_views.wizard_step, name="wizard-step"),
    path("clusters/<uuid:code>/", views.cluster_detail, name="cluster"),
    path("clusters/<uuid:code>/live/", views.cluster_live, name="cluster-live"),
    path("clusters/<uuid:code>/kubeconfig/", views.kubeconfig_download, name="kubeconfig"),
    path("clusters/<uuid:code>/kubeconfig/personal/", views.kubeconfig_issue,
         name="kubeconfig-issue"),
    path("clusters/<uuid:code>/kubeconfig/credentials/<int:credential_id>/revoke/",
         views.kubeconfig_revoke, name="kubeconfig-revoke"),
    path("clusters/<uuid:code>/destroy/", views.cluster_destroy, name="cluster-destroy"),
    path("clusters/<uuid:code>/nodes/add/", node_views.node_add, name="node-add"),
    path("clusters/<uuid:code>/nodes/<int:node_id>/remove/", node_views.node_remove,
         name="node-remove"),
    path("clusters/<uuid:code>/nodes/<int:node_id>/host-key/", node_views.node_host_key,
         name="node-host-key"),
    path("clusters/<uuid:code>/upgrade/", upgrade_views.upgrade_cluster,
         name="cluster-upgrade"),
    path("clusters/<uuid:code>/kubeconfig/renew/", upgrade_views.renew_kubeconfig,
         name="kubeconfig-renew"),
    path("clusters/<uuid:code>/allowlist/", upgrade_views.change_allowlist,
         name="cluster-allowlist"),
    path("clusters/<uuid:code>/runs/<int:run_id>/retry/", views.run_retry, name="run-retry"),
    path("clusters/<uuid:code>/runs/<int:run_id>/cancel/", views.run_cancel, name="run-cancel"),
    path("clusters/<uuid:code>/runs/<int:run_id>/diagnostics/", views.run_diagnostics,
         name="run-diagnostics"),
    path("clusters/<uuid:code>/runs/<int:run_id>.json", views.run_status, name="run-status"),
    path("clusters/<uuid:code>/runs/<int:run_id>/timeline/", views.run_timeline,
         name="run-timeline"),
    path("clusters/<uuid:code>/runs/<int:run_id>/steps/<int:step_id>/log/",
         views.step_log_lines, name="step-log-lines"),
    path("clusters/<uuid:code>/runs/<int:run_id>/steps/<int:step_id>/log/search/",
         log_views.step_log_search, name="step-log-search"),
    path("clusters/<uuid:code>/runs/<int:run_id>/steps/<int:step_id>/log.txt",
         log_views.step_log_download, name="step-log-download"),
    path(
        "clusters/<uuid:code>/runs/<int:run_id>/steps/<int:step_id>/log.json",
        views.step_log, name="step-log",
    ),
]
