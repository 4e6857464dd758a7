"""Settings come from the environment; a bad value stops start-up with a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "a-long-random-production-secret-key-" + "q7W" * 12,
    "PANEL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    "DJANGO_ALLOWED_HOSTS": "panel.example.com",
    "DATABASE_URL": "sqlite:////tmp/panel-settings-check.sqlite3",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DJANGO_", "PANEL_", "DATABASE_URL", "CELERY_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True,
        env={**clean, "DJANGO_SETTINGS_MODULE": "panel.settings", **env}, timeout=60,
    )


def test_check_deploy_is_clean_in_production():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr + result.stdout


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"DJANGO_SECRET_KEY": ""}, "Set DJANGO_SECRET_KEY"),
        ({"PANEL_ENCRYPTION_KEYS": "not-a-key"}, "not a Fernet key"),
        ({"DJANGO_DEBUG": "maybe"}, "is not a boolean"),
        ({"PANEL_STEP_LEASE_SECONDS": "soon"}, "is not a whole number"),
        ({"DATABASE_URL": "nosuchdb://x"}, "DATABASE_URL is not a database URL"),
        ({"DJANGO_SECRET_KEY_FILE": "/nonexistent/secret"}, "cannot be read"),
    ],
)
def test_bad_values_are_refused_at_start(override, message):
    result = manage("check", **{**PRODUCTION, **override})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and message in result.stderr


def test_secrets_can_come_from_files(tmp_path):
    key_file = tmp_path / "keys"
    key_file.write_text(Fernet.generate_key().decode() + "\n")
    env = {**PRODUCTION, "PANEL_ENCRYPTION_KEYS_FILE": str(key_file)}
    env.pop("PANEL_ENCRYPTION_KEYS")
    assert manage("check", **env).returncode == 0
