"""Give a user a cloud account from the command line; the secret is read from stdin.

Why: operators (and the offline sandbox) seed accounts without the browser, and a secret on a
command line would be visible in `ps` and shell history.
"""

from __future__ import annotations

import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from clusters.models import CloudAccount


class Command(BaseCommand):
    help = "Create or update a cloud account; the AccessKey secret is read from stdin."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--owner", required=True, help="username that owns the account")
        parser.add_argument("--name", required=True)
        parser.add_argument("--access-key-id", required=True)
        parser.add_argument("--region", default="cn-hangzhou")

    def handle(self, *args: Any, owner: str, name: str, access_key_id: str, region: str,
               **options: Any) -> None:
        secret = sys.stdin.readline().strip()
        if not secret:
            raise CommandError("Pipe the AccessKey secret on stdin (it is never an argument).")
        user = get_user_model().objects.filter(username=owner).first()
        if user is None:
            raise CommandError(f"There is no user called {owner!r}.")
        account, created = CloudAccount.objects.update_or_create(
            owner=user, name=name,
            defaults={"access_key_id": access_key_id, "access_key_secret": secret,
                      "default_region": region},
        )
        verb = "Created" if created else "Updated"
        self.stdout.write(self.style.SUCCESS(f"{verb} cloud account {account.name} "
                                             f"({access_key_id}) for {owner}."))
