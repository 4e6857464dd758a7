"""The request type of views behind login_required: its user is signed in.

Why a type: Django types `request.user` as `User | AnonymousUser`, and a lookup such as
`CloudAccount.objects.filter(owner=request.user)` is only right for a signed-in user. Views
that the login middleware or `login_required` guard say so with this annotation (the shape
django-stubs documents for this case); nothing changes at run time.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest


class SignedInRequest(HttpRequest):
    user: User
