"""HTTP views: thin wrappers around clusters.queries and clusters services."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from clusters import queries


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for load balancers and compose: the process answers and the DB is reachable."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok", content_type="text/plain")


@login_required
@require_GET
def run_status(request: HttpRequest, code: str, run_id: int) -> JsonResponse:
    run = queries.owned_run(request.user, code, run_id)
    return JsonResponse(queries.run_snapshot(run))


@login_required
@require_GET
def step_log(request: HttpRequest, code: str, run_id: int, step_id: int) -> JsonResponse:
    run = queries.owned_run(request.user, code, run_id)
    try:
        after = max(0, int(request.GET.get("after", "0")))
    except ValueError:
        after = 0
    return JsonResponse(queries.log_page(run, step_id, after=after))
