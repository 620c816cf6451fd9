"""Reef settings. Everything configurable is read from the environment here, and only here.

First-run defaults are safe: SQLite under var/, Redis on localhost, debug off, a secret key
generated once into var/.
"""

import os
import secrets
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("REEF_VAR_DIR", BASE_DIR / "var"))


def envbool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), not {value!r}")


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def envfloat(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number of seconds, not {value!r}") from None


def envlist(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once into var/ (never committed)."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


DEBUG = envbool("DEBUG", False)
SECRET_KEY = _secret_key()
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])


def _public_url(name: str) -> str:
    value = os.environ.get(name, "").strip().rstrip("/")
    parsed = urlparse(value)
    if value and (parsed.scheme not in ("http", "https") or not parsed.hostname or parsed.path or parsed.query):
        raise ImproperlyConfigured(f"{name} must be the server's address, like https://reef.example.com, not {value!r}")
    return value


# Where agents and scripts reach this server (install commands, Octopus.Web.ServerUri); empty: the
# address a page was asked on. REEF_BIND is where `manage.py serve` listens; polling tentacles connect
# to REEF_POLLING_PORT on REEF_POLLING_BIND.
REEF_PUBLIC_URL = _public_url("REEF_PUBLIC_URL")
REEF_BIND = os.environ.get("REEF_BIND", "127.0.0.1")
REEF_PORT = envint("PORT", 8000)
REEF_POLLING_PORT = envint("REEF_POLLING_PORT", 10943)
REEF_POLLING_BIND = os.environ.get("REEF_POLLING_BIND", "0.0.0.0")

# Behind TLS (the production profile) cookies are secure and HSTS is on. `manage.py serve` turns
# this off for a plain-HTTP first run on localhost, where secure cookies could not work.
HTTPS = envbool("REEF_HTTPS", not DEBUG)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS and envbool("REEF_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = envint("REEF_HSTS_SECONDS", 31536000) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if envbool("REEF_BEHIND_PROXY", False) else None
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = envint("REEF_SESSION_SECONDS", 12 * 3600)
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "axes",
    "django_celery_beat",
    "channels",
    "portal",
    "servertasks",
    "infrastructure",
    "deployments",
]
# daphne's app only gives `runserver` websockets, and loading it imports Twisted into every process
# (the Celery worker, the polling endpoint, management commands): ~13 MB each.
if sys.argv[1:2] == ["runserver"]:
    INSTALLED_APPS.insert(0, "daphne")

MIDDLEWARE = [
    "portal.api.errors.ApiErrorsMiddleware",  # outermost: every error under /api leaves as JSON
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
    "portal.control_characters.ControlCharactersMiddleware",
]

ROOT_URLCONF = "portal.urls"
ASGI_APPLICATION = "portal.asgi.application"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.layout",
            ],
        },
    }
]

# Database: DATABASE_URL (PostgreSQL in production and CI), else SQLite under var/.
DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{VAR_DIR / 'reef.sqlite3'}",
        conn_max_age=envint("REEF_DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Re-opens a connection PostgreSQL dropped (a restart, pg_terminate_backend) and retries reads (database.py).
    DATABASES["default"]["ENGINE"] = "portal.database"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL with synchronous=NORMAL: a commit no longer waits for fsync (a task log commits ~20 times a second).
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so processes started by end-to-end tests see the same test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-reef.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "portal.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if envbool("REEF_TEST_FAST_HASHER", False):
    # Test runs only: hashing passwords slowly on purpose would dominate the suite's time.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# The first administrator `manage.py ensure_admin` creates when there is none (empty password: generated).
REEF_ADMIN_USERNAME = os.environ.get("REEF_ADMIN_USERNAME") or "admin"
REEF_ADMIN_PASSWORD = os.environ.get("REEF_ADMIN_PASSWORD") or ""
# Fernet key(s) for secrets at rest, newest first (portal/encryption.py); empty: one generated into var/.
REEF_MASTER_KEY = os.environ.get("REEF_MASTER_KEY", "")

# Login attempts are rate-limited per username and address.
AXES_FAILURE_LIMIT = envint("REEF_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

GUARDIAN_RAISE_403 = False
ANONYMOUS_USER_NAME = None  # guardian: no anonymous user row

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_USE_FINDERS = True  # serve from static/ directly: no collectstatic step at run time
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Redis: the Celery broker, the Channels layer, polling queues, locks. `manage.py serve` insists on a
# REDIS_URL that was set; with none it tries localhost, then starts an embedded Redis.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_URL_SET = bool(os.environ.get("REDIS_URL"))
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # channels_redis opens a new connection after a failed one; the health check drops dead idle ones.
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "health_check_interval": 10, "retry_on_timeout": True}],
            "prefix": os.environ.get("REEF_CHANNEL_PREFIX", "reef:asgi"),
        },
    }
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Settings that avoid known stalls with Redis (DESIGN.md).
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A Redis restart is ridden out, never a reason to exit: reconnect forever, with health checks on idle connections.
_REDIS_TRANSPORT_OPTIONS = {
    "retry_on_timeout": True,
    "health_check_interval": 10,
    "socket_keepalive": True,
    "socket_connect_timeout": 5,
    "max_retries": None,
    "interval_start": 0.2,
    "interval_step": 0.5,
    "interval_max": 2,
}
# Celery's Django fixup closes every database connection before and after each task unless told to reuse
# them: a server task then paid a new connection (1.6 ms on SQLite, more on PostgreSQL) before its first
# query. Connections live as CONN_MAX_AGE says (run_server_task closes old ones); this closes the running
# thread's connection only every 500 tasks.
CELERY_DB_REUSE_MAX = 500
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": envint("REEF_TASK_VISIBILITY_TIMEOUT", 6 * 3600),
    **_REDIS_TRANSPORT_OPTIONS,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {
    "retry_policy": {"max_retries": 20, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2},
    "health_check_interval": 10,
}
CELERY_REDIS_BACKEND_HEALTH_CHECK_INTERVAL = 10
CELERY_REDIS_SOCKET_KEEPALIVE = True
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CONNECTION_TIMEOUT = 5
# Queueing a task (a deploy from a page) during a blip waits for Redis to come back rather than failing.
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 20, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 2}
CELERY_BROKER_HEARTBEAT = 0  # AMQP only; Redis connections are checked by health_check_interval
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False  # a running step continues through a blip
# Exactly one scheduler across the cluster: beat sends due jobs only while its node holds a lease in Redis.
CELERY_BEAT_SCHEDULER = "deployments.beat:LeasedDatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "portal.api.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "portal.api.pagination.OctopusPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "portal.api.schema.OctopusAutoSchema",
    "EXCEPTION_HANDLER": "portal.api.errors.octopus_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "portal.api.parsers.JSONParser",
        "portal.api.parsers.FormParser",
        "portal.api.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_RATES": {"anon": "60/minute"},
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Reef API",
    "DESCRIPTION": "Worker pools, workers and deployments, in the resource shapes of Octopus Deploy's REST API.",
    "VERSION": "0.1.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "portal.api.schema.link_created_resources",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("REEF_LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}

# Request bodies are bounded before anything reads them (portal/request_limits.py, and daphne's side in
# portal/daphne_bounds.py): small everywhere, large only where packages are pushed. Uploads spool to disk.
REEF_REQUEST_MAX_BYTES = envint("REEF_REQUEST_MAX_BYTES", 10 * 1024 * 1024)
REEF_PACKAGE_MAX_BYTES = envint("REEF_PACKAGE_MAX_BYTES", 1024 * 1024 * 1024)
REEF_PACKAGE_UPLOAD_PATHS = [r"^/Spaces-\d+/library/packages/$", r"^/api/(Spaces-\d+/)?packages/raw$"]
DATA_UPLOAD_MAX_MEMORY_SIZE = REEF_REQUEST_MAX_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

# Server tasks: each node runs at most REEF_TASK_CAP at once (Octopus's task cap); a task running
# longer than REEF_TASK_TIMEOUT seconds is stopped and ends TimedOut.
REEF_TASK_CAP = envint("REEF_TASK_CAP", 5)
REEF_TASK_TIMEOUT = envint("REEF_TASK_TIMEOUT", 3 * 3600)
REEF_TASK_QUEUE = os.environ.get("REEF_TASK_QUEUE", "reef.servertasks")
REEF_STREAM_PREFIX = os.environ.get("REEF_STREAM_PREFIX", "reef")
# Task logs of tasks that ended more than this many days ago are deleted (0 keeps them forever).
REEF_TASK_LOG_RETENTION_DAYS = envint("REEF_TASK_LOG_RETENTION_DAYS", 90)
# The account built-in scripts run as when the server runs as root (only root can switch accounts).
REEF_BUILTIN_WORKER_USER = os.environ.get("REEF_BUILTIN_WORKER_USER") or "nobody"

# The polling endpoint's bounds: requests served at once (one thread per open long poll, so the agents
# one node serves), connections waiting for a thread, idle connections waiting for their first bytes.
REEF_POLLING_MAX_THREADS = envint("REEF_POLLING_MAX_THREADS", 512)
REEF_POLLING_MAX_QUEUED = envint("REEF_POLLING_MAX_QUEUED", 256)
REEF_POLLING_MAX_PENDING = envint("REEF_POLLING_MAX_PENDING", 1024)
# A task Queued this long is sent to Celery again (its message may have been lost with a Redis restart).
REEF_LOST_TASK_SECONDS = envint("REEF_LOST_TASK_SECONDS", 60)
# Health checks and housekeeping: Celery's default queue, read by threads of their own beside the task cap.
REEF_HEALTH_QUEUE = os.environ.get("REEF_HEALTH_QUEUE", "celery")
CELERY_TASK_DEFAULT_QUEUE = REEF_HEALTH_QUEUE
CELERY_TASK_ROUTES = {"deployments.run_server_task": {"queue": REEF_TASK_QUEUE}}


def _node_name() -> str:
    """This server node's name: REEF_NODE_NAME, else one generated once and kept in var/node_name.
    Unique per node, so two nodes on one host (or two clones of one image with their own var/) differ."""
    if os.environ.get("REEF_NODE_NAME"):
        return os.environ["REEF_NODE_NAME"].strip()[:100]
    path = VAR_DIR / "node_name"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        draft = VAR_DIR / f".node_name.{os.getpid()}"
        draft.write_text(f"{socket.gethostname()[:60]}-{secrets.token_hex(3)}\n")
        try:
            os.link(draft, path)  # atomic: processes of one node starting together agree on one name
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


# Server nodes: a node beats every REEF_NODE_HEARTBEAT_SECONDS into Redis (with a TTL) and every
# REEF_NODE_ROW_SECONDS into its database row (the Nodes page); the tasks of a node whose beat is gone
# are failed by any live node.
REEF_NODE_NAME = _node_name()
REEF_NODE_HEARTBEAT_SECONDS = envint("REEF_NODE_HEARTBEAT_SECONDS", 3)
REEF_NODE_HEARTBEAT_TTL = envint("REEF_NODE_HEARTBEAT_TTL", 10)
REEF_NODE_ROW_SECONDS = envint("REEF_NODE_ROW_SECONDS", 60)
# `manage.py serve` (`make run`): the local demo agent and project on an empty database, the Celery
# worker's processes, how long a child must stay up before its restart backoff resets, and how long
# children get to stop before they are killed.
REEF_DEMO = envbool("REEF_DEMO", True)
REEF_CELERY_CONCURRENCY = envint("REEF_CELERY_CONCURRENCY", 2)
REEF_SUPERVISOR_STABLE_SECONDS = envfloat("REEF_SUPERVISOR_STABLE_SECONDS", 60.0)
REEF_STOP_SECONDS = envfloat("REEF_STOP_SECONDS", 15.0)
# Log lines waiting in memory for the database (a blip) before the writer waits too.
REEF_LOG_BUFFER_LINES = envint("REEF_LOG_BUFFER_LINES", 100_000)
# Beat stores each job's last run at once, so a node taking the scheduler over never sends it again.
CELERY_BEAT_SYNC_EVERY = 1
# kombu's Redis transport with a fix that keeps a worker alive when the broker restarts (broker.py).
CELERY_BROKER_TRANSPORT = "portal.broker:Transport"
