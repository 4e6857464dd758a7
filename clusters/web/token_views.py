"""The user's API tokens: create one (its value shown on this answer only), see them, revoke.

Thin: clusters.interface.tokens issues and revokes, clusters.interface.forms.ApiTokenForm
checks, every creation and revocation is audited."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from clusters.interface import audit, tokens
from clusters.interface.forms import ApiTokenForm
from clusters.models import ApiToken, AuditAction
from clusters.web.signed_in import SignedInRequest


@login_required
@never_cache
def api_tokens(request: SignedInRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST if request.method == "POST" else None, owner=request.user)
    issued = None
    if request.method == "POST" and form.is_valid():
        issued = tokens.issue(request.user, form.cleaned_data["name"],
                              form.cleaned_data["scope"], form.expires_at())
        audit.record(request, AuditAction.API_TOKEN_CREATE, None, token=issued.token.name,
                     scope=issued.token.scope, expires_at=issued.token.expires_at.isoformat())
        form = ApiTokenForm(owner=request.user)
    return render(request, "clusters/api_tokens.html", {
        "form": form, "issued": issued,
        "tokens": ApiToken.objects.filter(user=request.user).order_by("-created_at", "-pk"),
    })


@login_required
@require_POST
def api_token_revoke(request: SignedInRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=token_id, user=request.user)
    if tokens.revoke(token):
        audit.record(request, AuditAction.API_TOKEN_REVOKE, None, token=token.name)
        messages.success(request, _("Token %(name)s revoked: it no longer works.")
                         % {"name": token.name})
    return redirect("clusters:api-tokens")
