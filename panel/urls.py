"""URL routes: the app, accounts, admin, i18n and the health probe."""

from django.contrib import admin
from django.urls import include, path

from clusters.web import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("clusters.web.urls")),
]
