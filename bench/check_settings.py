"""Settings of bench/check.py's gunicorn: production settings (DEBUG off,
real SECRET_KEY required) with the floor views' URL conf."""

from config.settings.production import *  # noqa: F401,F403

ROOT_URLCONF = "bench.urls"
# The bench talks plain HTTP to 127.0.0.1.
SECURE_SSL_REDIRECT = False
