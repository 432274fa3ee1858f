"""Settings shared by every environment. Everything comes from the environment
(django-environ, optional `.env`), with embedded defaults that let a newcomer
run the back office with nothing installed: SQLite, eager Celery, local-memory
cache, no Stripe key."""

from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
env_file = BASE_DIR / ".env"
if env_file.exists():
    env.read_env(str(env_file))

SECRET_KEY = env("SECRET_KEY", default="dev-insecure-secret-key-change-me")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

INSTALLED_APPS = [
    # django-unfold (SPEC §9) must come before django.contrib.admin: its
    # templates override the admin's.
    "unfold",
    "unfold.contrib.filters",
    "unfold.contrib.forms",
    "unfold.contrib.simple_history",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "simple_history",
    "axes",
    "config",
    "companies",
    "notifications",
    "credits",
    "entitlements",
    "metering",
    "billing",
    "insights",
    "desk",
]

MIDDLEWARE = [
    "config.middleware.RequestIdMiddleware",
    "config.middleware.JsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "config.middleware.DatabaseUnavailableMiddleware",
    "config.db_router.AdminListReplicaMiddleware",
    # Last, as django-axes requires: turns a locked-out login into its lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
CSRF_FAILURE_VIEW = "config.api.envelope.csrf_failure"
WSGI_APPLICATION = "config.wsgi.application"

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
    },
]

# The only sign-in is the admin's; unfold's login form posts without `next`.
LOGIN_REDIRECT_URL = "/admin/"

# --- Admin theme (django-unfold, SPEC §9; docs/admin.md) ---------------------
UNFOLD = {
    "SITE_TITLE": "SaaSDesk",
    "SITE_HEADER": "SaaSDesk",
    "SITE_SUBHEADER": "Support & billing back office",
    "SITE_SYMBOL": "support_agent",
    "SHOW_HISTORY": True,
    "SHOW_VIEW_ON_SITE": False,
    "SHOW_BACK_BUTTON": True,
    "SIDEBAR": {
        "show_search": True,
        "show_all_applications": True,
        # Grouped by area and filtered by the user's permissions, per request.
        "navigation": "config.admin_navigation.sidebar_navigation",
    },
}

# --- Database -----------------------------------------------------------------
# PostgreSQL in production and CI; SQLite when DATABASE_URL is unset or empty
# (`DATABASE_URL=` in a shell or .env means "the default", not a broken URL).
DATABASES = {"default": env.db_url_config(env.str("DATABASE_URL", default="") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", 5)
else:
    # SQLite serialises writers; wait for the lock instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# An optional streaming replica for reads that only show numbers (statistics,
# insights, admin list pages); see config/db_router.py. Everything that decides
# money or access reads and writes the primary.
DATABASE_REPLICA_URL = env("DATABASE_REPLICA_URL", default="")
READ_REPLICA_ENABLED = bool(DATABASE_REPLICA_URL)
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = env.db_url_config(DATABASE_REPLICA_URL)
    for _key in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS", "OPTIONS"):
        if _key in DATABASES["default"]:
            DATABASES["replica"].setdefault(_key, DATABASES["default"][_key])
    # Tests have no real replica: the alias reads the primary's test database.
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["config.db_router.ReplicaRouter"]

# --- Redis: Celery broker and cache -------------------------------------------
REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "config.cache.PooledRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="saasdesk"),
            "TIMEOUT": 300,
            # A hung Redis must cost a request at most this long before the
            # breaker in config/cache.py serves from PostgreSQL.
            "OPTIONS": {
                "socket_connect_timeout": env.float("REDIS_CONNECT_TIMEOUT", default=1.0),
                "socket_timeout": env.float("REDIS_SOCKET_TIMEOUT", default=2.0),
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "saasdesk",
            "TIMEOUT": 300,
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }

# While Redis is down, each process retries it this often (one request probes).
CACHE_REPROBE_SECONDS = env.float("CACHE_REPROBE_SECONDS", default=5.0)

CELERY_BROKER_URL = REDIS_URL or "memory://"
# A broker outage must cost an enqueue well under a second (config/tasks.py
# then leaves the work to the periodic pass), not Celery's default retries.
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=1.0)
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 1.0}
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TIMEZONE = "UTC"
# The beat schedule lives here, in one place.
CELERY_BEAT_SCHEDULE: dict = {
    # Pending billable usage → Stripe meters (a no-op without STRIPE_API_KEY).
    "billing.deliver_usage": {"task": "billing.deliver_usage", "schedule": 10.0},
    # Refill requests written by debits → off-session PaymentIntents (also enqueued on commit).
    "billing.auto_refill": {"task": "billing.auto_refill", "schedule": 30.0},
    # Close usage periods whose boundary has passed (writes period_close snapshots).
    "metering.close_periods": {"task": "metering.close_periods", "schedule": 60.0},
    # Usage-event partitions (PostgreSQL): months ahead created, old months dropped.
    "metering.create_partitions": {"task": "metering.create_partitions", "schedule": crontab(hour=1, minute=5)},
    "metering.prune_events": {"task": "metering.prune_events", "schedule": crontab(hour=4, minute=10)},
    "metering.compact_rollups": {"task": "metering.compact_rollups", "schedule": crontab(hour=0, minute=25)},
    # Yesterday's delivered totals against Stripe's meter event summaries.
    "billing.reconcile_meters": {"task": "billing.reconcile_meters", "schedule": crontab(hour=2, minute=15)},
    # Due webhook deliveries: retries, and events whose task never reached the broker.
    "notifications.deliver_due": {"task": "notifications.deliver_due", "schedule": 10.0},
    # Events (and their deliveries) past NOTIFICATIONS_EVENT_RETENTION_DAYS.
    "notifications.prune_events": {"task": "notifications.prune_events", "schedule": crontab(hour=3, minute=30)},
    # Access windows (trials, promotions) that started or ended → feature_access.changed.
    "entitlements.expire_overrides": {"task": "entitlements.expire_overrides", "schedule": 60.0},
    # Credit holds past their TTL: fallback charge or release (SPEC §7).
    "credits.expire_reservations": {"task": "credits.expire_reservations", "schedule": 30.0},
    # Expired credit lots get their `expiry` ledger entry.
    "credits.expire_credits": {"task": "credits.expire_credits", "schedule": 300.0},
    # Accounts' lifecycle status (SPEC §3) from subscriptions and payments.
    "insights.update_lifecycle": {"task": "insights.update_lifecycle", "schedule": 300.0},
    # Accounts' MRR and today's revenue snapshot (SPEC §8).
    "insights.snapshot_revenue": {"task": "insights.snapshot_revenue", "schedule": 300.0},
    # Segment membership (SPEC §8) with segment.entered/left events.
    "insights.sync_segments": {"task": "insights.sync_segments", "schedule": 600.0},
    # Every account's health score and today's history row (SPEC §8), nightly.
    "insights.compute_health": {"task": "insights.compute_health", "schedule": crontab(hour=2, minute=45)},
}
# `manage.py run_job NAME` (SPEC §10): job name → the Celery task it runs once,
# in the foreground. Every scheduled job has a name here.
RUN_JOBS: dict[str, str] = {
    "sync_usage_to_stripe": "billing.tasks.deliver_usage",
    "auto_refill": "billing.tasks.auto_refill",
    "close_periods": "metering.tasks.close_periods",
    "create_partitions": "metering.tasks.create_partitions",
    "prune_events": "metering.tasks.prune_events",
    "compact_rollups": "metering.tasks.compact_rollups",
    "reconcile_meters": "billing.tasks.reconcile_meters",
    "deliver_notifications": "notifications.tasks.deliver_due",
    "prune_notifications": "notifications.tasks.prune_events",
    "expire_overrides": "entitlements.tasks.expire_overrides",
    "expire_reservations": "credits.tasks.expire_reservations",
    "expire_credits": "credits.tasks.expire_credits",
    "update_lifecycle": "insights.tasks.update_lifecycle",
    "snapshot_revenue": "insights.tasks.snapshot_revenue",
    "sync_segments": "insights.tasks.sync_segments",
    "compute_health": "insights.tasks.compute_health",
}

# --- Health scores (SPEC §8, docs/insights.md) -----------------------------------
# Weight of each component (relative; insights/health.py explains each).
HEALTH_WEIGHTS: dict[str, int] = {
    "usage_trend": 30,
    "limit_pressure": 15,
    "credit_runway": 15,
    "payment_health": 25,
    "recency": 15,
}
# The lowest score of each risk level; below `high` the risk is `critical`.
# `high` and `critical` make a granting account `at_risk` (SPEC §3).
HEALTH_RISK_THRESHOLDS: dict[str, int] = {"low": 75, "medium": 50, "high": 25}

# --- Usage-event partitions and retention (SPEC §10, docs/scaling.md) ----------
# Monthly partitions created ahead of the current month by `create_partitions`.
USAGE_EVENT_PARTITIONS_AHEAD = env.int("USAGE_EVENT_PARTITIONS_AHEAD", default=3)
# Whole months of raw usage events kept before `prune_events` may drop them
# (0 = keep forever; otherwise at least 2, for 35-day backdating).
USAGE_EVENT_RETENTION_MONTHS = env.int("USAGE_EVENT_RETENTION_MONTHS", default=0)

# --- Notifications (SPEC §11) ---------------------------------------------------
# Development defaults: any http(s) URL, local receivers included. Production
# turns both guards on (config/settings/production.py).
NOTIFICATIONS_REQUIRE_HTTPS = env.bool("NOTIFICATIONS_REQUIRE_HTTPS", default=False)
NOTIFICATIONS_ALLOW_PRIVATE_TARGETS = env.bool("NOTIFICATIONS_ALLOW_PRIVATE_TARGETS", default=True)
NOTIFICATIONS_TIMEOUT_SECONDS = env.float("NOTIFICATIONS_TIMEOUT_SECONDS", default=5.0)
NOTIFICATIONS_RETRY_WINDOW_SECONDS = 3 * 24 * 3600
NOTIFICATIONS_EVENT_RETENTION_DAYS = env.int("NOTIFICATIONS_EVENT_RETENTION_DAYS", default=90)

# --- Stripe -------------------------------------------------------------------
STRIPE_API_KEY = env("STRIPE_API_KEY", default="")
STRIPE_WEBHOOK_SECRET = env("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env("STRIPE_API_BASE", default="https://api.stripe.com")
STRIPE_METER_EVENTS_API_BASE = env("STRIPE_METER_EVENTS_API_BASE", default="https://meter-events.stripe.com")

# --- Auth, i18n, static ---------------------------------------------------------
# --- Admin login lockout (django-axes, SPEC §9) ----------------------------------
# After AXES_FAILURE_LIMIT wrong passwords for one username from one address,
# that pair is locked out (a 429 page, even with the right password) for
# AXES_COOLOFF_MINUTES; a successful login resets the count. Attempts are
# stored in PostgreSQL (visible in the admin under "Axes"), so a Redis outage
# does not disable the lockout. `manage.py axes_reset` unlocks everyone.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_ENABLED = env.bool("AXES_ENABLED", default=True)
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("AXES_COOLOFF_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = env.bool("AXES_VERBOSE", default=False)
AXES_LOCKOUT_TEMPLATE = "admin/lockout.html"
# The same client address as the API's throttles (REMOTE_ADDR, or NUM_PROXIES
# hops back in X-Forwarded-For).
AXES_CLIENT_IP_CALLABLE = "companies.api.throttling.client_ip"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- REST API -----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "companies.api.auth.ApiKeyAuthentication",
        "companies.api.service_auth.ServiceSignatureAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["companies.api.auth.HasApiKey"],
    "DEFAULT_THROTTLE_CLASSES": ["companies.api.throttling.ApiKeyRateThrottle"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.api.parsers.BoundedJSONParser"],
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "config.api.schema.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # Proxies in front of the app that append to X-Forwarded-For (0: use
    # REMOTE_ADDR, which a client cannot forge); client addresses are what the
    # failed-authentication throttle counts.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%S.%fZ",
}
# A 1000-contact bulk upsert with metadata can legitimately pass Django's 2.5 MB default.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=10 * 1024 * 1024)

# Per-key rate limit: "<requests>/<second|minute|hour>". The default is high
# enough that the benchmarks in bench/ are never throttled.
API_RATE_LIMIT = env("API_RATE_LIMIT", default="600000/minute")
# Failed authentications (unknown, revoked or malformed keys, bad signatures)
# per client address; past it the address gets 429s without any lookup.
API_AUTH_FAILURE_RATE = env("API_AUTH_FAILURE_RATE", default="60/minute")

SPECTACULAR_SETTINGS = {
    "TITLE": "SaaSDesk API",
    "DESCRIPTION": "Product API of the SaaSDesk back office. Authenticate with `Authorization: Bearer os_sk_…`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # PATCH bodies are validated like any other (the serializer's required
    # fields are required): no "Patched…" copies with everything optional.
    "COMPONENT_SPLIT_PATCH": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "ENUM_NAME_OVERRIDES": {
        "EventTypeEnum": "notifications.models.EventType.values",
        "CompanyStatusEnum": "companies.models.CompanyStatus",
        "SubscriptionStatusEnum": "billing.models.SubscriptionStatus",
        "AccessSourceEnum": "entitlements.models.AccessSource",
        "UsageSourceEnum": "metering.models.UsageSource",
        "UsageEventTypeEnum": "metering.models.UsageEventType",
        "StripeDeliveryStatusEnum": "metering.models.StripeDeliveryStatus",
        "SnapshotTypeEnum": "metering.models.UsageSnapshotType",
        "SmartLinkStatusEnum": ["already_linked", "linked", "suggestions", "no_match"],
        "BatchItemStatusEnum": ["ok", "duplicate", "error"],
        "LinkStatusEnum": ["created", "linked", "already_linked"],
        "CheckStatusEnum": "config.api.schema.CHECK_STATUSES",
        "ErrorCodeEnum": "config.errors.ErrorCode",
    },
    # Response headers, servers (config/api/schema.py); the default hook names the enums.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.api.schema.postprocess_schema",
    ],
}

# --- Logging: one JSON object per line, with the request id ---------------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.logging.RequestIdFilter"}},
    "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # The Stripe SDK logs every request at INFO: noisy, and slow on the delivery path.
        "stripe": {"level": "WARNING"},
        # 4xx answers are part of the API contract, not server problems.
        "django.request": {"level": "ERROR"},
    },
}
