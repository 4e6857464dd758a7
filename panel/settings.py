"""Settings for the K3s HA panel, read from the environment (see README "Configuration").

Local defaults need no installed service: SQLite under var/, and the embedded Redis that
`make run` starts on a Unix socket. Production (DJANGO_DEBUG=0) must name its secrets.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from datetime import timedelta
from pathlib import Path

import aliyunsdkcore.vendored.requests  # noqa: F401 - see LOGGING below
import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from panel.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PANEL_VAR_DIR") or BASE_DIR / "var")

DEBUG = env_bool("DJANGO_DEBUG", default=False)


def _development_secrets() -> dict[str, str]:
    """Random secrets kept in var/ so a developer's data survives restarts (DEBUG only)."""
    path = VAR_DIR / "dev-secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    values = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "PANEL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }
    path.touch(mode=0o600)
    path.write_text(json.dumps(values))
    return values


def _secret(name: str) -> str:
    value = env_str(name)
    if value:
        return value
    if not DEBUG:
        raise ImproperlyConfigured(
            f"Set {name} (or {name}_FILE). Only DJANGO_DEBUG=1 may fall back to generated "
            "development secrets in var/dev-secrets.json."
        )
    return _development_secrets()[name]


SECRET_KEY = _secret("DJANGO_SECRET_KEY")

# Fernet keys for secrets at rest: comma-separated, newest first. Rotate by putting a new key
# first and running `manage.py rotate_encryption_keys`, then dropping the old one.
PANEL_ENCRYPTION_KEYS = [key.strip() for key in _secret("PANEL_ENCRYPTION_KEYS").split(",") if key]
for _key in PANEL_ENCRYPTION_KEYS:
    try:
        Fernet(_key)
    except (ValueError, TypeError) as _exc:
        raise ImproperlyConfigured(
            "PANEL_ENCRYPTION_KEYS holds a value that is not a Fernet key "
            "(32 url-safe base64-encoded bytes; make one with `make key`)."
        ) from _exc

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",  # before clusters: its login-failure receiver marks a lockout before ours audits
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc served from our static files, no CDN
    "clusters",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: turns a lockout into the page clusters.web.login_guard makes.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses a locked-out username+address first
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "panel.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "panel.wsgi.application"


def _database_url() -> str:
    return env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"


def _private_sqlite_file(name: str) -> None:
    """Create the SQLite file readable by its owner only (it holds the encrypted secrets, the
    sessions and the audit trail); tighten one that exists. SQLite gives its -wal and
    -journal files the database file's permissions."""
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        if path.stat().st_mode & 0o077 and path.owner() == _current_user():
            path.chmod(0o600)


def _current_user() -> str:
    import getpass  # noqa: PLC0415 - only needed for an existing SQLite file

    return getpass.getuser()


try:
    _default_db = dj_database_url.parse(
        _database_url(), conn_max_age=env_int("DB_CONN_MAX_AGE", 60)
    )
except ValueError as _exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {_exc}") from _exc
if _default_db["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite is for development and tests: in production one worker's long write blocks the
    # web and every other worker, and the file lives in the container. Refuse it unless told.
    if not DEBUG and not env_bool("PANEL_ALLOW_SQLITE", default=False):
        raise ImproperlyConfigured(
            "Production (DJANGO_DEBUG=0) needs DATABASE_URL to name PostgreSQL or MySQL; "
            "SQLite is used only with PANEL_ALLOW_SQLITE=1 (a single-host trial). "
            "See docs/production.md.")
    _private_sqlite_file(str(_default_db["NAME"]))
    # A worker process and the web process share the file: wait for locks rather than fail,
    # and take the write lock up front so two writers never deadlock on an upgrade.
    _default_db["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    _default_db["CONN_MAX_AGE"] = 0
    _default_db["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
DATABASES = {"default": _default_db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT") or BASE_DIR / "staticfiles")
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Security: strict by default outside DEBUG (docs/production.md).
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
# Preloading is a promise to browsers that every subdomain serves HTTPS for years, hard to
# take back: the operator opts in, the panel does not decide it for the whole domain.
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
# How many reverse proxies that the operator runs stand in front of gunicorn (0: none, the
# web server is reached directly). Only then are X-Forwarded-Proto and X-Forwarded-For
# believed: a client can send either header itself. clusters.interface.audit.client_address is the
# one place that reads X-Forwarded-For.
PANEL_TRUSTED_PROXIES = env_int("PANEL_TRUSTED_PROXIES", 0, minimum=0)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if PANEL_TRUSTED_PROXIES else None
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# Sign-in protection (django-axes; why per username and address: clusters/web/login_guard.py).
AXES_FAILURE_LIMIT = env_int("PANEL_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("PANEL_LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "clusters.interface.audit.client_address"
AXES_LOCKOUT_CALLABLE = "clusters.web.login_guard.locked_out"

# Celery: the broker is Redis. Locally `make run` starts an embedded redis-server on a socket.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or f"redis+socket://{VAR_DIR / 'redis.sock'}"
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE") or "celery"
# Health checks go to a queue of their own, "<default queue>-health" (panel/celery.py says why).
CELERY_TASK_ROUTES = ["panel.celery.route_task"]
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# Celery's Django fixup closes every database connection before and after each task unless
# this is set; it then closes them only every 2 x this many tasks. Each task would open a
# new PostgreSQL connection (issue 18: one per step execution, ~3 ms of worker CPU each).
# Reuse follows CONN_MAX_AGE instead, as for web requests: panel/celery.py closes an old or
# broken connection before each task, as Django does before each request.
CELERY_DB_REUSE_MAX = 1000

# The step engine (clusters/engine/pipeline.py).
PANEL_STEP_LEASE_SECONDS = env_int("PANEL_STEP_LEASE_SECONDS", 120, minimum=2)
PANEL_SWEEP_INTERVAL_SECONDS = env_float("PANEL_SWEEP_INTERVAL_SECONDS", 15.0, minimum=0.5)
# A step whose worker stopped answering this many times is failed, not run again: one that can
# never start (a secret no key decrypts, a worker the OOM killer takes) would loop forever.
PANEL_STEP_MAX_RECLAIMS = env_int("PANEL_STEP_MAX_RECLAIMS", 3, minimum=1)
# Wall-clock limit of one call of a step handler (a handler may set its own); past it the
# engine fails the step ("ran longer than N s") even if the handler is stuck in a call. The
# longest handler today runs the K3s install script (up to 15 min) plus a few short commands.
PANEL_STEP_TIME_LIMIT = env_float("PANEL_STEP_TIME_LIMIT", 1800.0, minimum=1)
# After Cancel, how long a running step may take to finish by itself before it is stopped.
PANEL_STEP_CANCEL_GRACE_SECONDS = env_float("PANEL_STEP_CANCEL_GRACE_SECONDS", 30.0, minimum=0)
# A step's stored log is bounded (clusters/engine/steplog.py): its first HEAD lines (what was
# run) and its newest TAIL lines (why it failed) are kept, with one marker row counting the
# lines between; a line longer than MAX_LINE_CHARS is cut with a marker saying how much.
# The worst case per step is (HEAD + TAIL) x MAX_LINE_CHARS characters; typical is ~3 MB.
PANEL_STEP_LOG_HEAD_LINES = env_int("PANEL_STEP_LOG_HEAD_LINES", 1000, minimum=0)
PANEL_STEP_LOG_TAIL_LINES = env_int("PANEL_STEP_LOG_TAIL_LINES", 20_000, minimum=1)
PANEL_STEP_LOG_MAX_LINE_CHARS = env_int("PANEL_STEP_LOG_MAX_LINE_CHARS", 4000, minimum=80)
# The SSH adapter holds at most 1 MiB of one line (clusters/adapters/ssh.py LINE_HOLD); the
# log's cut must stay well below it, so a secret the hold splits is always in the cut part.
if PANEL_STEP_LOG_MAX_LINE_CHARS > 512 * 1024:
    raise ImproperlyConfigured("PANEL_STEP_LOG_MAX_LINE_CHARS is above its maximum of 524288.")
PANEL_RETRY_BASE_SECONDS = env_float("PANEL_RETRY_BASE_SECONDS", 2.0)
PANEL_RETRY_MAX_SECONDS = env_float("PANEL_RETRY_MAX_SECONDS", 60.0)
PANEL_HEALTH_INTERVAL_SECONDS = env_float("PANEL_HEALTH_INTERVAL_SECONDS", 60.0, minimum=1)
# Datastore health thresholds (why each default: clusters/adapters/datastore_health.py).
PANEL_KINE_COMPACTION_GAP_LIMIT = env_int("PANEL_KINE_COMPACTION_GAP_LIMIT", 50_000, minimum=1)
PANEL_KINE_ROWS_LIMIT = env_int("PANEL_KINE_ROWS_LIMIT", 1_000_000, minimum=1)
# Embedded etcd: the health check lists the servers' snapshots (`k3s etcd-snapshot ls`, one
# SSH per server) only after a scheduled snapshot time, at most once per this many minutes,
# and at the latest after PANEL_ETCD_SNAPSHOT_LIST_MAX_HOURS.
PANEL_ETCD_SNAPSHOT_LIST_MINUTES = env_int("PANEL_ETCD_SNAPSHOT_LIST_MINUTES", 10, minimum=1)
PANEL_ETCD_SNAPSHOT_LIST_MAX_HOURS = env_int("PANEL_ETCD_SNAPSHOT_LIST_MAX_HOURS", 12, minimum=1)
PANEL_DATASTORE_STORAGE_PERCENT = env_float("PANEL_DATASTORE_STORAGE_PERCENT", 80.0, minimum=1)
PANEL_DATASTORE_CONNECTIONS_PERCENT = env_float("PANEL_DATASTORE_CONNECTIONS_PERCENT", 80.0,
                                                minimum=1)
# How long a server out of the SLB gets for its open connections before it restarts.
PANEL_SLB_DRAIN_SECONDS = env_float("PANEL_SLB_DRAIN_SECONDS", 3.0)
PANEL_CLOUD_POLL_SECONDS = env_float("PANEL_CLOUD_POLL_SECONDS", 15.0, minimum=0.1)
# How often a step waiting on a host (K3s starting, an agent registering, a restarted server
# turning Ready) looks again: each look is an SSH command or an API call, so not too often.
PANEL_HOST_POLL_SECONDS = env_float("PANEL_HOST_POLL_SECONDS", 2.0, minimum=0.1)
# Claim a step in one UPDATE ... RETURNING where the database has it (PostgreSQL; SQLite
# 3.35+); 0: always the ORM's three queries, as on MySQL (the engine's tests run both).
PANEL_ENGINE_CLAIM_RETURNING = env_bool("PANEL_ENGINE_CLAIM_RETURNING", True)
# A step that keeps saying the same "not yet" is looked at less often (clusters/engine/
# polling.py says why and how): its first PANEL_POLL_PUNCTUAL waits keep the interval it
# asked for; each later one waits PANEL_POLL_GROWTH times the one before, at most
# PANEL_POLL_MAX_FACTOR times the asked interval and PANEL_POLL_MAX_SECONDS (never less than
# the asked interval). PANEL_POLL_GROWTH=1 keeps every interval as asked.
PANEL_POLL_PUNCTUAL = env_int("PANEL_POLL_PUNCTUAL", 4, minimum=1)
PANEL_POLL_GROWTH = env_float("PANEL_POLL_GROWTH", 1.5, minimum=1.0, maximum=10.0)
PANEL_POLL_MAX_FACTOR = env_float("PANEL_POLL_MAX_FACTOR", 4.0, minimum=1.0, maximum=100.0)
PANEL_POLL_MAX_SECONDS = env_float("PANEL_POLL_MAX_SECONDS", 60.0, minimum=0.1)
PANEL_STEP_MODULES = ["clusters.steps.all", *env_list("PANEL_EXTRA_STEP_MODULES")]

# Alibaba Cloud: when set, every SDK call goes to this host:port over HTTP and nowhere else
# (the offline emulator); unset, the SDK's real endpoints are used.
ALIYUN_ENDPOINT_OVERRIDE = env_str("ALIYUN_ENDPOINT_OVERRIDE") or None
# host[:port] of the ECS instance metadata service, for accounts using the ECS instance RAM
# role. Unset: 100.100.100.200, except while ALIYUN_ENDPOINT_OVERRIDE is set, when the panel
# refuses to guess (fail closed; tests point it at the emulator's stand-in).
ALIYUN_ECS_METADATA_ENDPOINT = env_str("ALIYUN_ECS_METADATA_ENDPOINT") or ""
# The RAM roles of the panel's own ECS instance that its users may sign with (comma-separated
# names). Empty: none. The instance's role is the operator's identity, so no user may pick it
# unless the operator offers it here (clusters/adapters/cloud.py says so again at each use).
PANEL_ECS_ROLES = env_list("PANEL_ECS_ROLES", [])

# Where the wizard checks that a K3s version exists; unset: GitHub / update.k3s.io and the
# China mirror. The offline sandbox points them at its artifact server.
PANEL_K3S_OFFICIAL_BASE_URL = env_str("PANEL_K3S_OFFICIAL_BASE_URL") or ""
PANEL_K3S_MIRROR_BASE_URL = env_str("PANEL_K3S_MIRROR_BASE_URL") or ""

# The ApsaraDB CA chain (ApsaraDB-CA-Chain.pem from the RDS console's "Download CA
# certificate"; no RDS API returns it). K3s servers and the panel verify RDS's certificate
# against it when a cluster's datastore TLS is on (clusters/adapters/datastore_tls.py).
PANEL_RDS_CA_BUNDLE = env_str("PANEL_RDS_CA_BUNDLE") or ""

# Hosts the panel must never SSH to, besides loopback, link-local and its own interfaces
# addresses (clusters/adapters/host_addresses.py): its service network, comma-separated CIDRs.
PANEL_FORBIDDEN_NETWORKS = env_list("PANEL_FORBIDDEN_NETWORKS")
for _network in PANEL_FORBIDDEN_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(
            f"PANEL_FORBIDDEN_NETWORKS holds {_network!r}, which is not a network (CIDR)."
        ) from _exc
# Where the hosts see the panel's SSH come from (comma-separated CIDRs): the only source of
# SSH in the security group the panel makes for instances it buys (clusters/k3s/firewall.py).
# Unset: the panel's own addresses inside the cluster's VPC (a panel running in the VPC).
PANEL_SSH_SOURCE_CIDRS = env_list("PANEL_SSH_SOURCE_CIDRS")
for _network in PANEL_SSH_SOURCE_CIDRS:
    try:
        ipaddress.IPv4Network(_network, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(
            f"PANEL_SSH_SOURCE_CIDRS holds {_network!r}, which is not an IPv4 CIDR block."
        ) from _exc
# Never True here: only panel/settings_test.py allows loopback hosts (the emulator's VPC).
PANEL_ALLOW_LOOPBACK_HOSTS = False
# How many SSH tests (the wizard's Test connection, a host-key scan) one user may make a minute.
PANEL_HOST_TEST_RATE_LIMIT = env_int("PANEL_HOST_TEST_RATE_LIMIT", 5, minimum=1)

# The REST API (clusters/api): tokens or the browser's session (with CSRF), one page size,
# one error shape, a request budget per token (or per user on a session). `panelctl runs
# watch` asks about twice a second while it follows a run.
PANEL_API_REQUESTS_PER_MINUTE = env_int("PANEL_API_REQUESTS_PER_MINUTE", 600, minimum=1)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "clusters.api.auth.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["clusters.api.permissions.TokenScopePermission"],
    "DEFAULT_THROTTLE_CLASSES": ["clusters.api.throttling.PerTokenThrottle"],
    "DEFAULT_PAGINATION_CLASS": "clusters.api.pagination.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "clusters.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "K3s HA panel API",
    "DESCRIPTION": "Clusters, their runs and steps, nodes, kubeconfigs and the audit trail. "
                   "Send `Authorization: Bearer <token>` (a token from Account → API tokens).",
    "VERSION": "1",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ClusterStatusEnum": "clusters.models.ClusterStatus",
        "RunStatusEnum": "clusters.models.RunStatus",
        "NodeStatusEnum": "clusters.models.NodeStatus",
        "StepStatusEnum": "clusters.models.StepStatus",
        "RunKindEnum": "clusters.models.RunKind",
        "DatastoreKindEnum": "clusters.models.DatastoreKind",
        "CredentialKindEnum": "clusters.models.CredentialKind",
        "HostAuthEnum": [("key", "key"), ("password", "password")],
    },
}

# The cache holds the rate limits; several web processes must share one (PANEL_CACHE_URL, e.g.
# redis://127.0.0.1:6379/1), or each process counts on its own.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                      "LOCATION": env_str("PANEL_CACHE_URL")}
          if env_str("PANEL_CACHE_URL") else
          {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Every handler masks secrets (clusters/core/redaction.py), whichever logger wrote the record:
# at DEBUG the Alibaba SDK and its vendored urllib3 log request URLs with their parameters.
# The Celery worker keeps its own handlers; panel/celery.py puts the same filter on them.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "clusters.core.redaction.RedactingFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain",
                             "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # The SDK's vendored requests sets its own logger to CRITICAL when it is imported (it is,
    # above, so that this comes later and wins); LOG_LEVEL=DEBUG then shows its HTTP lines
    # too, masked like everything else.
    "loggers": {"aliyunsdkcore.vendored.requests": {"level": env_str("LOG_LEVEL", "INFO")}},
}
