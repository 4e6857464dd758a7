"""/api/v1/: every endpoint of the REST API, and its schema and docs (served by the panel)."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from clusters.api import views

app_name = "api"

CLUSTER = "clusters/<uuid:code>/"
RUN = CLUSTER + "runs/<int:run_id>/"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(api_version="1"), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
    path("me/", views.MeView.as_view(), name="me"),
    path("cloud-accounts/", views.CloudAccountList.as_view(), name="cloud-accounts"),
    path("cloud-accounts/<int:account_id>/", views.CloudAccountDetail.as_view(),
         name="cloud-account"),
    path("cloud-accounts/<int:account_id>/regions/", views.RegionList.as_view(),
         name="regions"),
    path("cloud-accounts/<int:account_id>/network/", views.NetworkChoices.as_view(),
         name="network-choices"),
    path("cloud-accounts/<int:account_id>/rds/", views.RdsChoices.as_view(),
         name="rds-choices"),
    path("k3s-versions/", views.K3sVersionCheck.as_view(), name="k3s-versions"),
    path("clusters/", views.ClusterList.as_view(), name="clusters"),
    path(CLUSTER, views.ClusterDetail.as_view(), name="cluster"),
    path(CLUSTER + "health/", views.ClusterHealth.as_view(), name="health"),
    path(CLUSTER + "health/check/", views.ClusterHealthCheck.as_view(), name="health-check"),
    path(CLUSTER + "kubeconfig/", views.KubeconfigDownload.as_view(), name="kubeconfig"),
    path(CLUSTER + "kubeconfig/renew/", views.KubeconfigRenew.as_view(),
         name="kubeconfig-renew"),
    path(CLUSTER + "kube-credentials/", views.KubeCredentialList.as_view(),
         name="kube-credentials"),
    path(CLUSTER + "kube-credentials/<int:credential_id>/", views.KubeCredentialDetail.as_view(),
         name="kube-credential"),
    path(CLUSTER + "kube-credentials/<int:credential_id>/revoke/",
         views.KubeCredentialRevoke.as_view(), name="kube-credential-revoke"),
    path(CLUSTER + "destroy/", views.ClusterDestroy.as_view(), name="destroy"),
    path(CLUSTER + "ssh-key/", views.GeneratedKeyDownload.as_view(), name="generated-ssh-key"),
    path(CLUSTER + "upgrade/", views.ClusterUpgrade.as_view(), name="upgrade"),
    path(CLUSTER + "nodes/", views.NodeList.as_view(), name="nodes"),
    path(CLUSTER + "nodes/instances/", views.NodeInstances.as_view(), name="node-instances"),
    path(CLUSTER + "nodes/<int:node_id>/", views.NodeDetail.as_view(), name="node"),
    path(CLUSTER + "nodes/<int:node_id>/remove/", views.NodeRemove.as_view(),
         name="node-remove"),
    path(CLUSTER + "runs/", views.RunList.as_view(), name="runs"),
    path(RUN, views.RunDetail.as_view(), name="run"),
    path(RUN + "retry/", views.RunRetry.as_view(), name="run-retry"),
    path(RUN + "cancel/", views.RunCancel.as_view(), name="run-cancel"),
    path(RUN + "steps/<int:step_id>/log/", views.StepLog.as_view(), name="step-log"),
    path("audit-events/", views.AuditEventList.as_view(), name="audit-events"),
    re_path(r"^(?P<rest>.*)$", views.NoSuchEndpoint.as_view(), name="no-such-endpoint"),
]
