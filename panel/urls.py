"""URL routes: the app, accounts, admin, i18n, the REST API and the health probe."""

from django.contrib import admin
from django.urls import include, path

from clusters.web import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", include("clusters.api.urls")),
    path("", include("clusters.web.urls")),
]
