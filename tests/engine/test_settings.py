"""Settings come from the environment; a bad value stops start-up with a clear message."""

from __future__ import annotations

import json
import os
import stat
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
    "PANEL_ALLOW_SQLITE": "1",
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
        # Growing waits (clusters/engine/polling.py): shrinking ones would poll ever faster.
        ({"PANEL_POLL_GROWTH": "0.5"}, "PANEL_POLL_GROWTH=0.5 is below its minimum of 1.0"),
        ({"PANEL_POLL_GROWTH": "nan"}, "PANEL_POLL_GROWTH='nan' is not a finite number"),
        ({"PANEL_POLL_MAX_SECONDS": "inf"}, "is not a finite number"),
        ({"PANEL_POLL_PUNCTUAL": "0"}, "PANEL_POLL_PUNCTUAL=0 is below its minimum of 1"),
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


def effective(*names: str, **env: str) -> dict[str, object]:
    """The named settings as panel.settings computes them for this environment."""
    code = ("import json; from django.conf import settings; "
            f"print(json.dumps({{n: getattr(settings, n) for n in {list(names)!r}}}))")
    result = manage("shell", "-c", code, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_refuses_sqlite_unless_explicitly_allowed(tmp_path):
    env = {**PRODUCTION, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    env.pop("PANEL_ALLOW_SQLITE")
    refused = manage("check", **env)
    assert refused.returncode != 0 and "PANEL_ALLOW_SQLITE=1" in refused.stderr
    env.pop("DATABASE_URL")  # the default is SQLite too
    assert "PANEL_ALLOW_SQLITE=1" in manage("check", **env).stderr
    assert not (tmp_path / "db.sqlite3").exists()


def test_the_sqlite_file_is_created_for_its_owner_only_and_an_open_one_is_tightened(tmp_path):
    path = tmp_path / "var" / "db.sqlite3"
    env = {**PRODUCTION, "DATABASE_URL": f"sqlite:///{path}"}
    assert manage("migrate", "--noinput", **env).returncode == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)
    assert manage("check", **env).returncode == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_hsts_preload_is_opt_in_and_forwarded_proto_needs_a_trusted_proxy():
    defaults = effective("SECURE_HSTS_PRELOAD", "SECURE_PROXY_SSL_HEADER",
                         "PANEL_TRUSTED_PROXIES", **PRODUCTION)
    assert defaults == {"SECURE_HSTS_PRELOAD": False, "SECURE_PROXY_SSL_HEADER": None,
                        "PANEL_TRUSTED_PROXIES": 0}
    behind = effective("SECURE_HSTS_PRELOAD", "SECURE_PROXY_SSL_HEADER",
                       **{**PRODUCTION, "PANEL_TRUSTED_PROXIES": "1",
                          "DJANGO_HSTS_PRELOAD": "1"})
    assert behind == {"SECURE_HSTS_PRELOAD": True,
                      "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"]}
