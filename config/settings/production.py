"""Production settings. Refuses to start without a real SECRET_KEY."""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .base import SECRET_KEY, env

DEBUG = False
if not SECRET_KEY or SECRET_KEY.startswith("dev-insecure") or len(SECRET_KEY) < 32:
    raise ImproperlyConfigured("Set SECRET_KEY to a random value of at least 32 characters in production.")

# --- HTTPS (SPEC §9: production cookies are secure) ------------------------------
# On by default; each is switchable by the environment. The usual deployment is
# a TLS-terminating proxy (load balancer, nginx) in front of gunicorn that sets
# X-Forwarded-Proto: that header is how Django knows the request was https.
# SECURE_PROXY_SSL_HEADER names it (empty: no proxy — never trust the header
# when clients can reach gunicorn directly, they could forge it).
_proxy_header = env("SECURE_PROXY_SSL_HEADER", default="X-Forwarded-Proto").strip()
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https") if _proxy_header else None
)
# Redirect http → https (turn off if the proxy already redirects).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Load balancers probe /healthz over plain HTTP on the private network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# HSTS: browsers use https only for a year (0 disables, e.g. while trying TLS out).
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Webhooks: https only, never to internal addresses (SSRF), unless explicitly allowed.
NOTIFICATIONS_REQUIRE_HTTPS = env.bool("NOTIFICATIONS_REQUIRE_HTTPS", default=True)
NOTIFICATIONS_ALLOW_PRIVATE_TARGETS = env.bool("NOTIFICATIONS_ALLOW_PRIVATE_TARGETS", default=False)
