"""Koyra settings: one file, 12-factor. Every setting X may also be given as X_FILE."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TypeVar, overload
from urllib.parse import unquote, urlsplit

import environ

from koyra import local_keys

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


# Values that were not what their setting takes: each is named by the check koyra.E004
# (`manage.py check`, every server and worker start), which refuses to start until fixed.
_PROBLEMS: list[str] = []
_T = TypeVar("_T")


@overload
def _read(name: str) -> str | None: ...
@overload
def _read(name: str, default: str) -> str: ...
def _read(name: str, default: str | None = None) -> str | None:
    """The value of X, else the contents of the file named by X_FILE (how Swarm mounts secrets)."""
    if name in os.environ:
        return os.environ[name]
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror
            _PROBLEMS.append(
                f"{name}_FILE names {path!r}, which cannot be read ({why}); point it at a "
                f"readable file holding {name}, or unset it."
            )
    return default


def _refuse(name: str, shown: str, takes: str, default: _T) -> _T:
    """Record that `name` is not what it takes (koyra.E004 names it); its default stands in."""
    _PROBLEMS.append(f"{name} is {shown!r}; it takes {takes} (unset, it is {default}).")
    return default


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"", "0", "false", "no", "off"})


def _bool(name: str, default: bool) -> bool:
    value = _read(name)
    if value is None:
        return default
    word = value.strip().lower()
    if word not in _TRUE | _FALSE:
        _refuse(name, value, "1/true/yes/on or 0/false/no/off", "on" if default else "off")
        return default
    return word in _TRUE


def _int(name: str, default: int, *, low: int = 0, high: int = 10**9) -> int:
    """A whole number from `low` to `high`: "30", not "30s", "-1" or "1e3"."""
    value = _read(name)
    if value is None or not value.strip():
        return default
    text = value.strip()
    if re.fullmatch(r"[0-9]{1,19}", text) and low <= int(text) <= high:
        return int(text)
    return _refuse(name, value, f"a whole number from {low} to {high}", default)


def _base_url(name: str, default: str) -> str:
    """Where Koyra is reached (webhook URLs, the TLS cookie settings): http(s)://host[:port]
    and an optional path, scheme in lower case, no trailing slash."""
    value = _read(name)
    if value is None or not value.strip():
        return default
    text = value.strip().rstrip("/")
    m = re.fullmatch(r"(?i)(https?)://([^\s/?#@]+)(/[^\s?#]*)?", text)
    if m:
        try:
            parts = urlsplit(text)
            if parts.hostname and (parts.port is None or parts.port > 0):
                return f"{m[1].lower()}://{m[2]}{m[3] or ''}"
        except ValueError:  # a port that is no number, or over 65535
            pass
    shown = re.sub(r"(?<=://)[^/]*@", "...@", value)  # a password in it stays out of the log
    takes = (
        "the address Koyra is reached at, with http:// or https:// and a host, e.g. "
        "https://koyra.example.com"
    )
    return _refuse(name, shown, takes, default)


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(name: str, default: str) -> str:
    value = _read(name)
    if value is None or not value.strip():
        return default
    if value.strip().upper() in _LEVELS:
        return value.strip().upper()
    return _refuse(name, value, f"one of {', '.join(_LEVELS)}", default)


KOYRA_DATA_DIR = Path(_read("KOYRA_DATA_DIR", str(BASE_DIR / "data"))).resolve()
KOYRA_DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)

DEBUG = _bool("DEBUG", False)
# Error pages and mails never show posted secret values or DATABASE_URL/REDIS_URL passwords,
# DEBUG or not.
DEFAULT_EXCEPTION_REPORTER_FILTER = "koyra.reporting.KoyraExceptionReporterFilter"
# SECRET_KEY, else SECRET_KEY_FILE, else KOYRA_DATA_DIR/secret_key (made there on first use, as
# `make run` does). None is never a crash here; koyra.E002 reports it at `check` time.
_secret_key = local_keys.load("SECRET_KEY", data_dir=KOYRA_DATA_DIR, make=local_keys.new_secret_key)
SECRET_KEY = _secret_key.value
KOYRA_SECRET_KEY_PROBLEM = _secret_key.problem
ALLOWED_HOSTS = [h.strip() for h in (_read("ALLOWED_HOSTS", "127.0.0.1,localhost")).split(",")]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in (_read("CSRF_TRUSTED_ORIGINS", "") or "").split(",") if o.strip()
]

# No "daphne" app: it only makes `runserver` serve ASGI (Koyra runs `daphne` itself), and it
# imports Twisted and Autobahn into every process that sets Django up: ~20 MiB of the
# worker's and each manage.py command's memory (BENCHMARKS.md, footprint).
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_rq",
    "template_partials",
    "koyra",
    "apps",
    "deployments",
    "deployments.webhooks",
    "secrets_vault",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "koyra.urls"
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
            ],
        },
    }
]
WSGI_APPLICATION = "koyra.wsgi.application"
ASGI_APPLICATION = "koyra.asgi.application"

_known = len(_PROBLEMS)
DATABASE_URL = _read("DATABASE_URL") or f"sqlite:///{KOYRA_DATA_DIR / 'koyra.sqlite3'}"
_DATABASE_UNREADABLE = len(_PROBLEMS) > _known  # DATABASE_URL_FILE could not be read
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
_db_host = urlsplit(DATABASE_URL).netloc.rpartition("@")[2].partition(":")[0]
if _db_host[:3].lower() == "%2f":
    # A socket directory as the host (postgres://koyra@%2Frun%2Fpostgresql/koyra, as libpq
    # writes it): django-environ leaves it quoted and lowercased, and psycopg would look it up
    # in DNS. The path form (postgres:////run/postgresql/koyra) needs no help.
    DATABASES["default"]["HOST"] = unquote(_db_host)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The worker writes log lines while the web side reads them: WAL lets both proceed, and
    # IMMEDIATE transactions take the write lock up front instead of failing on upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    # A file, not memory, so the worker and daphne processes of the e2e suite share it.
    DATABASES["default"]["TEST"] = {"NAME": str(KOYRA_DATA_DIR / "test.sqlite3")}
if _DATABASE_UNREADABLE:
    # No database rather than a new, empty SQLite one: koyra.E004 stops every start, and a
    # command that skips the checks (`shell`) fails at its first query.
    DATABASES = {"default": {"ENGINE": "django.db.backends.dummy"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/apps/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = KOYRA_DATA_DIR / "static"

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"

REDIS_URL = _read("REDIS_URL", "redis://127.0.0.1:6379/0")
# Connect timeout only: a Redis that drops packets must not hang a webhook request, while the
# worker's blocking dequeue needs reads without a timeout.
_sep = "&" if "?" in REDIS_URL else "?"
RQ_QUEUES = {
    "deploys": {"URL": f"{REDIS_URL}{_sep}socket_connect_timeout=2", "DEFAULT_TIMEOUT": 3600}
}
RQ_SHOW_ADMIN_LINK = True

# Redis pub/sub: a relayed batch of log lines is one PUBLISH for the worker and one message
# pushed to each viewer's process. The list-based RedisChannelLayer took, per message, a Lua
# script and a lookup to send it, and a script, a pop and two more round trips to receive it
# (the batch written back to a backup queue and read out again); what pub/sub does not keep
# (a message sent while a connection was down) the live log's consumer reads back from the
# database (consumers.py). A socket waits at most 15 s for Redis: no relay hangs a worker.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}]},
    }
}

# --- Koyra ---------------------------------------------------------------------------------
# Fernet keys, comma-separated; the first encrypts, all decrypt. No fallback of any kind.
# KOYRA_FERNET_KEYS, else KOYRA_FERNET_KEYS_FILE, else KOYRA_DATA_DIR/fernet.keys, made there
# only for a new install: never where a database may hold secrets (koyra.E001 says where the
# key they need is expected).
KOYRA_EXISTING_DATA = local_keys.existing_data(DATABASES["default"])
_fernet = local_keys.load(
    "KOYRA_FERNET_KEYS",
    data_dir=KOYRA_DATA_DIR,
    make=None if KOYRA_EXISTING_DATA else local_keys.new_fernet_key,
)
KOYRA_FERNET_KEYS = [k.strip() for k in _fernet.value.split(",") if k.strip()]
KOYRA_FERNET_KEYS_PATH = _fernet.path
KOYRA_FERNET_KEYS_PROBLEM = _fernet.problem
KOYRA_REGISTRY = _read("KOYRA_REGISTRY", "127.0.0.1:5000")
KOYRA_NETWORK = _read("KOYRA_NETWORK", "koyra-public")
KOYRA_REGISTRY_IMAGE = _read("KOYRA_REGISTRY_IMAGE", "registry:2")
# How long a push (and bootstrap_cluster) waits for the registry to answer: after an engine
# restart its task takes a while to be back, and its port refuses connections until then.
KOYRA_REGISTRY_WAIT_SECONDS = _int("KOYRA_REGISTRY_WAIT_SECONDS", 60)
KOYRA_TRAEFIK_IMAGE = _read("KOYRA_TRAEFIK_IMAGE", "traefik:v3.7")
KOYRA_HTTP_PORT = _int("KOYRA_HTTP_PORT", 80, low=1, high=65535)
KOYRA_HTTPS_PORT = _int("KOYRA_HTTPS_PORT", 443, low=1, high=65535)
KOYRA_ACME_EMAIL = _read("KOYRA_ACME_EMAIL", "") or ""
KOYRA_BASE_URL = _base_url("KOYRA_BASE_URL", "http://127.0.0.1:8000")
# file:// repositories read the Koyra server's own disk: for tests and single-user setups.
KOYRA_ALLOW_FILE_REPOS = _bool("KOYRA_ALLOW_FILE_REPOS", False)
# known_hosts lines of self-hosted git servers (ssh URLs); GitHub's keys are built in
# (deployments/boundaries/git.py). Unknown or changed host keys are refused, never trusted.
KOYRA_GIT_KNOWN_HOSTS = _read("KOYRA_GIT_KNOWN_HOSTS", "") or ""
# A CA bundle git trusts for self-hosted HTTPS git servers (http.sslCAInfo).
KOYRA_GIT_CA_FILE = _read("KOYRA_GIT_CA_FILE", "") or ""
if KOYRA_BASE_URL.startswith("https://"):
    # Served over TLS (usually behind a proxy that terminates it): cookies only over HTTPS,
    # the proxy's X-Forwarded-Proto is believed, and the public origin passes CSRF checks.
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    _base = urlsplit(KOYRA_BASE_URL)
    CSRF_TRUSTED_ORIGINS = [*CSRF_TRUSTED_ORIGINS, f"{_base.scheme}://{_base.netloc}"]
KOYRA_SWARM_ADVERTISE_ADDR = _read("KOYRA_SWARM_ADVERTISE_ADDR", "") or ""
# How long one deploy may take, all stages together, before it is stopped and marked failed.
KOYRA_DEPLOY_TIMEOUT = _int("KOYRA_DEPLOY_TIMEOUT", 30 * 60, low=1)
# How long the rollout may take to converge (all tasks on the new digest and healthy).
KOYRA_ROLLOUT_TIMEOUT = _int("KOYRA_ROLLOUT_TIMEOUT", 300, low=1)
KOYRA_WORKSPACE_DIR = Path(_read("KOYRA_WORKSPACE_DIR", str(KOYRA_DATA_DIR / "workspaces")))
# How often Traefik re-reads the Swarm: short, so new tasks get traffic soon after they start.
KOYRA_TRAEFIK_REFRESH_SECONDS = _int("KOYRA_TRAEFIK_REFRESH_SECONDS", 2, low=1)
# A stopping task keeps serving this long after SIGTERM, so Traefik stops routing to it first.
KOYRA_DRAIN_SECONDS = _int("KOYRA_DRAIN_SECONDS", 2 * KOYRA_TRAEFIK_REFRESH_SECONDS + 1)
# A new task that crashes within this long after it became healthy rolls the update back
# (Swarm's monitor window; Docker's own default). Paid once per rollout, after the last task.
KOYRA_ROLLOUT_STABILITY_SECONDS = _int("KOYRA_ROLLOUT_STABILITY_SECONDS", 5)

# Retention: per app, the images of the last N releases that went live are kept (plus the
# live one and the next rollback target); the rest leave the registry and this engine.
KOYRA_KEEP_RELEASES = _int("KOYRA_KEEP_RELEASES", 10)
KOYRA_BUILD_CACHE_MAX_BYTES = _int("KOYRA_BUILD_CACHE_MAX_BYTES", 5 * 1024**3, high=2**62)
# Hours between automatic prune runs (0: never; `manage.py prune` still works).
KOYRA_PRUNE_EVERY_HOURS = _int("KOYRA_PRUNE_EVERY_HOURS", 24)

# Koyra itself enqueues on commit (deploy_create's on_commit), and deploy_enqueue must see a
# Redis error at once to leave the row for the sweep: no second deferral by django-rq.
RQ = {"WORKER_CLASS": "deployments.worker.KoyraWorker", "COMMIT_MODE": "auto"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": _log_level("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}

# Last: every value above has been read (koyra.E004 names what was wrong).
KOYRA_SETTINGS_PROBLEMS = tuple(_PROBLEMS)
