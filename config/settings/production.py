"""Production settings. Refuses to start without a real SECRET_KEY."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import SECRET_KEY, env

DEBUG = False
if not SECRET_KEY or SECRET_KEY.startswith("dev-insecure") or len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("Set SECRET_KEY to a random value of at least 32 characters in production.")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Webhooks: https only, never to internal addresses (SSRF), unless explicitly allowed.
NOTIFICATIONS_REQUIRE_HTTPS = env.bool("NOTIFICATIONS_REQUIRE_HTTPS", default=True)
NOTIFICATIONS_ALLOW_PRIVATE_TARGETS = env.bool("NOTIFICATIONS_ALLOW_PRIVATE_TARGETS", default=False)
