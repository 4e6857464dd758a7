"""Create the `admin` superuser if there is none (password in var/admin-password.txt)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from clusters.management.bootstrap import ensure_admin


class Command(BaseCommand):
    help = "Create the admin superuser when none exists; print how to log in."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(self.style.SUCCESS(ensure_admin(Path(settings.VAR_DIR))))
