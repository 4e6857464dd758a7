"""First-start chores shared by `manage.py runpanel` and the offline sandbox."""

from __future__ import annotations

import secrets
from pathlib import Path

from django.contrib.auth import get_user_model

ADMIN_USERNAME = "admin"


def ensure_admin(var_dir: Path) -> str:
    """Create the `admin` superuser when none exists; say how to log in either way.

    The password goes to a 0600 file, never to the terminal or a log.
    """
    users = get_user_model()
    password_file = var_dir / "admin-password.txt"
    if users.objects.filter(is_superuser=True).exists():
        hint = f" (password in {password_file})" if password_file.exists() else ""
        return f"Log in as an existing administrator{hint}."
    password = secrets.token_urlsafe(12)
    users.objects.create_superuser(ADMIN_USERNAME, "admin@localhost", password)
    var_dir.mkdir(parents=True, exist_ok=True)
    password_file.touch(mode=0o600)
    password_file.write_text(password + "\n")
    return f"Created user '{ADMIN_USERNAME}'; its password is in {password_file}."
