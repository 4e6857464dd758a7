"""A step log's search and download (the read model is clusters/web/step_log.py).

Both are the owner's only: the run is looked up through queries.owned_run, so another
user's step does not exist for them (404), like every other URL of a cluster.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from clusters.interface import queries
from clusters.web import step_log


@login_required
@require_GET
@never_cache
def step_log_search(request: HttpRequest, code: str, run_id: int, step_id: int) -> HttpResponse:
    """The matching lines of one step's stored log as an htmx fragment (the pane's search)."""
    run = queries.owned_run(request.user, code, run_id)
    context = step_log.search(run, step_id, request.GET.get("q", ""))
    return render(request, "clusters/_log_search.html", context)


@login_required
@require_GET
@never_cache
def step_log_download(request: HttpRequest, code: str, run_id: int, step_id: int
                      ) -> StreamingHttpResponse:
    """The step's stored log as a text file, streamed a few thousand lines at a time."""
    run = queries.owned_run(request.user, code, run_id)
    step = step_log.owned_step(run, step_id)
    response = StreamingHttpResponse(step_log.download_lines(run, step),
                                     content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = \
        f'attachment; filename="{step_log.download_name(run, step)}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
