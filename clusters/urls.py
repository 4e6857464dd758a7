from django.urls import path

from clusters import views

app_name = "clusters"

urlpatterns = [
    path("clusters/<uuid:code>/runs/<int:run_id>.json", views.run_status, name="run-status"),
    path(
        "clusters/<uuid:code>/runs/<int:run_id>/steps/<int:step_id>/log.json",
        views.step_log, name="step-log",
    ),
]
