"""Settings for the test suite and the worker processes it starts.

Why a module of its own: pytest-django imports settings before any conftest runs, so the
test-only secrets must be in place at import time. They are fixed, public and useless
outside tests; nothing here weakens panel/settings.py.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-" + "x" * 40)
os.environ.setdefault(
    "PANEL_ENCRYPTION_KEYS",
    # Two keys, so rotation is exercised: the first encrypts, both decrypt.
    "kA1Yh0E9-vcWcb6s2vUqzj9mF3bwUqkKkk0Hh6q0b0Y=,q0CqO7Yyb3E8n0dYv3xP6e5u7xH2y2x6Gk9V1m1sQ2I=",
)
# Fail closed: a test that forgets to point the SDK at the emulator reaches a closed loopback
# port, never a real Alibaba Cloud endpoint.
os.environ.setdefault("ALIYUN_ENDPOINT_OVERRIDE", "127.0.0.1:1")
os.environ.setdefault("PANEL_K3S_OFFICIAL_BASE_URL", "http://127.0.0.1:1")
os.environ.setdefault("PANEL_K3S_MIRROR_BASE_URL", "http://127.0.0.1:1")
os.environ.setdefault("PANEL_EXTRA_STEP_MODULES", "tests.engine.steps_for_tests")
# Tests run with DEBUG off (like production) on SQLite unless DATABASE_URL names a server.
os.environ.setdefault("PANEL_ALLOW_SQLITE", "1")

from panel.settings import *  # noqa: F403

SECURE_SSL_REDIRECT = False
# The emulator seeds its VPC on 127.X (tests/ui, the conformance world): hosts typed into the
# wizard there are loopback addresses. Tests of the refusal set it back to False.
PANEL_ALLOW_LOOPBACK_HOSTS = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Tests serve static files from the app directories; no collectstatic run is needed.
WHITENOISE_USE_FINDERS = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
VAR_DIR.mkdir(parents=True, exist_ok=True)  # noqa: F405 - a fresh checkout has no var/ yet
# Tests read catalogues compiled from locale/*.po into var/ by tests/conftest.py, so a test run
# writes nothing into the source tree (locale/ holds sources; `make run` compiles its own).
SOURCE_LOCALE_DIR = BASE_DIR / "locale"  # noqa: F405
LOCALE_PATHS = [VAR_DIR / "test-locale"]  # noqa: F405
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    # One test database per test session, so two sessions on one machine never share it
    # (worker processes get this name through DATABASE_URL from tests/support/worker.py).
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": str(VAR_DIR / f"test-db-{os.getpid()}.sqlite3")  # noqa: F405
    }
